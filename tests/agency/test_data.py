"""Data rights: export all of the agency's data (streamed JSON), delete the agency entirely."""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from functions.agency import service
from shared.db import Connection
from tests.support import seed
from tests.support.alerts import add_alert_rows
from tests.support.factories import AgencyFixture, make_account, make_api_key

Conn = psycopg.Connection[Any]


def populate(conn: Conn, agency: AgencyFixture, marker: str) -> dict[str, Any]:
    """A row of the agency in every tenant table, each carrying `marker` where text allows."""
    account = make_account(conn, agency.id, alias=f"{marker}-account", is_management=True)
    now = datetime.now(UTC)
    seed.insert(
        conn,
        agency.id,
        "discovered_accounts",
        management_id=account,
        aws_account_id="210987654321",
        name=f"{marker}-member",
    )
    seed.add_cost(conn, agency.id, account, "210987654321", date(2025, 1, 1), f"{marker}-svc", "1")
    seed.insert(
        conn, agency.id, "cost_months", account_id=account, month=date(2025, 1, 1), estimated=False
    )
    seed.add_events(
        conn,
        agency.id,
        account,
        "210987654321",
        [seed.event(now, principal_name=f"{marker}-principal")],
    )
    job = seed.insert(
        conn,
        agency.id,
        "sync_jobs",
        account_id=account,
        kind="costs",
        next_run_at=now - timedelta(minutes=5),
    )
    seed.insert(
        conn, agency.id, "sync_cursors", account_id=account, region="us-east-1", position=now
    )
    seed.insert(
        conn, agency.id, "sync_runs", account_id=account, kind="costs", error_class=f"{marker}-err"
    )
    book = seed.insert(
        conn, agency.id, "runbooks", title=f"{marker}-runbook", body="b", account_id=account
    )
    seed.insert(
        conn,
        agency.id,
        "runbook_versions",
        runbook_id=book,
        version=1,
        title=f"{marker}-old",
        body="a",
    )
    seed.insert(conn, agency.id, "audit_log", actor="test", action=f"{marker}.done")
    add_alert_rows(conn, agency.id, account, "210987654321", marker)
    people = seed.add_people(conn, agency.id, marker)
    return {"account": account, "job": job, **people}


def test_the_export_holds_every_table_of_the_agency_and_nothing_of_another(
    client: TestClient,
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    app_conn: Conn,
    owner_conn: Conn,
) -> None:
    populate(app_conn, agency, "ours")
    populate(app_conn, other_agency, "THEIRS")

    r = client.get("/api/agency/export", headers=agency.headers)

    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert "attachment" in r.headers["content-disposition"]
    doc = r.json()
    assert doc["format"] == "cloudagencyops-export/1" and doc["agency_id"] == str(agency.id)
    tables = doc["tables"]
    # Every table the app can read that holds agency rows is there, with all of ours.
    expected = {
        r[0]
        for r in owner_conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid"
            " WHERE n.nspname = 'cao' AND c.relkind IN ('r', 'p') AND a.attname = 'agency_id'"
            " AND has_table_privilege('cao_app', c.oid, 'SELECT')"
        )
    }
    assert set(tables) == expected | {"agencies"}
    for table, rows in tables.items():
        column = "id" if table == "agencies" else "agency_id"
        count = owner_conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM cao.{} WHERE {} = %s").format(
                psycopg.sql.Identifier(table), psycopg.sql.Identifier(column)
            ),
            (agency.id,),
        ).fetchone()
        assert count == (len(rows),), table
        for row in rows:
            assert row[column] == str(agency.id), table
    nonempty = {t for t, rows in tables.items() if rows}
    assert {"accounts", "cost_rows", "access_events", "runbooks", "audit_log"} <= nonempty
    assert {"users", "passkeys", "sessions", "invitations", "enrolments"} <= nonempty
    # Passkeys are exported with their public keys; token hashes never.
    assert tables["passkeys"][0]["public_key"].startswith("\\x")
    assert "token_hash" not in r.text
    assert {"clients", "cost_snapshots", "budgets", "budget_events", "anomalies"} <= nonempty
    assert "THEIRS" not in r.text and str(other_agency.id) not in r.text
    assert "ours-runbook" in r.text and "ours-principal" in r.text
    # Credential material and fencing tokens stay out.
    assert "key_hash" not in r.text and "lease_token" not in r.text
    assert tables["api_keys"][0]["key_prefix"] == agency.api_key[:10]
    # Amounts keep every digit (Postgres renders them; nothing parses them into floats).
    assert '"amount": 1.0000000000' in r.text
    # The export is audited.
    assert any(e["action"] == "agency.exported" for e in tables["audit_log"])


def test_the_export_is_streamed_in_chunks(agency: AgencyFixture, app_conn: Conn) -> None:
    account = make_account(app_conn, agency.id)
    with seed.tenant(app_conn, agency.id):
        app_conn.execute(
            "INSERT INTO cao.access_events (agency_id, account_id, aws_account_id, region,"
            " event_id, event_time, event_name, principal_arn) SELECT %s, %s, '123456789012',"
            " 'us-east-1', 'e' || g, now(), 'ListBuckets', repeat('p', 200)"
            " FROM generate_series(1, 3000) g",
            (agency.id, account),
        )
    tables = service.start_export(app_conn, agency.id, "test")
    lend = lambda: contextlib.nullcontext(app_conn)  # noqa: E731
    chunks = list(service.export_chunks(lend, agency.id, tables, now=datetime.now(UTC)))
    assert len(chunks) > 5 and max(len(c) for c in chunks) < 2 * service.CHUNK_CHARS
    doc = json.loads(b"".join(chunks))
    assert len(doc["tables"]["access_events"]) == 3000


def test_members_can_neither_export_nor_delete(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, owner_conn: Conn
) -> None:
    member = {"Authorization": f"Bearer {make_api_key(app_conn, agency.id, 'member')}"}
    assert client.get("/api/agency/export", headers=member).status_code == 403
    assert client.delete("/api/agency", headers=member).status_code == 403
    assert owner_conn.execute("SELECT 1 FROM cao.agencies WHERE id = %s", (agency.id,)).fetchone()


def rows_left(owner: Conn, agency_id: Any, account_ids: list[Any]) -> dict[str, int]:
    """Rows naming the agency (or its accounts) in EVERY table of schema cao, as the owner."""
    left: dict[str, int] = {}
    tables = owner.execute(
        "SELECT table_name, array_agg(column_name::text) FROM information_schema.columns"
        " WHERE table_schema = 'cao' GROUP BY table_name"
    ).fetchall()
    for table, columns in tables:
        count = 0
        for column in ("agency_id", "account_id", "management_id"):
            if column in columns:
                ids = [agency_id] if column == "agency_id" else account_ids
                row = owner.execute(
                    psycopg.sql.SQL("SELECT count(*) FROM cao.{} WHERE {} = ANY(%s)").format(
                        psycopg.sql.Identifier(table), psycopg.sql.Identifier(column)
                    ),
                    (ids,),
                ).fetchone()
                count += row[0] if row else 0
        if table == "agencies":
            row = owner.execute("SELECT count(*) FROM cao.agencies WHERE id = %s", (agency_id,))
            count += row.fetchone()[0]  # type: ignore[index]
        if table == "rate_limits":
            row = owner.execute(
                "SELECT count(*) FROM cao.rate_limits WHERE bucket LIKE %s", (f"%{agency_id}%",)
            )
            count += row.fetchone()[0]  # type: ignore[index]
        left[table] = count
    return left


def test_deleting_the_agency_removes_every_row_of_it_in_every_table(
    client: TestClient,
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    app_conn: Conn,
    owner_conn: Conn,
) -> None:
    ours = populate(app_conn, agency, "ours")
    populate(app_conn, other_agency, "theirs")
    # Traces in the cross-tenant tables too.
    owner_conn.execute(
        "SELECT cao.record_webhook(%s, 'subscription.active', %s)", (f"msg_{agency.id}", agency.id)
    )
    owner_conn.execute("SELECT cao.rate_limit_hit(%s)", (f"sync-now:{ours['account']}",))
    theirs_before = seed.all_rows_of(owner_conn, other_agency.id)
    assert sum(rows_left(owner_conn, agency.id, [ours["account"]]).values()) > 10

    r = client.delete("/api/agency", headers=agency.headers)

    assert r.status_code == 204
    left = rows_left(owner_conn, agency.id, [ours["account"]])
    assert left == dict.fromkeys(left, 0)
    assert owner_conn.execute(
        "SELECT count(*) FROM cao.rate_limits WHERE bucket = %s", (f"sync:{ours['account']}",)
    ).fetchone() == (0,)
    assert seed.all_rows_of(owner_conn, other_agency.id) == theirs_before
    # The key went with the agency.
    assert client.get("/api/accounts", headers=agency.headers).status_code == 401


def test_no_aws_work_is_dispatched_or_claimed_for_a_deleted_agency(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, owner_conn: Conn
) -> None:
    ours = populate(app_conn, agency, "ours")
    assert client.delete("/api/agency", headers=agency.headers).status_code == 204
    now = datetime.now(UTC)
    due = owner_conn.execute(
        "SELECT agency_id FROM cao.dispatch_due_jobs('costs', 10000)"
    ).fetchall()
    assert (agency.id,) not in due
    # A message already in the queue for its job finds nothing to claim: no AWS call follows.
    assert (
        owner_conn.execute("SELECT * FROM cao.claim_job(%s, %s, 60)", (ours["job"], now)).fetchall()
        == []
    )


def test_deletion_is_idempotent_also_when_two_requests_race(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, database: Any
) -> None:
    populate(app_conn, agency, "ours")
    outcomes: list[bool] = []
    barrier = threading.Barrier(2)

    def delete() -> None:
        with database.app() as conn:
            barrier.wait()
            outcomes.append(service.delete_agency(conn, agency.id))

    threads = [threading.Thread(target=delete) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == [False, True]
    conn: Connection
    with database.app() as conn:
        assert service.delete_agency(conn, agency.id) is False  # and again: nothing to do


@pytest.mark.parametrize("status", ["active", "past_due"])
def test_deletion_is_refused_while_a_paid_subscription_is_active(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, owner_conn: Conn, status: str
) -> None:
    populate(app_conn, agency, "ours")
    owner_conn.execute(
        "UPDATE cao.agencies SET billing_status = %s WHERE id = %s", (status, agency.id)
    )
    before = seed.all_rows_of(owner_conn, agency.id)

    r = client.delete("/api/agency", headers=agency.headers)

    assert r.status_code == 409
    error = r.json()["error"]
    assert error["code"] == "subscription_active"
    assert "cancel" in error["message"] and "/api/billing/portal" in error["message"]
    assert seed.all_rows_of(owner_conn, agency.id) == before


@pytest.mark.parametrize("status", ["trialing", "canceled", "revoked", "unpaid"])
def test_deletion_goes_ahead_once_nothing_is_being_charged(
    client: TestClient, agency: AgencyFixture, owner_conn: Conn, status: str
) -> None:
    owner_conn.execute(
        "UPDATE cao.agencies SET billing_status = %s WHERE id = %s", (status, agency.id)
    )
    assert client.delete("/api/agency", headers=agency.headers).status_code == 204
    assert (
        owner_conn.execute("SELECT 1 FROM cao.agencies WHERE id = %s", (agency.id,)).fetchone()
        is None
    )
