"""Runbooks: CRUD, attachment to the agency's own accounts, size bounds, versions kept on every
update, and concurrent edits detected instead of overwritten."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from functions.runbooks.schemas import RUNBOOK_BODY_MAX_CHARS
from functions.runbooks.service import MAX_RUNBOOKS, MAX_VERSIONS_KEPT
from shared.db import tenant_tx
from shared.web import MAX_BODY_BYTES
from tests.support import seed
from tests.support.factories import AgencyFixture, make_account, make_api_key

Conn = psycopg.Connection[Any]


def create(client: TestClient, agency: AgencyFixture, **body: Any) -> dict[str, Any]:
    r = client.post("/api/runbooks", json={"title": "Restore RDS", **body}, headers=agency.headers)
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == '"v1"'
    assert r.headers["location"] == f"/api/runbooks/{r.json()['id']}"
    made: dict[str, Any] = r.json()
    return made


def count_runbooks(conn: Conn, agency_id: uuid.UUID, *, tenant: bool = False) -> int:
    if tenant:  # as the app role
        with tenant_tx(conn, agency_id):
            return count_runbooks(conn, agency_id)
    row = conn.execute(
        "SELECT count(*) FROM cao.runbooks WHERE agency_id = %s", (agency_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_runbook_is_created_read_listed_and_attached_to_an_account(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    account = make_account(app_conn, agency.id)
    made = create(client, agency, body="# Steps\n\n1. Snapshot", account_id=str(account))
    assert made["version"] == 1 and made["account_id"] == str(account)

    r = client.get(f"/api/runbooks/{made['id']}", headers=agency.headers)
    assert r.status_code == 200 and r.headers["etag"] == '"v1"'
    assert r.json()["body"] == "# Steps\n\n1. Snapshot"

    other = create(client, agency, title="Unattached")
    listed = client.get("/api/runbooks", headers=agency.headers).json()["items"]
    assert [i["id"] for i in listed] == [other["id"], made["id"]]  # latest first
    assert "body" not in listed[0] and listed[1]["body_chars"] == len("# Steps\n\n1. Snapshot")
    only = client.get("/api/runbooks", params={"account_id": str(account)}, headers=agency.headers)
    assert [i["id"] for i in only.json()["items"]] == [made["id"]]


def test_every_update_keeps_the_previous_version(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    account = make_account(app_conn, agency.id)
    made = create(client, agency, body="v1 body", account_id=str(account))
    url = f"/api/runbooks/{made['id']}"
    r = client.patch(url, json={"body": "v2 body"}, headers={**agency.headers, "If-Match": '"v1"'})
    assert r.status_code == 200 and r.headers["etag"] == '"v2"'
    r = client.patch(
        url, json={"title": "Renamed", "account_id": None, "version": 2}, headers=agency.headers
    )
    assert r.status_code == 200
    assert r.json()["version"] == 3 and r.json()["account_id"] is None
    assert r.json()["title"] == "Renamed" and r.json()["body"] == "v2 body"

    versions = client.get(f"{url}/versions", headers=agency.headers).json()["items"]
    assert [v["version"] for v in versions] == [2, 1]
    v1 = client.get(f"{url}/versions/1", headers=agency.headers).json()
    assert v1["body"] == "v1 body" and v1["title"] == "Restore RDS"
    assert v1["account_id"] == str(account)
    assert client.get(f"{url}/versions/3", headers=agency.headers).status_code == 404
    page = client.get(f"{url}/versions", params={"limit": 1}, headers=agency.headers).json()
    rest = client.get(
        f"{url}/versions", params={"cursor": page["next_cursor"]}, headers=agency.headers
    ).json()
    assert [v["version"] for v in page["items"] + rest["items"]] == [2, 1]


def test_an_update_that_changes_nothing_makes_no_version(
    client: TestClient, agency: AgencyFixture
) -> None:
    made = create(client, agency, body="same")
    r = client.patch(
        f"/api/runbooks/{made['id']}", json={"body": "same", "version": 1}, headers=agency.headers
    )
    assert r.status_code == 200 and r.json()["version"] == 1


def test_a_stale_if_match_is_412_and_a_stale_version_is_409_and_nothing_changes(
    client: TestClient, agency: AgencyFixture
) -> None:
    made = create(client, agency, body="original")
    url = f"/api/runbooks/{made['id']}"
    assert client.patch(
        url, json={"body": "first", "version": 1}, headers=agency.headers
    ).is_success

    stale = client.patch(url, json={"body": "lost"}, headers={**agency.headers, "If-Match": '"v1"'})
    assert stale.status_code == 412 and "version 2" in stale.json()["error"]["message"]
    conflict = client.patch(url, json={"body": "lost", "version": 1}, headers=agency.headers)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "version_conflict"
    weak = client.patch(
        url, json={"body": "lost"}, headers={**agency.headers, "If-Match": 'W/"v2"'}
    )
    assert weak.status_code == 412  # If-Match compares strongly
    assert client.get(url, headers=agency.headers).json()["body"] == "first"
    anything = client.patch(
        url, json={"body": "forced"}, headers={**agency.headers, "If-Match": "*"}
    )
    assert anything.status_code == 200 and anything.json()["version"] == 3


def test_an_update_without_if_match_or_version_is_428(
    client: TestClient, agency: AgencyFixture
) -> None:
    made = create(client, agency)
    r = client.patch(f"/api/runbooks/{made['id']}", json={"body": "x"}, headers=agency.headers)
    assert r.status_code == 428 and "If-Match" in r.json()["error"]["message"]


def test_two_concurrent_editors_of_the_same_version_cannot_both_win(
    client: TestClient, agency: AgencyFixture, owner_conn: Conn
) -> None:
    made = create(client, agency, body="base")
    url = f"/api/runbooks/{made['id']}"
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def edit(n: int) -> None:
        barrier.wait()
        r = client.patch(url, json={"body": f"editor {n}", "version": 1}, headers=agency.headers)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=edit, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 409, 409, 409]
    kept = owner_conn.execute(
        "SELECT version, body FROM cao.runbook_versions WHERE runbook_id = %s", (made["id"],)
    ).fetchall()
    assert kept == [(1, "base")]


def test_deleting_removes_the_runbook_and_its_versions_and_checks_if_match(
    client: TestClient, agency: AgencyFixture, owner_conn: Conn
) -> None:
    made = create(client, agency)
    url = f"/api/runbooks/{made['id']}"
    client.patch(url, json={"body": "two", "version": 1}, headers=agency.headers)
    r = client.delete(url, headers={**agency.headers, "If-Match": '"v1"'})
    assert r.status_code == 412
    assert client.delete(url, headers={**agency.headers, "If-Match": '"v2"'}).status_code == 204
    assert client.get(url, headers=agency.headers).status_code == 404
    assert client.delete(url, headers=agency.headers).status_code == 404
    left = owner_conn.execute(
        "SELECT count(*) FROM cao.runbook_versions WHERE runbook_id = %s", (made["id"],)
    ).fetchone()
    assert left == (0,)


def test_runbook_changes_are_audited(
    client: TestClient, agency: AgencyFixture, owner_conn: Conn
) -> None:
    made = create(client, agency)
    url = f"/api/runbooks/{made['id']}"
    client.patch(url, json={"title": "New title", "version": 1}, headers=agency.headers)
    client.delete(url, headers=agency.headers)
    rows = owner_conn.execute(
        "SELECT action, target, actor, details FROM cao.audit_log WHERE agency_id = %s"
        " AND action LIKE 'runbook.%%' ORDER BY id",
        (agency.id,),
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        ("runbook.created", made["id"]),
        ("runbook.updated", made["id"]),
        ("runbook.deleted", made["id"]),
    ]
    assert rows[0][2] == f"key:{agency.key_id}"
    assert rows[1][3] == {"version": 2, "fields": ["title"]}


def test_unlinking_the_account_detaches_its_runbooks(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    account = make_account(app_conn, agency.id)
    made = create(client, agency, account_id=str(account))
    with seed.tenant(app_conn, agency.id):
        app_conn.execute("DELETE FROM cao.accounts WHERE id = %s", (account,))
    assert (
        client.get(f"/api/runbooks/{made['id']}", headers=agency.headers).json()["account_id"]
        is None
    )


def test_members_may_edit_runbooks(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    member = {"Authorization": f"Bearer {make_api_key(app_conn, agency.id, 'member')}"}
    r = client.post("/api/runbooks", json={"title": "By a member"}, headers=member)
    assert r.status_code == 201


def test_the_body_may_hold_65536_characters_and_no_more(
    client: TestClient, agency: AgencyFixture, owner_conn: Conn
) -> None:
    create(client, agency, body="é" * RUNBOOK_BODY_MAX_CHARS)
    r = client.post(
        "/api/runbooks",
        json={"title": "too long", "body": "x" * (RUNBOOK_BODY_MAX_CHARS + 1)},
        headers=agency.headers,
    )
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("body")
    assert count_runbooks(owner_conn, agency.id) == 1


def test_a_request_body_over_the_limit_is_413_and_stores_nothing(
    client: TestClient, agency: AgencyFixture, owner_conn: Conn
) -> None:
    r = client.post(
        "/api/runbooks",
        json={"title": "huge", "body": "x" * (MAX_BODY_BYTES + 1)},
        headers=agency.headers,
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    assert count_runbooks(owner_conn, agency.id) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"title": "x", "agency_id": "00000000-0000-4000-8000-000000000000"},
        {"title": "x", "id": "00000000-0000-4000-8000-000000000000"},
        {"title": "x", "version": 7},
        {"title": "x", "created_at": "2020-01-01T00:00:00Z"},
        {"title": ""},
        {"title": "   "},
        {"title": "two\nlines"},
        {"title": "nul \u0000"},
        {"title": "x", "body": "nul \u0000"},
        '{"title": "x", "body": "lone \\ud800 surrogate"}',  # legal JSON, not UTF-8
        {"title": "x" * 201},
        {"title": "x", "account_id": "not-a-uuid"},
        {"body": "no title"},
    ],
)
def test_bad_or_forbidden_fields_are_422_and_store_nothing(
    client: TestClient, agency: AgencyFixture, owner_conn: Conn, body: dict[str, Any] | str
) -> None:
    if isinstance(body, str):
        headers = {**agency.headers, "Content-Type": "application/json"}
        r = client.post("/api/runbooks", content=body, headers=headers)
    else:
        r = client.post("/api/runbooks", json=body, headers=agency.headers)
    assert r.status_code == 422, r.text
    assert count_runbooks(owner_conn, agency.id) == 0


def test_a_patch_must_change_something_and_cannot_null_the_title(
    client: TestClient, agency: AgencyFixture
) -> None:
    made = create(client, agency)
    url = f"/api/runbooks/{made['id']}"
    for body in (
        {"version": 1},
        {"title": None, "version": 1},
        {"body": None, "version": 1},
        {"version": 0, "body": "x"},
    ):
        assert client.patch(url, json=body, headers=agency.headers).status_code == 422, body


def test_another_agencys_account_or_runbook_is_not_found_and_nothing_changes(
    client: TestClient,
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    app_conn: Conn,
    owner_conn: Conn,
) -> None:
    theirs = make_account(app_conn, other_agency.id)
    their_book = create(client, other_agency, body="theirs")
    r = client.post(
        "/api/runbooks", json={"title": "x", "account_id": str(theirs)}, headers=agency.headers
    )
    assert r.status_code == 404
    assert count_runbooks(owner_conn, agency.id) == 0
    mine = create(client, agency)
    r = client.patch(
        f"/api/runbooks/{mine['id']}",
        json={"account_id": str(theirs), "version": 1},
        headers=agency.headers,
    )
    assert r.status_code == 404
    url = f"/api/runbooks/{their_book['id']}"
    assert client.get(url, headers=agency.headers).status_code == 404
    assert (
        client.patch(url, json={"body": "x", "version": 1}, headers=agency.headers).status_code
        == 404
    )
    assert client.delete(url, headers=agency.headers).status_code == 404
    assert client.get(f"{url}/versions", headers=agency.headers).status_code == 404
    assert client.get(url, headers=other_agency.headers).json()["body"] == "theirs"


# ---- bounds per agency (issue 15, item 7) ------------------------------------------------------


def test_an_agency_holds_at_most_max_runbooks_and_the_next_is_a_409(
    client: TestClient, agency: AgencyFixture, other_agency: AgencyFixture, app_conn: Conn
) -> None:
    with tenant_tx(app_conn, agency.id):
        app_conn.execute(
            "INSERT INTO cao.runbooks (agency_id, title, body)"
            " SELECT %s, 'bulk ' || n, '' FROM generate_series(1, %s) AS n",
            (agency.id, MAX_RUNBOOKS - 1),
        )
    create(client, agency)  # the last place
    r = client.post("/api/runbooks", json={"title": "One too many"}, headers=agency.headers)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "too_many_runbooks"
    assert str(MAX_RUNBOOKS) in r.json()["error"]["message"]
    assert count_runbooks(app_conn, agency.id, tenant=True) == MAX_RUNBOOKS
    # Another agency's budget is its own.
    create(client, other_agency)
    # Deleting one frees a place.
    first = client.get("/api/runbooks", params={"limit": 1}, headers=agency.headers).json()
    gone = first["items"][0]["id"]
    assert client.delete(f"/api/runbooks/{gone}", headers=agency.headers).status_code == 204
    create(client, agency)


def test_only_the_newest_versions_are_kept(client: TestClient, agency: AgencyFixture) -> None:
    made = create(client, agency, body="v1")
    url = f"/api/runbooks/{made['id']}"
    edits = MAX_VERSIONS_KEPT + 3
    for n in range(1, edits + 1):
        r = client.patch(url, json={"body": f"v{n + 1}", "version": n}, headers=agency.headers)
        assert r.status_code == 200, r.text
    assert r.json()["version"] == edits + 1
    items = client.get(f"{url}/versions", params={"limit": 500}, headers=agency.headers).json()
    kept = [v["version"] for v in items["items"]]
    assert kept == list(range(edits, edits - MAX_VERSIONS_KEPT, -1))
    assert client.get(f"{url}/versions/1", headers=agency.headers).status_code == 404
    newest = client.get(f"{url}/versions/{edits}", headers=agency.headers).json()
    assert newest["body"] == f"v{edits}"
