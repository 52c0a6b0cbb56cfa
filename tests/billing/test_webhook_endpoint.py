"""POST /api/webhooks/polar against real Postgres: effects, idempotency, order, bad input."""

from __future__ import annotations

import base64
import hmac
import json
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from devstack.polar_replay import encode, sample_event, signed_headers
from functions.billing import plans, schemas, service
from functions.billing import signature as webhooks
from shared.kit.clock import utc_now
from shared.settings import Settings
from tests.billing.conftest import (
    PRODUCT_PRO,
    PRODUCT_STARTER,
    Deliverer,
    audit_actions,
    billing_row,
    deliveries_of,
)
from tests.support.database import TestDatabase
from tests.support.deps import with_settings
from tests.support.factories import AgencyFixture


def test_a_polar_signed_subscription_active_makes_the_agency_active(
    deliver: Deliverer, agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    end = datetime(2031, 1, 1, tzinfo=UTC)
    answer = deliver.send(agency.id, "subscription.active", product_id=PRODUCT_PRO, period_end=end)
    assert answer["outcome"] == "applied"
    row = billing_row(app_conn, agency.id)
    assert row["billing_status"] == "active"
    assert row["plan"] == "pro"
    assert row["current_period_end"] == end
    assert row["polar_customer_id"] == "cus_demo_0001"
    assert row["polar_subscription_id"] == "sub_demo_0001"


# Each event, Polar-signed and posted to the endpoint, after the events that lead up to it.
LIFECYCLE = [
    ([], "subscription.created", {"status": "trialing"}, "trialing"),
    ([], "subscription.created", {"status": "active"}, "active"),
    ([], "subscription.active", {}, "active"),
    (["subscription.active"], "subscription.updated", {"status": "past_due"}, "past_due"),
    (["subscription.active"], "subscription.canceled", {}, "canceled"),
    (["subscription.active", "subscription.canceled"], "subscription.uncanceled", {}, "active"),
    (["subscription.active"], "subscription.past_due", {}, "past_due"),
    (["subscription.active", "subscription.canceled"], "subscription.revoked", {}, "revoked"),
    (["subscription.active", "subscription.past_due"], "order.paid", {}, "active"),
]


@pytest.mark.parametrize(
    ("before", "event_type", "fields", "expected"),
    LIFECYCLE,
    ids=[f"{case[1]}->{case[3]}" for case in LIFECYCLE],
)
def test_each_polar_signed_event_maps_to_the_right_state(
    deliver: Deliverer,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    before: list[str],
    event_type: str,
    fields: dict[str, Any],
    expected: str,
) -> None:
    for earlier in before:
        assert deliver.send(agency.id, earlier, product_id=PRODUCT_STARTER)["outcome"] == "applied"
    answer = deliver.send(agency.id, event_type, product_id=PRODUCT_STARTER, **fields)
    assert answer["outcome"] == "applied", answer
    row = billing_row(app_conn, agency.id)
    assert row["billing_status"] == expected
    assert row["plan"] == "starter"


def test_a_redelivery_changes_nothing(
    deliver: Deliverer,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
) -> None:
    body = deliver.event(agency.id, "subscription.active")
    headers = signed_headers(deliver.secret, body, webhook_id="msg_redelivered_" + agency.id.hex)
    first = deliver.client.post("/api/webhooks/polar", content=body, headers=headers)
    assert first.json()["outcome"] == "applied"
    deliver.send(agency.id, "subscription.revoked")  # a newer event in between
    again = deliver.client.post("/api/webhooks/polar", content=body, headers=headers)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert billing_row(app_conn, agency.id)["billing_status"] == "revoked"
    assert [a for a in audit_actions(owner_conn, agency.id) if a[0] == "polar"] == [
        ("polar", "billing.subscription.active"),
        ("polar", "billing.subscription.revoked"),
    ]


def test_ten_concurrent_deliveries_of_one_webhook_id_change_state_once(
    settings: Settings,
    database: TestDatabase,
    agency: AgencyFixture,
    owner_conn: psycopg.Connection[Any],
) -> None:
    secret = settings.secret("POLAR_WEBHOOK_SECRET").reveal()
    body = encode(sample_event(agency.id, "subscription.active", product_id=PRODUCT_PRO))
    webhook_id = "msg_concurrent_" + agency.id.hex
    headers = signed_headers(secret, body, webhook_id=webhook_id)
    barrier = threading.Barrier(10)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def deliver_once() -> None:
        try:
            with database.app() as conn:
                delivery = webhooks.verify(headers, body, secret, utc_now().timestamp())
                event = schemas.parse_event(delivery.body)
                barrier.wait(timeout=10)
                result = service.apply_event(
                    conn, delivery, event, lambda p: plans.plan_for_product(p, settings)
                )
                outcomes.append(result.outcome)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver_once) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert sorted(outcomes) == ["applied"] + ["duplicate"] * 9
    assert deliveries_of(owner_conn, webhook_id) == 1
    # The effect ran once: one audit row, although every thread saw a validly signed delivery.
    assert audit_actions(owner_conn, agency.id).count(("polar", "billing.subscription.active")) == 1
    row = owner_conn.execute(
        "SELECT billing_status, plan FROM cao.agencies WHERE id = %s", (agency.id,)
    ).fetchone()
    assert row == ("active", "pro")


def test_an_older_event_arriving_after_a_newer_one_does_not_roll_back(
    deliver: Deliverer, agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    older = deliver.event(agency.id, "subscription.active")
    newer = deliver.event(agency.id, "subscription.revoked")
    assert deliver.post(newer).json()["outcome"] == "applied"
    late = deliver.post(older)
    assert late.status_code == 200 and late.json()["outcome"] == "stale"
    row = billing_row(app_conn, agency.id)
    assert row["billing_status"] == "revoked"
    assert row["billing_event_at"] == datetime.fromisoformat(json.loads(newer)["timestamp"])


def test_unknown_event_types_get_a_2xx_and_change_nothing(
    deliver: Deliverer, agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    before = billing_row(app_conn, agency.id)
    for event_type in ("benefit_grant.created", "customer.state_changed", "checkout.updated"):
        body = encode(
            {
                "type": event_type,
                "timestamp": datetime.now(UTC).isoformat(),
                "data": {"id": "x", "customer": {"external_id": str(agency.id)}},
            }
        )
        response = deliver.post(body)
        assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    assert billing_row(app_conn, agency.id) == before


def test_an_unknown_or_deleted_agency_gets_a_2xx_and_nothing_changes(
    deliver: Deliverer,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
) -> None:
    stranger = uuid.uuid4()
    body = deliver.event(stranger, "subscription.active")
    headers = signed_headers(deliver.secret, body)
    response = deliver.client.post("/api/webhooks/polar", content=body, headers=headers)
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    assert deliveries_of(owner_conn, headers["webhook-id"]) == 0
    for external_id in (None, "not-a-uuid"):
        answer = deliver.send(external_id, "subscription.active")
        assert answer["outcome"] == "ignored"
    # Deleted: the agency row is gone (as offboarding leaves it).
    owner_conn.execute("DELETE FROM cao.agencies WHERE id = %s", (agency.id,))
    assert deliver.send(agency.id, "subscription.active")["outcome"] == "ignored"


@pytest.mark.parametrize(
    "change",
    [
        "no-headers",
        "bad-signature",
        "stale-timestamp",
        "future-timestamp",
        "non-numeric-timestamp",
        "malformed-signature",
        "re-serialised",
        "not-json",
        "missing-fields",
    ],
)
def test_bad_deliveries_are_4xx_and_change_nothing(
    change: str,
    deliver: Deliverer,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
) -> None:
    before = billing_row(app_conn, agency.id)
    body = deliver.event(agency.id, "subscription.revoked")
    headers = signed_headers(deliver.secret, body)
    now = int(datetime.now(UTC).timestamp())
    if change == "no-headers":
        headers = {"content-type": "application/json"}
    elif change == "bad-signature":
        headers = signed_headers("another-secret", body, webhook_id=headers["webhook-id"])
    elif change == "stale-timestamp":
        headers = signed_headers(deliver.secret, body, timestamp=now - 600)
    elif change == "future-timestamp":
        headers = signed_headers(deliver.secret, body, timestamp=now + 600)
    elif change == "non-numeric-timestamp":
        headers["webhook-timestamp"] = "soon"
    elif change == "malformed-signature":
        headers["webhook-signature"] = "v1"
    elif change == "re-serialised":
        body = json.dumps(json.loads(body), indent=1).encode()
    elif change == "not-json":
        body = b"\x00not json"
        headers = _sign_bytes(deliver, body)
    elif change == "missing-fields":
        body = encode(
            {"type": "subscription.revoked", "timestamp": "2026-01-01T00:00:00Z", "data": {}}
        )
        headers = signed_headers(deliver.secret, body)
    response = deliver.client.post("/api/webhooks/polar", content=body, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"]
    assert billing_row(app_conn, agency.id) == before
    if "webhook-id" in headers:
        assert deliveries_of(owner_conn, headers["webhook-id"]) == 0


def _sign_bytes(deliver: Deliverer, body: bytes) -> dict[str, str]:
    """Headers for a body that is not UTF-8 (the replay helper signs text)."""
    webhook_id = "msg_bytes_" + uuid.uuid4().hex
    now = int(datetime.now(UTC).timestamp())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(now),
        "webhook-signature": webhooks.sign(deliver.secret.encode(), webhook_id, now, body),
    }


def test_an_oversize_body_is_refused_with_413(deliver: Deliverer) -> None:
    body = b"{" + b" " * webhooks.MAX_BODY_BYTES + b"}"
    response = deliver.post(body)
    assert response.status_code == 413


def test_an_oversize_chunked_body_is_refused_with_413(deliver: Deliverer) -> None:
    def chunks() -> Any:
        for _ in range(20):
            yield b" " * 8192

    response = deliver.client.post(
        "/api/webhooks/polar",
        content=chunks(),
        headers={"webhook-id": "msg_big", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
    )
    assert response.status_code == 413


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_database_outage_is_a_5xx_so_polar_retries(
    deliver: Deliverer, agency: AgencyFixture, env: dict[str, str]
) -> None:
    down = f"postgresql://cao_app:x@127.0.0.1:{_closed_port()}/cao?connect_timeout=1"
    with with_settings(Settings({**env, "DATABASE_URL": down})):
        response = deliver.post(deliver.event(agency.id, "subscription.active"))
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "database_unavailable"


def test_signature_checks_happen_before_the_database_is_touched(
    deliver: Deliverer, agency: AgencyFixture, env: dict[str, str]
) -> None:
    down = f"postgresql://cao_app:x@127.0.0.1:{_closed_port()}/cao"
    with with_settings(Settings({**env, "DATABASE_URL": down})):
        body = deliver.event(agency.id, "subscription.active")
        response = deliver.client.post(
            "/api/webhooks/polar", content=body, headers=signed_headers("wrong", body)
        )
        assert response.status_code == 401


def test_a_missing_webhook_secret_is_a_503_naming_it(
    deliver: Deliverer, agency: AgencyFixture, env: dict[str, str]
) -> None:
    with with_settings(Settings({k: v for k, v in env.items() if k != "POLAR_WEBHOOK_SECRET"})):
        response = deliver.post(deliver.event(agency.id, "subscription.active"))
        assert response.status_code == 503
        assert "POLAR_WEBHOOK_SECRET" in response.json()["error"]["message"]


def test_both_key_derivations_are_accepted_end_to_end(
    client: TestClient,
    agency: AgencyFixture,
    env: dict[str, str],
    app_conn: psycopg.Connection[Any],
) -> None:
    whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    with with_settings(Settings({**env, "POLAR_WEBHOOK_SECRET": whsec})):
        at = datetime.now(UTC) - timedelta(minutes=1)
        for polar_key, event_type in (
            (True, "subscription.past_due"),
            (False, "subscription.active"),
        ):
            body = encode(sample_event(agency.id, event_type, at=at))
            at += timedelta(seconds=1)
            headers = signed_headers(whsec, body, polar_key=polar_key)
            response = client.post("/api/webhooks/polar", content=body, headers=headers)
            assert response.json()["outcome"] == "applied", response.text
            assert billing_row(app_conn, agency.id)["billing_status"] == event_type.split(".")[1]


def _nested(agency: AgencyFixture, depth: int) -> bytes:
    """A subscription event whose `data` holds arrays nested so that the body is `depth` deep."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)  # the envelope and `data` are two levels
    return (
        '{"type":"subscription.revoked","timestamp":"'
        + datetime.now(UTC).isoformat()
        + '","data":{"id":"sub_deep","status":"canceled","customer":{"external_id":"'
        + str(agency.id)
        + '"},"deep":'
        + inner
        + "}}"
    ).encode()


@pytest.mark.parametrize("depth", [schemas.MAX_JSON_DEPTH + 1, 2_000, 20_000])
def test_a_correctly_signed_body_nested_too_deep_is_a_400_not_a_500(
    depth: int,
    deliver: Deliverer,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
) -> None:
    before = billing_row(app_conn, agency.id)
    body = _nested(agency, depth)
    assert len(body) <= webhooks.MAX_BODY_BYTES
    headers = signed_headers(deliver.secret, body)
    response = deliver.client.post("/api/webhooks/polar", content=body, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_webhook_payload"
    assert error["message"] == (
        f"the webhook body nests JSON deeper than {schemas.MAX_JSON_DEPTH} levels"
    )
    assert billing_row(app_conn, agency.id) == before
    assert deliveries_of(owner_conn, headers["webhook-id"]) == 0


def test_a_body_nested_to_the_bound_is_accepted(
    deliver: Deliverer, agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    response = deliver.post(_nested(agency, schemas.MAX_JSON_DEPTH))
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    assert billing_row(app_conn, agency.id)["billing_status"] == "revoked"


def test_a_bare_v1_signature_header_is_a_400_naming_it(deliver: Deliverer) -> None:
    # The standardwebhooks package raises ValueError on this header: it never reaches it.
    body = deliver.event(uuid.uuid4(), "subscription.active")
    headers = {**signed_headers(deliver.secret, body), "webhook-signature": "v1"}
    response = deliver.client.post("/api/webhooks/polar", content=body, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_webhook_headers"
    assert "webhook-signature" in error["message"]


def test_a_correctly_signed_body_that_is_not_utf8_is_a_401(deliver: Deliverer) -> None:
    # The package decodes the body as UTF-8 (UnicodeDecodeError): any exception is a bad
    # signature, never a 500.
    body = b'{"type":"subscription.active","x":"\xff"}'
    webhook_id = "msg_latin_" + uuid.uuid4().hex
    now = int(datetime.now(UTC).timestamp())
    mac = hmac.new(deliver.secret.encode(), f"{webhook_id}.{now}.".encode() + body, "sha256")
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(now),
        "webhook-signature": "v1," + base64.b64encode(mac.digest()).decode(),
    }
    response = deliver.client.post("/api/webhooks/polar", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "invalid_webhook_signature"
