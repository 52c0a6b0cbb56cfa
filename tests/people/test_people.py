"""Invitations, recovery, roles, removal, passkeys and sessions: through HTTP, each with its
refusals."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import psycopg

from shared.kit.clock import utc_now
from tests.people.conftest import Admin, Browser, invite_and_join
from tests.support.deps import override

Conn = psycopg.Connection[Any]


def _invite(admin: Admin, role: str = "member") -> tuple[dict[str, Any], str]:
    r = admin.browser.post(
        "/api/invitations",
        json={"email": f"colleague+{secrets.token_hex(4)}@example.com", "role": role},
    )
    assert r.status_code == 201, r.text
    link = r.json()["link"]
    assert link.startswith("https://cloudagencyops.com/invite#")
    return r.json()["invitation"], link.split("#", 1)[1]


def test_invite_accept_enrol_and_sign_in_as_a_member(admin: Admin, open_browser: Any) -> None:
    invitation, token = _invite(admin)
    assert invitation["status"] == "pending"
    colleague: Browser = open_browser()
    r = colleague.post("/api/invitations/accept", json={"token": token, "name": "Dana"})
    assert r.status_code == 201, r.text
    assert colleague.enrol(r.json()["token"]).status_code == 201
    me = colleague.refresh()
    assert me["role"] == "member" and me["user"]["name"] == "Dana"
    assert me["agency"]["id"] == admin.agency_id
    # A member reads but is no admin.
    assert colleague.get("/api/accounts").status_code == 200
    assert colleague.get("/api/users").status_code == 403
    assert colleague.post("/api/invitations", json={"email": "x@example.com"}).status_code == 403
    listed = admin.browser.get("/api/invitations").json()["invitations"]
    assert [i["status"] for i in listed if i["id"] == invitation["id"]] == ["accepted"]
    actions = {e["action"] for e in admin.browser.get("/api/audit").json()["items"]}
    assert {"invitation.created", "invitation.accepted"} <= actions


def test_an_invitation_is_single_use_revocable_and_expires(
    admin: Admin, open_browser: Any, owner_conn: Conn
) -> None:
    _, token = _invite(admin)
    browser: Browser = open_browser()
    assert (
        browser.post("/api/invitations/accept", json={"token": token, "name": "A"}).status_code
        == 201
    )
    r = browser.post("/api/invitations/accept", json={"token": token, "name": "B"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "invitation_accepted"

    invitation, token = _invite(admin)
    assert (
        admin.browser.delete(f"/api/invitations/{invitation['id']}").json()["status"] == "revoked"
    )
    r = browser.post("/api/invitations/accept", json={"token": token, "name": "C"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "invitation_revoked"

    invitation, token = _invite(admin)
    with override(clock=lambda: utc_now() + timedelta(days=7, minutes=1)):
        r = browser.post("/api/invitations/accept", json={"token": token, "name": "D"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "invitation_expired"

    r = browser.post("/api/invitations/accept", json={"token": "x" * 43, "name": "E"})
    assert r.status_code == 404
    users = owner_conn.execute(
        "SELECT name FROM cao.users WHERE agency_id = %s ORDER BY name", (admin.agency_id,)
    ).fetchall()
    assert [u[0] for u in users if len(u[0]) == 1] == ["A"]


def test_the_invitation_token_is_stored_hashed_and_only_in_the_fragment(
    admin: Admin, owner_conn: Conn
) -> None:
    _, token = _invite(admin)
    row = owner_conn.execute(
        "SELECT token_hash FROM cao.invitations WHERE agency_id = %s", (admin.agency_id,)
    ).fetchone()
    assert row is not None and len(bytes(row[0])) == 32 and token.encode() not in bytes(row[0])


def test_an_email_is_one_person_across_the_product(admin: Admin, open_browser: Any) -> None:
    me = admin.browser.refresh()["user"]
    r = admin.browser.post("/api/invitations", json={"email": me["email"].upper()})
    assert r.status_code == 409 and r.json()["error"]["code"] == "email_taken"
    other: Browser = open_browser()
    r = other.post(
        "/api/agencies",
        json={
            "name": "Other",
            "contact_email": "x@example.com",
            "admin": {"name": "Same", "email": me["email"]},
        },
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "email_taken"


def test_roles_change_but_never_leave_the_agency_without_an_admin(
    admin: Admin, open_browser: Any
) -> None:
    me = admin.browser.refresh()["user"]
    r = admin.browser.patch(f"/api/users/{me['id']}", json={"role": "member"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_admin"
    r = admin.browser.delete(f"/api/users/{me['id']}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_admin"
    colleague: Browser = open_browser()
    them = invite_and_join(admin, colleague)["user"]
    r = admin.browser.patch(f"/api/users/{them['id']}", json={"role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    assert colleague.refresh()["role"] == "admin"  # effective at once
    assert colleague.get("/api/users").status_code == 200
    # Now the first admin may step down.
    r = admin.browser.patch(f"/api/users/{me['id']}", json={"role": "member"})
    assert r.status_code == 200
    assert admin.browser.get("/api/users").status_code == 403
    actions = [
        e for e in colleague.get("/api/audit").json()["items"] if e["action"] == "user.role_changed"
    ]
    assert {e["actor"] for e in actions} == {f"user:{me['id']}"}


def test_removing_a_user_ends_their_sessions(
    admin: Admin, open_browser: Any, owner_conn: Conn
) -> None:
    colleague: Browser = open_browser()
    them = invite_and_join(admin, colleague)["user"]
    assert colleague.get("/api/accounts").status_code == 200
    assert admin.browser.delete(f"/api/users/{them['id']}").status_code == 204
    assert colleague.get("/api/accounts").status_code == 401
    assert colleague.sign_in().status_code == 401
    for table, column in (("users", "id"), ("passkeys", "user_id"), ("sessions", "user_id")):
        row = owner_conn.execute(
            f"SELECT count(*) FROM cao.{table} WHERE {column} = %s", (them["id"],)
        ).fetchone()
        assert row == (0,), table
    assert admin.browser.delete(f"/api/users/{them['id']}").status_code == 404


def test_recovery_link_enrols_a_new_passkey_and_ends_old_sessions(
    admin: Admin, open_browser: Any
) -> None:
    colleague: Browser = open_browser()
    them = invite_and_join(admin, colleague)["user"]
    r = admin.browser.post(f"/api/users/{them['id']}/recovery")
    assert r.status_code == 201, r.text
    link = r.json()["link"]
    assert link.startswith("https://cloudagencyops.com/recover#")
    token = link.split("#", 1)[1]
    new_device: Browser = open_browser()
    r = new_device.post("/api/recovery/accept", json={"token": token})
    assert r.status_code == 201, r.text
    assert colleague.get("/api/session").status_code == 401  # the lost device's session ended
    assert new_device.enrol(r.json()["token"]).status_code == 201
    assert new_device.refresh()["user"]["id"] == them["id"]
    again = new_device.post("/api/recovery/accept", json={"token": token})
    assert again.status_code == 409
    # An invitation token is no recovery token, and the other way round.
    _, invite_token = _invite(admin)
    assert new_device.post("/api/recovery/accept", json={"token": invite_token}).status_code == 404
    assert colleague.get("/api/users").status_code == 401


def test_passkeys_added_renamed_and_removed_but_never_the_last(
    admin: Admin, owner_conn: Conn
) -> None:
    browser = admin.browser
    passkeys = browser.get("/api/passkeys").json()["passkeys"]
    assert len(passkeys) == 1
    first = passkeys[0]
    r = browser.delete(f"/api/passkeys/{first['id']}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "last_passkey"
    # Add a second one, signed in (no enrolment token).
    options = browser.post("/api/passkeys/registration/options", json={}).json()["options"]
    assert len(options["excludeCredentials"]) == 1
    credential = browser.authenticator.create(options, browser.origin)
    r = browser.post("/api/passkeys/registration", json={"credential": credential, "name": "Phone"})
    assert r.status_code == 201 and r.json()["signed_in"] is False
    second = r.json()["passkey"]
    r = browser.patch(f"/api/passkeys/{second['id']}", json={"name": "Work phone"})
    assert r.status_code == 200 and r.json()["name"] == "Work phone"
    # Sign in with the second one in another session, then remove it: that session ends.
    second_cred = browser.authenticator.credentials[-1]
    cookie_first = browser.cookie
    assert browser.sign_in(credential=second_cred).status_code == 200
    assert browser.cookie != cookie_first
    assert browser.delete(f"/api/passkeys/{second['id']}").status_code == 204
    assert browser.get("/api/session").status_code == 401
    row = owner_conn.execute(
        "SELECT count(*) FROM cao.sessions WHERE passkey_id = %s", (second["id"],)
    ).fetchone()
    assert row == (0,)


def test_sessions_listed_revoked_and_signed_out_everywhere(admin: Admin, open_browser: Any) -> None:
    laptop = admin.browser
    phone: Browser = open_browser()
    phone.authenticator = laptop.authenticator  # the same synced passkey
    assert phone.sign_in().status_code == 200
    listed = laptop.get("/api/sessions").json()["sessions"]
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    other = next(s for s in listed if not s["current"])
    assert laptop.delete(f"/api/sessions/{other['id']}").status_code == 204
    assert phone.get("/api/session").status_code == 401
    assert laptop.delete(f"/api/sessions/{other['id']}").status_code == 404
    assert phone.sign_in().status_code == 200
    r = laptop.delete("/api/sessions")
    assert r.status_code == 200 and r.json()["ended"] == 2
    assert laptop.get("/api/session").status_code == 401
    assert phone.get("/api/session").status_code == 401


def test_a_key_is_no_person(admin: Admin) -> None:
    http = admin.browser.http
    assert http.get("/api/passkeys", headers=admin.key_headers).status_code == 403
    assert http.get("/api/sessions", headers=admin.key_headers).status_code == 403
    # An admin key administers people: users, invitations.
    assert http.get("/api/users", headers=admin.key_headers).status_code == 200
    r = http.post(
        "/api/invitations",
        json={"email": f"k+{secrets.token_hex(3)}@example.com"},
        headers=admin.key_headers,
    )
    assert r.status_code == 201
    assert r.json()["invitation"]["created_by"].startswith("key:")


def test_another_agencys_people_are_404(admin: Admin, open_browser: Any) -> None:
    other_browser: Browser = open_browser()
    signup = other_browser.sign_up()
    other_browser.enrol(signup["enrolment"]["token"])
    theirs = other_browser.refresh()["user"]
    passkey = other_browser.get("/api/passkeys").json()["passkeys"][0]
    session = other_browser.get("/api/sessions").json()["sessions"][0]
    invitation = other_browser.post(
        "/api/invitations", json={"email": f"z+{secrets.token_hex(3)}@example.com"}
    ).json()["invitation"]
    me = admin.browser
    assert me.patch(f"/api/users/{theirs['id']}", json={"role": "member"}).status_code == 404
    assert me.delete(f"/api/users/{theirs['id']}").status_code == 404
    assert me.post(f"/api/users/{theirs['id']}/recovery").status_code == 404
    assert me.patch(f"/api/passkeys/{passkey['id']}", json={"name": "x"}).status_code == 404
    assert me.delete(f"/api/passkeys/{passkey['id']}").status_code == 404
    assert me.delete(f"/api/sessions/{session['id']}").status_code == 404
    assert me.delete(f"/api/invitations/{invitation['id']}").status_code == 404
    assert theirs["id"] not in {u["id"] for u in me.get("/api/users").json()["users"]}
    assert other_browser.get("/api/session").status_code == 200


def test_existing_audited_actions_record_the_person(admin: Admin) -> None:
    browser = admin.browser
    me = browser.refresh()["user"]
    r = browser.post("/api/agency/keys", json={"name": "CI", "role": "member"})
    assert r.status_code == 201, r.text
    entries = browser.get("/api/audit").json()["items"]
    created = [e for e in entries if e["action"] == "key.created"]
    assert created and created[0]["actor"] == f"user:{me['id']}"
