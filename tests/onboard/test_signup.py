"""Sign-up (the agency, its ExternalId, a first admin key shown once, rate-limited) and the
onboarding material filled in for the agency, over HTTP."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from functions.onboard import externalid, service
from tests.support.factories import AgencyFixture
from tests.support.onboarding import tenant_text

Conn = psycopg.Connection[Any]


def _address() -> dict[str, str]:
    """A source address of its own, so rate-limit windows never collide between tests."""
    return {"X-Real-IP": f"203.0.113.{secrets.randbelow(250)}-{secrets.token_hex(4)}"}


def _sign_up(http: TestClient, **body: Any) -> Any:
    payload = {"name": "Cloudwise Ltd", "contact_email": "ops@cloudwise.example", **body}
    return http.post("/api/agencies", json=payload, headers=_address())


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
    text = tenant_text(owner_conn, agency_id)
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
    for _ in range(service.SIGNUP_LIMIT):
        assert http.post("/api/agencies", json=payload, headers=address).status_code == 201
    before = owner_conn.execute("SELECT count(*) FROM cao.agencies").fetchone()
    r = http.post("/api/agencies", json=payload, headers=address)
    assert r.status_code == 429
    assert 0 < int(r.headers["retry-after"]) <= service.SIGNUP_WINDOW_S
    assert owner_conn.execute("SELECT count(*) FROM cao.agencies").fetchone() == before
    # Another address is not affected; the address itself is not stored, only a hash.
    assert http.post("/api/agencies", json=payload, headers=_address()).status_code == 201
    buckets = owner_conn.execute("SELECT bucket FROM cao.rate_limits").fetchall()
    assert all(address["X-Real-IP"] not in b[0] for b in buckets)


def test_ipv6_sign_ups_are_counted_per_64_block(http: TestClient, owner_conn: Conn) -> None:
    block = f"2001:db8:{secrets.randbelow(0xFFFF):x}:{secrets.randbelow(0xFFFF):x}"
    payload = {"name": "Rotating", "contact_email": "x@v6.example"}
    for n in range(service.SIGNUP_LIMIT):
        # A new address each time, as a host with privacy addresses would send.
        address = {"X-Forwarded-For": f"{block}:{n + 1:x}:{secrets.randbelow(0xFFFF):x}::1"}
        assert http.post("/api/agencies", json=payload, headers=address).status_code == 201
    same_block = {"X-Real-IP": f"{block}:ffff:ffff:ffff:ffff"}
    r = http.post("/api/agencies", json=payload, headers=same_block)
    assert r.status_code == 429, r.text
    next_block = {"X-Real-IP": f"2001:db8:{secrets.randbelow(0xFFFF):x}:1::1"}
    assert http.post("/api/agencies", json=payload, headers=next_block).status_code == 201


@pytest.mark.parametrize(
    ("address", "block"),
    [
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::9", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("198.51.100.7", "198.51.100.7"),
        ("not an address", "not an address"),
    ],
)
def test_the_sign_up_budget_covers_an_ipv4_address_or_an_ipv6_64(address: str, block: str) -> None:
    assert service.address_block(address) == block


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
