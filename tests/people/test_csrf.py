"""Origins and CSRF: a browser's change from another origin is a 403 with nothing changed; a
signed-in change needs our origin positively and the session's CSRF token; a request with an
Authorization header is authenticated by its key alone."""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
import pytest

from shared.settings import Settings
from tests.people.conftest import Admin, Browser

Conn = psycopg.Connection[Any]


def _runbooks(owner_conn: Conn, agency_id: str) -> int:
    row = owner_conn.execute(
        "SELECT count(*) FROM cao.runbooks WHERE agency_id = %s", (agency_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


BODY = {"title": "Rotate keys", "body": "1. rotate"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost.evil.example:3000"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://cloudagencyops.com", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_a_cross_origin_change_is_a_403_and_changes_nothing(
    admin: Admin, owner_conn: Conn, headers: dict[str, str]
) -> None:
    browser = admin.browser
    before = _runbooks(owner_conn, admin.agency_id)
    r = browser.post("/api/runbooks", json=BODY, headers=headers)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "cross_origin"
    assert _runbooks(owner_conn, admin.agency_id) == before


def test_sign_up_sign_in_and_acceptance_from_another_origin_are_refused(
    open_browser: Any, owner_conn: Conn
) -> None:
    browser: Browser = open_browser()
    browser.origin = "https://evil.example"
    email = f"ops+{secrets.token_hex(4)}@example.com"
    r = browser.post("/api/agencies", json={"name": "Evil", "contact_email": email})
    assert r.status_code == 403
    row = owner_conn.execute(
        "SELECT count(*) FROM cao.agencies WHERE contact_email = %s", (email,)
    ).fetchone()
    assert row == (0,)
    for path in ("/api/session/options", "/api/session", "/api/invitations/accept"):
        assert browser.post(path, json={}).status_code == 403, path


def test_a_signed_in_change_needs_our_origin_and_the_csrf_token(
    admin: Admin, owner_conn: Conn
) -> None:
    browser = admin.browser
    token = browser.csrf
    before = _runbooks(owner_conn, admin.agency_id)
    # No Origin and no Sec-Fetch-Site: a cookie alone does not make a change.
    r = browser.http.post("/api/runbooks", json=BODY, headers={"X-CSRF-Token": token or ""})
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_origin"
    # Our origin, no or a wrong token.
    browser.csrf = None
    r = browser.post("/api/runbooks", json=BODY)
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_token"
    r = browser.post("/api/runbooks", json=BODY, headers={"X-CSRF-Token": "0" * 64})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_token"
    assert _runbooks(owner_conn, admin.agency_id) == before
    # Sec-Fetch-Site: same-origin (no Origin) and the token: accepted.
    r = browser.http.post(
        "/api/runbooks",
        json=BODY,
        headers={"Sec-Fetch-Site": "same-origin", "X-CSRF-Token": token or ""},
    )
    assert r.status_code == 201, r.text
    browser.csrf = token
    assert browser.post("/api/runbooks", json=BODY).status_code == 201
    assert _runbooks(owner_conn, admin.agency_id) == before + 2
    # Reads need no token.
    browser.csrf = None
    assert browser.get("/api/runbooks").status_code == 200


def test_the_csrf_token_may_come_as_a_form_field(admin: Admin) -> None:
    browser = admin.browser
    token = browser.csrf
    browser.csrf = None
    r = browser.delete("/api/session", data={"csrf_token": "wrong"})
    assert r.status_code == 403
    r = browser.delete("/api/session", data={"csrf_token": token})
    assert r.status_code == 204


def test_a_request_with_a_key_never_reads_the_cookie(admin: Admin) -> None:
    browser = admin.browser
    assert browser.get("/api/session").status_code == 200
    # A bad key beside a live session cookie: the key decides.
    bad = {"Authorization": "Bearer cao_" + "A" * 43}
    assert browser.get("/api/accounts", headers=bad).status_code == 401
    # A good key: authenticated as the key, not the person (no session to show).
    r = browser.get("/api/session", headers=admin.key_headers)
    assert r.status_code == 403
    # A key's change needs no CSRF token and no Origin (scripts).
    r = browser.http.post("/api/runbooks", json=BODY, headers=admin.key_headers)
    assert r.status_code == 201


def test_scripts_without_cookie_or_origin_are_unaffected(open_browser: Any) -> None:
    browser: Browser = open_browser()
    email = f"ops+{secrets.token_hex(4)}@example.com"
    r = browser.http.post(
        "/api/agencies",
        json={"name": "Script", "contact_email": email},
        headers={"X-Real-IP": browser.address},
    )
    assert r.status_code == 201 and r.json()["enrolment"] is None


def test_localhost_is_allowed_outside_production_only() -> None:
    base = {"CAO_PUBLIC_URL": "https://app.example.com"}
    assert Settings({**base, "VERCEL_ENV": "preview"}).allows_origin("http://localhost:3000")
    assert Settings(base).allows_origin("http://localhost")
    production = Settings({**base, "VERCEL_ENV": "production"})
    assert not production.allows_origin("http://localhost:3000")
    assert production.allows_origin("https://app.example.com")
    assert not production.allows_origin("https://app.example.com.evil.example")
    assert not Settings(base).allows_origin("http://127.0.0.1:3000")
    assert Settings({"CAO_PUBLIC_URL": "http://localhost:3000"}).rp_id == "localhost"
