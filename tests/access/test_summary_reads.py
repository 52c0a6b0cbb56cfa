"""GET /api/access/new-principals and GET /api/access/vendor (all time) read the summaries kept at
ingest (issue 21), not the events: a mark planted in a summary shows in the answer, and the
pages equal what the events give when the summaries are right. A vendor page under a time
window is still computed from the window's events. The app role may not delete the ledger or
write another agency's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from shared.db import tenant_tx
from tests.access.test_access import all_pages
from tests.support.factories import AgencyFixture, make_account, make_agency
from tests.support.principals import assert_summaries_match_events
from tests.sync_cloudtrail.test_store import event_row, insert

Conn = psycopg.Connection[Any]
SESSION = "arn:aws:sts::210987654321:assumed-role/CloudAgencyOpsReadOnly/cao-sync-{n}"


def _trail(conn: Conn, agency: AgencyFixture, now: datetime) -> list[Any]:
    accounts = [make_account(conn, agency.id) for _ in range(2)]
    for a, account in enumerate(accounts):
        rows = []
        for i in range(30):
            when = now - timedelta(days=i, minutes=a)
            rows.append(
                event_row(
                    f"e-{i}",
                    when,
                    principal_arn=f"arn:aws:iam::210987654321:user/u{i % 6}",
                    principal_name=f"u{i % 6}",
                    source_ip=f"192.0.2.{i % 4}",
                )
            )
            rows.append(
                event_row(
                    f"v-{i}",
                    when,
                    principal_arn=SESSION.format(n=i % 3),
                    principal_name=f"cao-sync-{i % 3}",
                    event_name=("LookupEvents", "GetCostAndUsage", "ListAccounts")[i % 3],
                    source_ip=f"203.0.113.{i % 5}",
                    is_vendor=True,
                )
            )
        insert(conn, agency.id, account, rows)
    return accounts


def test_the_vendor_ledger_is_read_from_its_summary_and_a_window_from_the_events(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, owner_conn: Conn
) -> None:
    now = datetime.now(UTC)
    accounts = _trail(app_conn, agency, now)
    assert_summaries_match_events(owner_conn, agency.id)
    everything = all_pages(client, agency, "/api/access/vendor", limit=2)
    assert len(everything) == 6 and sum(s["event_count"] for s in everything) == 60
    assert [s["last_event"] for s in everything] == sorted(
        (s["last_event"] for s in everything), reverse=True
    )
    first = everything[0]
    assert first["event_names"] and first["source_ips"]

    owner_conn.execute(
        "UPDATE cao.access_vendor_sessions SET event_count = 1000"
        " WHERE account_id = %s AND session_name = 'cao-sync-0'",
        (accounts[0],),
    )
    marked = all_pages(client, agency, "/api/access/vendor", account_id=str(accounts[0]))
    assert {s["session_name"]: s["event_count"] for s in marked}["cao-sync-0"] == 1000
    window = all_pages(
        client,
        agency,
        "/api/access/vendor",
        account_id=str(accounts[0]),
        since=(now - timedelta(days=100)).isoformat(),
    )
    assert {s["session_name"]: s["event_count"] for s in window}["cao-sync-0"] == 10


def test_new_principals_are_read_from_the_summaries(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, owner_conn: Conn
) -> None:
    now = datetime.now(UTC)
    accounts = _trail(app_conn, agency, now)
    week = all_pages(client, agency, "/api/access/new-principals", days=7, limit=1)
    # u0..u5 act on days 0..29: each was first seen more than a week ago; our sessions too.
    assert week == []
    insert(
        app_conn,
        agency.id,
        accounts[1],
        [event_row("fresh", now - timedelta(hours=1), principal_arn=None, principal_name="svc")],
    )
    [fresh] = all_pages(client, agency, "/api/access/new-principals", days=7)
    assert (fresh["principal"], fresh["event_count"]) == ("svc", 1)
    only_a = all_pages(
        client, agency, "/api/access/new-principals", days=7, account_id=str(accounts[0])
    )
    assert only_a == []

    # Read from the summaries: a principal whose summaries say "first seen yesterday" is new.
    owner_conn.execute(
        "UPDATE cao.access_principals SET first_seen = now() - interval '1 day'"
        " WHERE agency_id = %s AND principal = 'arn:aws:iam::210987654321:user/u5'",
        (agency.id,),
    )
    listed = all_pages(client, agency, "/api/access/new-principals", days=7)
    assert [p["principal"] for p in listed] == ["svc", "arn:aws:iam::210987654321:user/u5"]
    by_account = all_pages(
        client, agency, "/api/access/new-principals", days=7, account_id=str(accounts[0])
    )
    assert [p["principal"] for p in by_account] == ["arn:aws:iam::210987654321:user/u5"]


def test_the_app_role_cannot_delete_the_ledger_or_write_another_agencys(
    app_conn: Conn, owner_conn: Conn
) -> None:
    mine, theirs = make_agency(app_conn), make_agency(app_conn)
    accounts = _trail(app_conn, mine, datetime.now(UTC))
    for table in ("access_vendor_sessions", "access_vendor_event_names", "access_vendor_ips"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant_tx(app_conn, mine.id):
            app_conn.execute(f"DELETE FROM cao.{table}")  # type: ignore[call-overload]
    with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant_tx(app_conn, theirs.id):
        app_conn.execute(
            "INSERT INTO cao.access_vendor_sessions (agency_id, account_id, session_name,"
            " aws_account_id, first_event, last_event, event_count)"
            " VALUES (%s, %s, 'x', '210987654321', now(), now(), 1)",
            (mine.id, accounts[0]),
        )
    with tenant_tx(app_conn, theirs.id):
        seen = app_conn.execute("SELECT count(*) FROM cao.access_vendor_sessions").fetchone()
    assert seen == (0,)
    assert_summaries_match_events(owner_conn, mine.id)
