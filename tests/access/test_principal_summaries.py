"""GET /api/access/principals reads the per account x principal summaries kept at ingest (issue
15, item 11), all time; a time window is computed from the window's events. The summaries go
with an account's or an agency's deletion, and the operator command rebuilds them from the
events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from functions.access import operator
from shared.settings import Settings
from tests.access.test_access import all_pages
from tests.support.database import TestDatabase
from tests.support.deps import with_settings
from tests.support.factories import AgencyFixture, make_account, make_agency
from tests.support.principals import assert_summaries_match_events, summarised
from tests.sync_cloudtrail.test_store import event_row, insert

Conn = psycopg.Connection[Any]
T0 = datetime(2026, 10, 1, tzinfo=UTC)
ALICE = "arn:aws:iam::111111111111:user/alice"


def _history(conn: Conn, agency: AgencyFixture, aws_ids: tuple[str, ...] = ("1", "2")) -> list[Any]:
    accounts = [make_account(conn, agency.id, a * 12) for a in aws_ids]
    for n, account in enumerate(accounts):
        rows = [
            event_row(
                f"e-{i}",
                T0 + timedelta(hours=i + n),
                principal_arn=None
                if i % 5 == 0
                else f"arn:aws:iam::{aws_ids[n] * 12}:user/u{i % 4}",
                principal_name="s3.amazonaws.com" if i % 5 == 0 else f"u{i % 4}",
                source_ip=f"192.0.2.{i % 9}",
            )
            for i in range(40)
        ]
        insert(conn, agency.id, account, rows)
    return accounts


def test_the_all_time_page_is_read_from_the_summaries_and_a_window_from_the_events(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, owner_conn: Conn
) -> None:
    _history(app_conn, agency)
    # Mark one summary: only an endpoint that reads the summaries can show the mark.
    owner_conn.execute(
        "UPDATE cao.access_principals SET event_count = 1000 WHERE agency_id = %s"
        " AND principal = 's3.amazonaws.com'",
        (agency.id,),
    )
    everything = {p["principal"]: p for p in all_pages(client, agency, "/api/access/principals")}
    assert everything["s3.amazonaws.com"]["event_count"] == 2000  # two accounts, 1000 each

    window = all_pages(client, agency, "/api/access/principals", since=T0.isoformat(), limit=3)
    by_events = {p["principal"]: p["event_count"] for p in window}
    assert by_events["s3.amazonaws.com"] == 16  # counted from the events of the window


def test_deleting_an_account_or_the_agency_takes_its_summaries_and_keeps_the_rest_right(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, owner_conn: Conn
) -> None:
    gone, stays = _history(app_conn, agency)
    other = make_agency(app_conn)
    _history(app_conn, other, ("3",))
    theirs = summarised(owner_conn, other.id)
    assert {a for a, _ in summarised(owner_conn, agency.id)} == {gone, stays}

    assert client.delete(f"/api/accounts/{gone}", headers=agency.headers).status_code == 204

    assert {a for a, _ in summarised(owner_conn, agency.id)} == {stays}
    assert assert_summaries_match_events(owner_conn, agency.id) == 5
    listed = all_pages(client, agency, "/api/access/principals")
    assert sum(p["event_count"] for p in listed) == 40
    assert not any("111111111111" in p["principal"] for p in listed)

    assert client.delete("/api/agency", headers=agency.headers).status_code == 204
    for table in ("access_principals", "access_principal_ips", "access_principal_totals"):
        left = owner_conn.execute(
            sql.SQL("SELECT count(*) FROM cao.{} WHERE agency_id = %s").format(
                sql.Identifier(table)
            ),
            (agency.id,),
        ).fetchone()
        assert left == (0,)
    assert summarised(owner_conn, other.id) == theirs


@pytest.fixture
def owner_env(database: TestDatabase, env: dict[str, str]) -> dict[str, str]:
    env["DATABASE_OWNER_URL"] = database.owner_url
    return env


def _damage(owner: Conn, agency: AgencyFixture) -> None:
    owner.execute(
        "UPDATE cao.access_principals SET event_count = event_count + 7,"
        " first_seen = first_seen - interval '1 day' WHERE agency_id = %s",
        (agency.id,),
    )
    owner.execute(
        "DELETE FROM cao.access_principal_ips WHERE agency_id = %s AND source_ip = '192.0.2.1'",
        (agency.id,),
    )
    owner.execute(
        "DELETE FROM cao.access_principals WHERE agency_id = %s AND principal LIKE %s",
        (agency.id, "%user/u1"),
    )


def test_the_rebuild_command_recomputes_one_agency_or_all_from_the_events(
    owner_env: dict[str, str],
    settings: Settings,
    app_conn: Conn,
    owner_conn: Conn,
    capsys: pytest.CaptureFixture[str],
) -> None:
    one, two = make_agency(app_conn), make_agency(app_conn)
    _history(app_conn, one)
    _history(app_conn, two, ("3",))
    expected_two = summarised(owner_conn, two.id)
    _damage(owner_conn, one)
    _damage(owner_conn, two)
    assert summarised(owner_conn, two.id) != expected_two

    assert operator.main(["rebuild-principal-summaries", "--agency", str(one.id)]) == 0
    assert capsys.readouterr().out == "10\n"
    assert assert_summaries_match_events(owner_conn, one.id) == 10
    assert summarised(owner_conn, two.id) != expected_two  # another agency's left alone

    assert operator.main(["rebuild-principal-summaries", "--all"]) == 0
    assert summarised(owner_conn, two.id) == expected_two
    assert assert_summaries_match_events(owner_conn, one.id) == 10


def test_the_rebuild_command_refuses_to_run_without_database_owner_url(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    without = {k: v for k, v in env.items() if k != "DATABASE_OWNER_URL"}
    with with_settings(Settings(without)):
        code = operator.main(["rebuild-principal-summaries", "--all"])
    assert code == 1
    assert capsys.readouterr().err.startswith("error: DATABASE_OWNER_URL is not configured")


def test_the_rebuild_command_needs_one_agency_or_all() -> None:
    with pytest.raises(SystemExit) as exited:
        operator.main(["rebuild-principal-summaries"])
    assert exited.value.code == 2
