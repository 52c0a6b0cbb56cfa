"""Checkout and customer portal, against the fake Polar API on loopback."""

from __future__ import annotations

import socket
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from devstack.fake_polar import FakePolar
from functions.billing.polar import PolarClient, PolarError, PolarUnavailableError
from shared.errors import ConfigError, NotFoundError, RateLimitedError
from shared.settings import Secret, Settings
from tests.billing.conftest import (
    POLAR_TOKEN,
    PRODUCT_PRO,
    PRODUCT_STARTER,
    Deliverer,
    audit_actions,
    member_headers,
)
from tests.support.deps import with_settings
from tests.support.factories import AgencyFixture


def checkouts_for(polar: FakePolar, agency_id: uuid.UUID) -> list[Any]:
    return [
        r
        for r in polar.requests
        if r.path == "/v1/checkouts/"
        and (r.json or {}).get("external_customer_id") == str(agency_id)
    ]


def test_a_checkout_carries_the_agency_id_as_the_customers_external_id(
    client: TestClient,
    agency: AgencyFixture,
    fake_polar: FakePolar,
    owner_conn: psycopg.Connection[Any],
) -> None:
    response = client.post(
        "/api/billing/checkout",
        json={"plan": "pro", "success_url": "https://app.example.com/billing/done"},
        headers=agency.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["plan"] == "pro"
    assert body["checkout_url"].startswith(fake_polar.url + "/checkout/")
    [sent] = checkouts_for(fake_polar, agency.id)
    assert sent.json["products"] == [PRODUCT_PRO]
    assert sent.json["external_customer_id"] == str(agency.id)
    assert sent.json["success_url"] == "https://app.example.com/billing/done"
    assert sent.headers["authorization"] == f"Bearer {POLAR_TOKEN}"
    assert POLAR_TOKEN not in response.text
    assert ("key:" + str(agency.key_id), "billing.checkout_started") in audit_actions(
        owner_conn, agency.id
    )


def test_the_starter_plan_buys_the_starter_product(
    client: TestClient, agency: AgencyFixture, fake_polar: FakePolar
) -> None:
    assert (
        client.post(
            "/api/billing/checkout", json={"plan": "starter"}, headers=agency.headers
        ).status_code
        == 201
    )
    assert checkouts_for(fake_polar, agency.id)[0].json["products"] == [PRODUCT_STARTER]


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"plan": "trial"}, 400),
        ({"plan": "enterprise"}, 400),
        ({}, 422),
        ({"plan": "pro", "success_url": "javascript:alert(1)"}, 422),
        ({"plan": "pro", "success_url": "http://evil.example.com/"}, 422),
        ({"plan": "pro", "unexpected": 1}, 422),
    ],
)
def test_bad_checkout_requests_are_4xx_and_reach_no_polar(
    payload: dict[str, Any],
    status: int,
    client: TestClient,
    agency: AgencyFixture,
    fake_polar: FakePolar,
) -> None:
    response = client.post("/api/billing/checkout", json=payload, headers=agency.headers)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]
    assert checkouts_for(fake_polar, agency.id) == []


def test_an_agency_with_a_live_subscription_is_sent_to_the_portal(
    client: TestClient, deliver: Deliverer, agency: AgencyFixture, fake_polar: FakePolar
) -> None:
    deliver.send(agency.id, "subscription.active", product_id=PRODUCT_STARTER)
    response = client.post("/api/billing/checkout", json={"plan": "pro"}, headers=agency.headers)
    assert response.status_code == 409
    assert "portal" in response.json()["error"]["message"]
    assert checkouts_for(fake_polar, agency.id) == []
    # Once revoked, it may subscribe again.
    deliver.send(agency.id, "subscription.revoked")
    again = client.post("/api/billing/checkout", json={"plan": "pro"}, headers=agency.headers)
    assert again.status_code == 201


def test_an_unconfigured_product_is_a_503_naming_the_setting(
    client: TestClient, agency: AgencyFixture, env: dict[str, str]
) -> None:
    with with_settings(Settings({**env, "POLAR_PRODUCT_PRO": ""})):
        response = client.post(
            "/api/billing/checkout", json={"plan": "pro"}, headers=agency.headers
        )
        assert response.status_code == 503
        assert "POLAR_PRODUCT_PRO" in response.json()["error"]["message"]


def test_only_admins_start_checkouts(
    client: TestClient, agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    response = client.post(
        "/api/billing/checkout", json={"plan": "pro"}, headers=member_headers(app_conn, agency.id)
    )
    assert response.status_code == 403


def test_the_portal_needs_a_polar_customer_then_opens(
    client: TestClient, agency: AgencyFixture, fake_polar: FakePolar
) -> None:
    before = client.post("/api/billing/portal", headers=agency.headers)
    assert before.status_code == 404
    assert before.json()["error"]["code"] == "no_polar_customer"
    fake_polar.add_customer(str(agency.id))
    response = client.post(
        "/api/billing/portal",
        json={"return_url": "https://app.example.com/settings"},
        headers=agency.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["portal_url"].startswith(fake_polar.url + "/portal")
    sent = [r for r in fake_polar.requests if r.path == "/v1/customer-sessions/"][-1]
    assert sent.json == {
        "external_customer_id": str(agency.id),
        "return_url": "https://app.example.com/settings",
    }


# ---- the client's error mapping ---------------------------------------------------------------


@pytest.fixture
def polar_client(fake_polar: FakePolar) -> Any:
    with PolarClient(
        fake_polar.url, Secret(POLAR_TOKEN), timeout=httpx.Timeout(0.5, connect=0.5)
    ) as c:
        yield c


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, PolarUnavailableError),
        (503, PolarUnavailableError),
        (401, ConfigError),
        (403, ConfigError),
        (429, RateLimitedError),
        (422, PolarError),
        (302, PolarError),
    ],
)
def test_polar_failures_map_to_our_errors(
    status: int, error: type[Exception], fake_polar: FakePolar, polar_client: PolarClient
) -> None:
    fake_polar.fail_next(status)
    with pytest.raises(error) as err:
        polar_client.create_checkout(product_id=PRODUCT_PRO, agency_id=uuid.uuid4())
    assert "Injected" not in str(err.value) and "fake failure" not in str(err.value)


def test_a_wrong_token_is_a_configuration_error(fake_polar: FakePolar) -> None:
    with (
        PolarClient(fake_polar.url, Secret("polar_oat_wrong")) as polar,
        pytest.raises(ConfigError, match="POLAR_ACCESS_TOKEN"),
    ):
        polar.create_checkout(product_id=PRODUCT_PRO, agency_id=uuid.uuid4())


def test_a_slow_polar_times_out_as_unavailable(
    fake_polar: FakePolar, polar_client: PolarClient
) -> None:
    fake_polar.set_delay(1.0)
    try:
        with pytest.raises(PolarUnavailableError, match="in time"):
            polar_client.create_checkout(product_id=PRODUCT_PRO, agency_id=uuid.uuid4())
    finally:
        fake_polar.set_delay(0)


def test_an_unreachable_polar_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (
        PolarClient(f"http://127.0.0.1:{port}", Secret(POLAR_TOKEN)) as polar,
        pytest.raises(PolarUnavailableError),
    ):
        polar.create_portal_session(agency_id=uuid.uuid4())


def test_an_unknown_customer_is_not_found(polar_client: PolarClient) -> None:
    with pytest.raises(NotFoundError):
        polar_client.create_portal_session(agency_id=uuid.uuid4())
