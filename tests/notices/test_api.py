"""GET /api/notices, GET /api/notices/{id}, POST /api/notices/{id}/read: agency-scoped reads
of the notices sent to the caller's agency, and what row-level security allows the app role."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.notices.conftest import Operator, incident_args
from tests.support.factories import AgencyFixture, make_api_key


def publish(run_operator: Operator, agency: AgencyFixture, title: str) -> str:
    return run_operator(*incident_args("--agency", str(agency.id), title=title)).notice_id


def test_the_list_is_newest_first_in_pages_joined_by_a_cursor(
    agency: AgencyFixture, run_operator: Operator, client: TestClient
) -> None:
    ids = [publish(run_operator, agency, f"Incident {n}") for n in range(3)]

    first = client.get("/api/notices", params={"limit": 2}, headers=agency.headers).json()
    second = client.get(
        "/api/notices", params={"limit": 2, "cursor": first["next_cursor"]}, headers=agency.headers
    ).json()

    assert [n["id"] for n in first["items"]] == [ids[2], ids[1]]
    assert [n["title"] for n in first["items"]] == ["Incident 2", "Incident 1"]
    assert [n["id"] for n in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    # Summaries only: the facts are in the notice itself.
    assert "known_facts" not in first["items"][0]


def test_the_list_filters_by_kind(
    agency: AgencyFixture, run_operator: Operator, client: TestClient
) -> None:
    publish(run_operator, agency, "An incident")
    response = client.get(
        "/api/notices", params={"kind": "subprocessor_change"}, headers=agency.headers
    )
    assert response.status_code == 200 and response.json()["items"] == []


def test_marking_read_clears_unread_until_the_next_update_and_is_audited_once_per_version(
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    run_operator: Operator,
    client: TestClient,
) -> None:
    notice_id = publish(run_operator, agency, "Read me")
    # Any key of the agency may acknowledge a notice, not only admins.
    member = make_api_key(app_conn, agency.id, role="member")
    member_headers = {"Authorization": f"Bearer {member}"}

    read = client.post(f"/api/notices/{notice_id}/read", headers=member_headers)
    read_again = client.post(f"/api/notices/{notice_id}/read", headers=agency.headers)

    assert read.status_code == 200
    assert read.json()["unread"] is False and read.json()["read_at"] is not None
    assert read_again.json()["unread"] is False
    listed = client.get("/api/notices", headers=agency.headers).json()["items"][0]
    assert listed["unread"] is False

    run_operator("update", "--notice", notice_id, "--text", "New facts.")
    assert client.get(f"/api/notices/{notice_id}", headers=agency.headers).json()["unread"]
    client.post(f"/api/notices/{notice_id}/read", headers=agency.headers)

    reads = owner_conn.execute(
        "SELECT count(*) FROM cao.audit_log WHERE target = %s AND action = 'notice.read'",
        (notice_id,),
    ).fetchone()
    assert reads == (2,)


@pytest.mark.parametrize(
    ("method", "path", "params", "status"),
    [
        ("GET", "/api/notices/not-a-uuid", {}, 422),
        ("POST", "/api/notices/not-a-uuid/read", {}, 422),
        ("GET", f"/api/notices/{uuid.uuid4()}", {}, 404),
        ("POST", f"/api/notices/{uuid.uuid4()}/read", {}, 404),
        ("GET", "/api/notices", {"cursor": "bm90IGEgY3Vyc29y"}, 400),
        ("GET", "/api/notices", {"cursor": "!!"}, 422),
        ("GET", "/api/notices", {"kind": "outage"}, 422),
        ("GET", "/api/notices", {"limit": 0}, 422),
    ],
)
def test_bad_ids_and_parameters_get_a_json_error(
    agency: AgencyFixture,
    client: TestClient,
    method: str,
    path: str,
    params: dict[str, Any],
    status: int,
) -> None:
    response = client.request(method, path, params=params, headers=agency.headers)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] and error["message"]


def test_notices_need_an_api_key(client: TestClient) -> None:
    response = client.get("/api/notices")
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"


def test_a_huge_limit_is_clamped_not_refused(agency: AgencyFixture, client: TestClient) -> None:
    response = client.get("/api/notices", params={"limit": 10**9}, headers=agency.headers)
    assert response.status_code == 200


def tenant(conn: psycopg.Connection[Any], agency_id: uuid.UUID) -> None:
    conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(agency_id),))


def test_row_security_hides_undelivered_notices_and_their_updates_from_the_app_role(
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    run_operator: Operator,
) -> None:
    notice_id = publish(run_operator, agency, "Only A")
    run_operator("update", "--notice", notice_id, "--text", "More.")
    # No agency filter in these queries: only the policies stand between B and A's notice.
    counts = (
        "SELECT (SELECT count(*) FROM cao.notices WHERE id = %(n)s),"
        " (SELECT count(*) FROM cao.notice_updates WHERE notice_id = %(n)s),"
        " (SELECT count(*) FROM cao.notice_deliveries WHERE notice_id = %(n)s)"
    )
    with app_conn.transaction():
        tenant(app_conn, other_agency.id)
        assert app_conn.execute(counts, {"n": notice_id}).fetchone() == (0, 0, 0)
    with app_conn.transaction():
        tenant(app_conn, agency.id)
        assert app_conn.execute(counts, {"n": notice_id}).fetchone() == (1, 1, 1)
    with app_conn.transaction():  # no tenant: nothing
        assert app_conn.execute(counts, {"n": notice_id}).fetchone() == (0, 0, 0)


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO cao.notices (kind, title, known_facts, contact, status, effective_at)"
        " VALUES ('subprocessor_change', 'x', 'x', 'x@y', 'scheduled', now())",
        "UPDATE cao.notices SET title = 'changed'",
        "INSERT INTO cao.notice_updates (notice_id, text) VALUES (%(n)s, 'forged')",
        "INSERT INTO cao.notice_deliveries (agency_id, notice_id) VALUES (%(a)s, %(n)s)",
        "UPDATE cao.notice_deliveries SET delivered_at = now()",
        "DELETE FROM cao.notice_deliveries",
    ],
)
def test_the_app_role_cannot_write_notices_or_deliveries_beyond_read_at(
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    run_operator: Operator,
    statement: str,
) -> None:
    notice_id = publish(run_operator, agency, "Read only")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), app_conn.transaction():
        tenant(app_conn, agency.id)
        app_conn.execute(statement, {"n": notice_id, "a": agency.id})


def test_deleting_an_agency_removes_its_deliveries_and_keeps_the_notice_for_others(
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    run_operator: Operator,
    client: TestClient,
) -> None:
    notice_id = run_operator(
        *incident_args("--agency", str(agency.id), "--agency", str(other_agency.id))
    ).notice_id
    client.post(f"/api/notices/{notice_id}/read", headers=agency.headers)

    # As agency deletion does it: the app role, in the agency's own transaction (the cascade
    # reaches deliveries although the app role may not delete them itself).
    with app_conn.transaction():
        tenant(app_conn, agency.id)
        app_conn.execute("DELETE FROM cao.agencies WHERE id = %s", (agency.id,))

    left = owner_conn.execute(
        "SELECT agency_id FROM cao.notice_deliveries WHERE notice_id = %s", (notice_id,)
    ).fetchall()
    assert left == [(other_agency.id,)]
    assert client.get(f"/api/notices/{notice_id}", headers=other_agency.headers).status_code == 200
