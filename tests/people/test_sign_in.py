"""Sign-up with enrolment, sign-out, sign-in, and every refusal of a sign-in: through HTTP, with
a software authenticator."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import psycopg

from shared.kit.clock import utc_now
from tests.people.conftest import Admin, Browser
from tests.support.authenticator import unb64url
from tests.support.deps import override

Conn = psycopg.Connection[Any]


def _count(owner_conn: Conn, table: str, agency_id: str) -> int:
    row = owner_conn.execute(
        f"SELECT count(*) FROM cao.{table} WHERE agency_id = %s", (agency_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_sign_up_enrols_the_first_admin_who_is_then_signed_in(open_browser: Any) -> None:
    browser: Browser = open_browser()
    signup = browser.sign_up()
    assert signup["api_key"].startswith("cao_")  # still returned once, for scripts
    enrolment = signup["enrolment"]
    assert len(enrolment["token"]) == 43 and enrolment["expires_at"]
    r = browser.enrol(enrolment["token"])
    assert r.status_code == 201, r.text
    assert r.json()["signed_in"] is True
    me = browser.refresh()
    assert me["role"] == "admin" and me["agency"]["id"] == signup["agency_id"]
    # The session works on every existing endpoint.
    assert browser.get("/api/accounts").status_code == 200
    assert browser.get("/api/audit").status_code == 200


def test_the_session_cookie_is_a_host_cookie_secure_httponly_lax(open_browser: Any) -> None:
    browser: Browser = open_browser()
    signup = browser.sign_up()
    r = browser.enrol(signup["enrolment"]["token"])
    cookie = r.headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    assert name == "__Host-cao_session"
    attributes = {a.strip().split("=")[0].lower(): a.strip() for a in rest.split(";")[1:]}
    assert {"secure", "httponly", "path", "samesite", "max-age"} <= set(attributes)
    assert attributes["path"] == "Path=/"
    assert attributes["samesite"].lower() == "samesite=lax"
    assert "domain" not in attributes  # __Host-: no Domain
    assert attributes["max-age"] == f"Max-Age={7 * 24 * 3600}"


def test_sign_out_then_sign_in_with_a_new_token_each_time(admin: Admin, owner_conn: Conn) -> None:
    browser = admin.browser
    first = browser.cookie
    assert browser.delete("/api/session").status_code == 204
    assert browser.cookie is None
    assert browser.get("/api/session").status_code == 401
    r = browser.sign_in()
    assert r.status_code == 200, r.text
    second = browser.cookie
    assert second and second != first  # no fixation: a new token at every sign-in
    assert r.json()["user"]["id"] == browser.refresh()["user"]["id"]
    r = browser.sign_in()
    assert r.status_code == 200 and browser.cookie not in {first, second}
    # Only hashes are stored.
    hashes = owner_conn.execute(
        "SELECT token_hash FROM cao.sessions WHERE agency_id = %s", (admin.agency_id,)
    ).fetchall()
    assert all(bytes(h[0]) != browser.cookie.encode() for h in hashes)  # type: ignore[union-attr]
    actions = [e["action"] for e in browser.get("/api/audit").json()["items"]]
    assert {"session.signed_in", "session.signed_out", "passkey.added"} <= set(actions)


def test_an_enrolment_is_single_use_and_lasts_15_minutes(open_browser: Any) -> None:
    browser: Browser = open_browser()
    token = browser.sign_up()["enrolment"]["token"]
    assert browser.enrol(token).status_code == 201
    again = browser.post("/api/passkeys/registration/options", json={"enrolment_token": token})
    assert again.status_code == 401 and again.json()["error"]["code"] == "enrolment_invalid"

    late: Browser = open_browser()
    token = late.sign_up()["enrolment"]["token"]
    with override(clock=lambda: utc_now() + timedelta(minutes=16)):
        r = late.post("/api/passkeys/registration/options", json={"enrolment_token": token})
    assert r.status_code == 401


def _fails(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.json()["error"] == {
        "code": "sign_in_failed",
        "message": "sign-in failed: use a passkey registered for this site, or ask an admin",
    }


def test_a_replayed_assertion_is_refused_by_its_used_challenge(
    admin: Admin, owner_conn: Conn
) -> None:
    browser = admin.browser
    # An authenticator without a counter (sign count always 0): only the single-use challenge
    # can refuse the replay.
    assertion = browser.authenticator.get(browser.sign_in_options(), browser.origin, sign_count=0)
    assert browser.submit_assertion(assertion).status_code == 200
    before = _count(owner_conn, "sessions", admin.agency_id)
    _fails(browser.submit_assertion(assertion))
    assert _count(owner_conn, "sessions", admin.agency_id) == before


def test_an_assertion_for_another_origin_or_rp_id_is_refused(admin: Admin) -> None:
    browser = admin.browser
    options = browser.sign_in_options()
    _fails(
        browser.submit_assertion(
            browser.authenticator.get(options, "https://cloudagencyops.com.evil.example")
        )
    )
    _fails(browser.sign_in(rp_id="evil.example"))
    assert browser.sign_in().status_code == 200


def test_no_user_verification_or_a_sign_count_going_back_is_refused(admin: Admin) -> None:
    browser = admin.browser
    _fails(browser.sign_in(user_verified=False))
    assert browser.sign_in(sign_count=5).status_code == 200
    _fails(browser.sign_in(sign_count=3))
    _fails(browser.sign_in(sign_count=5))


def test_an_unknown_credential_or_made_up_challenge_gets_the_same_answer(
    admin: Admin, open_browser: Any
) -> None:
    stranger: Browser = open_browser()
    options = stranger.sign_in_options()
    stranger.authenticator.create(
        {"rp": {"id": options["rpId"]}, "user": {"id": "AAAA"}, "challenge": options["challenge"]},
        stranger.origin,
    )
    _fails(stranger.submit_assertion(stranger.authenticator.get(options, stranger.origin)))
    browser = admin.browser
    _fails(browser.sign_in(challenge=b"x" * 32))
    _fails(browser.post("/api/session", json={"credential": {"id": "garbage"}}))


def test_a_registration_for_another_origin_is_refused(open_browser: Any) -> None:
    browser: Browser = open_browser()
    token = browser.sign_up()["enrolment"]["token"]
    options = browser.post(
        "/api/passkeys/registration/options", json={"enrolment_token": token}
    ).json()["options"]
    credential = browser.authenticator.create(options, "https://evil.example")
    r = browser.post(
        "/api/passkeys/registration", json={"enrolment_token": token, "credential": credential}
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "passkey_refused"
    assert browser.cookie is None
    assert options["rp"]["id"] == "cloudagencyops.com"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["attestation"] == "none"
    assert len(unb64url(options["challenge"])) == 32


def test_sign_in_is_throttled_per_credential_and_per_address(
    admin: Admin, open_browser: Any
) -> None:
    browser = admin.browser
    for _ in range(10):
        _fails(browser.sign_in(user_verified=False))
    r = browser.sign_in()
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    # From another address, the same credential is still throttled.
    browser.address = "198.51.100.7"
    assert browser.sign_in().status_code == 429
    for _ in range(5):
        assert browser.sign_in().status_code == 429
    audit = browser.http.get("/api/audit", headers=admin.key_headers).json()["items"]
    # The burst is audited once, however long it goes on.
    assert [e["action"] for e in audit].count("session.sign_in_throttled") == 1
    assert any(e["action"] == "session.sign_in_failed" for e in audit)
    # Per address: an IPv6 /64 counts as one.
    other: Browser = open_browser()
    prefix = other.address.rsplit("::", 1)[0]
    answers = []
    for i in range(31):
        other.address = f"{prefix}::{i + 1:x}"
        answers.append(other.post("/api/session/options").status_code)
    assert answers[:30] == [200] * 30 and answers[30] == 429


def test_idle_and_absolute_expiry_on_the_injected_clock(admin: Admin) -> None:
    browser = admin.browser
    start = utc_now()
    with override(clock=lambda: start + timedelta(hours=11)):
        assert browser.get("/api/session").status_code == 200  # touched: idle restarts
    with override(clock=lambda: start + timedelta(hours=22)):
        assert browser.get("/api/session").status_code == 200
    with override(clock=lambda: start + timedelta(hours=34, minutes=1)):
        assert browser.get("/api/session").status_code == 401  # idle for 12 h
    assert browser.sign_in().status_code == 200
    start = utc_now()
    for hours in range(10, 24 * 7, 10):
        with override(clock=lambda h=hours: start + timedelta(hours=h)):
            assert browser.get("/api/session").status_code == 200, hours
    with override(clock=lambda: start + timedelta(days=7, minutes=1)):
        assert browser.get("/api/session").status_code == 401  # 7 days, however active
