"""Sign-up, API keys (shown once, hashed, roles, revocation) and agency settings over HTTP."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from devstack.server import create_local_app
from functions.onboard import externalid, signup
from shared.settings import Settings
from tests.support.factories import AgencyFixture

Conn = psycopg.Connection[Any]


@pytest.fixture
def http(settings: Settings) -> Iterator[TestClient]:
    """An HTTP client for routes that call no AWS."""
    with TestClient(create_local_app(), raise_server_exceptions=False) as c:
        yield c


def _address() -> dict[str, str]:
    """A source address of its own, so rate-limit windows never collide between tests."""
    return {"X-Real-IP": f"203.0.113.{secrets.randbelow(250)}-{secrets.token_hex(4)}"}


def _sign_up(http: TestClient, **body: Any) -> Any:
    payload = {"name": "Cloudwise Ltd", "contact_email": "ops@cloudwise.example", **body}
    return http.post("/api/agencies", json=payload, headers=_address())


def _all_text(owner_conn: Conn, agency_id: uuid.UUID) -> str:
    """Every tenant row of the agency, as text (to look for values that must not be there)."""
    parts: list[str] = []
    for table in ("agencies", "api_keys", "accounts", "audit_log"):
        key = "id" if table == "agencies" else "agency_id"
        rows = owner_conn.execute(
            # last_used_at changes with every authenticated request: not a change of state.
            f"SELECT (to_jsonb(t) - 'last_used_at')::text FROM cao.{table} t WHERE {key} = %s"
            " ORDER BY 1",
            (agency_id,),
        ).fetchall()
        parts.extend(r[0] for r in rows)
    return "\n".join(parts)


def test_sign_up_creates_the_agency_its_external_id_and_an_admin_key_shown_once(
    http: TestClient, owner_conn: Conn
) -> None:
    r = _sign_up(http)
    assert r.status_code == 201, r.text
    body = r.json()
    agency_id = uuid.UUID(body["agency_id"])
    key, external_id = body["api_key"], body["external_id"]
    assert externalid.OUR_PATTERN.fullmatch(external_id)
    assert r.headers["cache-control"] == "no-store"

    me = http.get("/api/agency", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200
    assert me.json()["billing_status"] == "trialing"
    assert me.json()["name"] == "Cloudwise Ltd"

    stored = owner_conn.execute(
        "SELECT key_hash, role FROM cao.api_keys WHERE agency_id = %s", (agency_id,)
    ).fetchall()
    assert stored == [(hashlib.sha256(key.encode()).digest(), "admin")]
    # The key is nowhere in clear; the ExternalId only in its one column.
    text = _all_text(owner_conn, agency_id)
    assert key not in text and external_id not in text
    ext = owner_conn.execute(
        "SELECT value FROM cao.external_ids WHERE agency_id = %s", (agency_id,)
    ).fetchall()
    assert ext == [(external_id,)]
    # Shown once: no later answer carries the key.
    keys = http.get("/api/agency/keys", headers={"Authorization": f"Bearer {key}"})
    assert key not in keys.text


@pytest.mark.parametrize(
    "extra",
    [
        {"external_id": "my-own-choice-123"},
        {"agency_id": "00000000-0000-4000-8000-000000000000"},
        {"billing_status": "active"},
        {"plan": "pro"},
        {"polar_customer_id": "cus_1"},
        {"trial_ends_at": "2099-01-01T00:00:00Z"},
        {"contact_email": "not-an-email"},
        {"name": ""},
        {"name": "x" * 201},
        {"name": "nul\x00byte"},
        {"contact_email": "ops\x00@x.example"},
    ],
)
def test_sign_up_refuses_fields_a_client_must_not_set_and_stores_nothing(
    http: TestClient, owner_conn: Conn, extra: dict[str, Any]
) -> None:
    before = owner_conn.execute("SELECT count(*) FROM cao.agencies").fetchone()
    r = _sign_up(http, **extra)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"
    assert owner_conn.execute("SELECT count(*) FROM cao.agencies").fetchone() == before


def test_sign_up_is_rate_limited_per_source_address(http: TestClient, owner_conn: Conn) -> None:
    address = _address()
    payload = {"name": "Spammy", "contact_email": "x@spam.example"}
    for _ in range(signup.SIGNUP_LIMIT):
        assert http.post("/api/agencies", json=payload, headers=address).status_code == 201
    before = owner_conn.execute("SELECT count(*) FROM cao.agencies").fetchone()
    r = http.post("/api/agencies", json=payload, headers=address)
    assert r.status_code == 429
    assert 0 < int(r.headers["retry-after"]) <= signup.SIGNUP_WINDOW_S
    assert owner_conn.execute("SELECT count(*) FROM cao.agencies").fetchone() == before
    # Another address is not affected; the address itself is not stored, only a hash.
    assert http.post("/api/agencies", json=payload, headers=_address()).status_code == 201
    buckets = owner_conn.execute("SELECT bucket FROM cao.rate_limits").fetchall()
    assert all(address["X-Real-IP"] not in b[0] for b in buckets)


def test_an_admin_creates_lists_and_revokes_keys_and_the_key_is_shown_once(
    http: TestClient, agency: AgencyFixture, owner_conn: Conn
) -> None:
    r = http.post(
        "/api/agency/keys", json={"name": "CI reader", "role": "member"}, headers=agency.headers
    )
    assert r.status_code == 201, r.text
    new_key, key_id = r.json()["api_key"], r.json()["key"]["id"]
    assert r.json()["key"]["prefix"] == new_key[:10]
    row = owner_conn.execute(
        "SELECT key_hash, role, created_by FROM cao.api_keys WHERE id = %s", (key_id,)
    ).fetchone()
    assert row == (hashlib.sha256(new_key.encode()).digest(), "member", agency.key_id)
    assert new_key not in _all_text(owner_conn, agency.id)

    listed = http.get("/api/agency/keys", headers=agency.headers)
    assert listed.status_code == 200
    assert {k["id"] for k in listed.json()} == {key_id, str(agency.key_id)}
    assert new_key not in listed.text
    bad_name = http.post("/api/agency/keys", json={"name": "a\x00"}, headers=agency.headers)
    assert bad_name.status_code == 422

    member = {"Authorization": f"Bearer {new_key}"}
    assert http.get("/api/agency", headers=member).status_code == 200
    revoked = http.delete(f"/api/agency/keys/{key_id}", headers=agency.headers)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert http.get("/api/agency", headers=member).status_code == 401
    # Idempotent.
    assert http.delete(f"/api/agency/keys/{key_id}", headers=agency.headers).status_code == 200


def test_the_last_live_admin_key_cannot_be_revoked(http: TestClient, agency: AgencyFixture) -> None:
    r = http.delete(f"/api/agency/keys/{agency.key_id}", headers=agency.headers)
    assert r.status_code == 409
    assert http.get("/api/agency", headers=agency.headers).status_code == 200


def test_member_keys_get_403_on_every_admin_route_and_change_nothing(
    http: TestClient, agency: AgencyFixture, owner_conn: Conn
) -> None:
    made = http.post(
        "/api/agency/keys", json={"name": "staff", "role": "member"}, headers=agency.headers
    )
    member = {"Authorization": f"Bearer {made.json()['api_key']}"}
    some_id = "00000000-0000-4000-8000-000000000000"
    before = _all_text(owner_conn, agency.id)
    admin_routes: list[tuple[str, str, Any]] = [
        ("PATCH", "/api/agency", {"cloudtrail_retention_days": 30}),
        ("GET", "/api/agency/keys", None),
        ("POST", "/api/agency/keys", {"name": "escalate", "role": "admin"}),
        ("DELETE", f"/api/agency/keys/{agency.key_id}", None),
        ("POST", "/api/agency/external-id/rotate", None),
        ("PATCH", f"/api/accounts/{some_id}", {"alias": "x"}),
        ("DELETE", f"/api/accounts/{some_id}", None),
        ("POST", "/api/accounts/discovered/link", None),
    ]
    for method, path, body in admin_routes:
        r = http.request(method, path, json=body, headers=member)
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    assert _all_text(owner_conn, agency.id) == before
    # What members may do.
    assert http.get("/api/agency", headers=member).status_code == 200
    assert http.get("/api/accounts/discovered", headers=member).status_code == 200


def test_revoked_unknown_and_malformed_keys_get_401(
    http: TestClient, agency: AgencyFixture
) -> None:
    made = http.post("/api/agency/keys", json={"name": "old"}, headers=agency.headers).json()
    http.delete(f"/api/agency/keys/{made['key']['id']}", headers=agency.headers)
    for header in (
        f"Bearer {made['api_key']}",
        "Bearer cao_" + "A" * 43,
        "Bearer nonsense",
        agency.api_key,
        "",
    ):
        for path in ("/api/agency", "/api/onboarding", "/api/accounts/discovered"):
            r = http.get(path, headers={"Authorization": header} if header else {})
            assert r.status_code == 401, (header, path)


def test_keys_of_another_agency_cannot_be_revoked(
    http: TestClient, agency: AgencyFixture, other_agency: AgencyFixture
) -> None:
    r = http.delete(f"/api/agency/keys/{other_agency.key_id}", headers=agency.headers)
    assert r.status_code == 404
    assert http.get("/api/agency", headers=other_agency.headers).status_code == 200


def test_settings_are_validated_and_audited(
    http: TestClient, agency: AgencyFixture, owner_conn: Conn
) -> None:
    ok = http.patch(
        "/api/agency",
        json={
            "default_regions": ["eu-central-1", "us-east-1"],
            "cloudtrail_retention_days": 365,
            "cloudtrail_backfill_days": 1,
            "contact_email": "new@agency.example",
        },
        headers=agency.headers,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["default_regions"] == ["eu-central-1", "us-east-1"]
    before = http.get("/api/agency", headers=agency.headers).json()
    refused: list[dict[str, Any]] = [
        {"cloudtrail_retention_days": 0},
        {"cloudtrail_retention_days": 366},
        {"cloudtrail_backfill_days": 91},
        {"default_regions": []},
        {"default_regions": ["us-east-1", "atlantis-1"]},
        {"contact_email": "nope"},
        {"name": None},
        {"billing_status": "active"},
        {"external_id": "chosen"},
        {"plan": "pro"},
        {},
    ]
    for body in refused:
        r = http.patch("/api/agency", json=body, headers=agency.headers)
        assert r.status_code in (400, 422), (body, r.text)
        assert "atlantis" not in r.text  # the refused value is not echoed
    assert http.get("/api/agency", headers=agency.headers).json() == before
    audit = owner_conn.execute(
        "SELECT details FROM cao.audit_log WHERE agency_id = %s"
        " AND action = 'agency.settings_changed'",
        (agency.id,),
    ).fetchall()
    assert audit == [
        (
            {
                "fields": [
                    "cloudtrail_backfill_days",
                    "cloudtrail_retention_days",
                    "contact_email",
                    "default_regions",
                ]
            },
        )
    ]


def test_new_accounts_default_to_the_agencys_regions(
    http: TestClient, agency: AgencyFixture
) -> None:
    http.patch("/api/agency", json={"default_regions": ["eu-west-2"]}, headers=agency.headers)
    assert http.get("/api/agency", headers=agency.headers).json()["default_regions"] == [
        "eu-west-2"
    ]


def test_onboarding_material_is_filled_in_for_the_agency(
    http: TestClient, agency: AgencyFixture, env: dict[str, str]
) -> None:
    r = http.get("/api/onboarding", headers=agency.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["external_id"] == agency.external_id
    assert body["cao_account_id"] == env["CAO_AWS_ACCOUNT_ID"]
    statement = body["trust_policy"]["Statement"][0]
    assert statement["Condition"]["StringEquals"]["sts:ExternalId"] == agency.external_id
    assert body["role_policy"]["Statement"][0]["Action"] == [
        "ce:GetCostAndUsage",
        "cloudtrail:LookupEvents",
        "organizations:ListAccounts",
    ]
    link = body["quick_create_url"]
    assert link.startswith("https://console.aws.amazon.com/cloudformation/home?region=us-east-1")
    assert "templateURL=https%3A%2F%2Fcao-templates.s3.amazonaws.com%2Frole.yaml" in link
    assert f"param_ExternalId={agency.external_id}" in link
    assert f"param_CaoAccountId={env['CAO_AWS_ACCOUNT_ID']}" in link
    assert body["stackset"]["role_name"] == "CloudAgencyOpsReadOnly"

    for path, media in (
        ("/api/onboarding/template.yaml", "application/yaml"),
        ("/api/onboarding/template.json", "application/json"),
        ("/api/onboarding/stackset.yaml", "application/yaml"),
    ):
        t = http.get(path, headers=agency.headers)
        assert t.status_code == 200
        assert t.headers["content-type"].startswith(media)
        assert agency.external_id in t.text and "AWS::IAM::Role" in t.text
        assert http.get(path).status_code == 401
