"""API keys (shown once, hashed, roles, revocation) and agency settings over HTTP."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from tests.support.factories import AgencyFixture
from tests.support.onboarding import tenant_text

Conn = psycopg.Connection[Any]


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
    assert new_key not in tenant_text(owner_conn, agency.id)

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
    before = tenant_text(owner_conn, agency.id)
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
    assert tenant_text(owner_conn, agency.id) == before
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
