"""shared/store/access.py: bulk insert, cursors, tenant isolation (real Postgres)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from shared.db import tenant_tx
from shared.store import access as store
from tests.support.factories import AgencyFixture, make_account
from tests.sync_cloudtrail.helpers import NOW


def event_row(event_id: str, when: datetime, **fields: Any) -> tuple[Any, ...]:
    values = {
        "event_name": "DescribeInstances",
        "principal_arn": "arn:aws:iam::210987654321:user/alice",
        "principal_name": "alice",
        "source_ip": "192.0.2.10",
        "event_time": when,
        "event_id": event_id,
        "aws_account_id": "210987654321",
        "region": "us-east-1",
        "is_vendor": False,
        **fields,
    }
    return tuple(values[c] for c in store.EVENT_COLUMNS)


def insert(
    conn: psycopg.Connection[Any], agency_id: uuid.UUID, account_id: uuid.UUID, rows: list[Any]
) -> int:
    with tenant_tx(conn, agency_id):
        return store.insert_events(conn, agency_id, account_id, rows)


def test_a_batch_inserts_once_and_a_rerun_inserts_nothing(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    account = make_account(app_conn, agency.id)
    rows = [event_row(f"e-{i}", NOW - timedelta(minutes=i)) for i in range(300)]
    assert insert(app_conn, agency.id, account, rows) == 300
    assert insert(app_conn, agency.id, account, [*rows[:50], event_row("new", NOW)]) == 1
    with tenant_tx(app_conn, agency.id):
        count = app_conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM cao.access_events"
            " WHERE account_id = %s",
            (account,),
        ).fetchone()
    assert count == (301, 301)


def test_the_same_event_id_in_two_linked_accounts_is_two_rows(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    first, second = make_account(app_conn, agency.id), make_account(app_conn, agency.id)
    assert insert(app_conn, agency.id, first, [event_row("same", NOW)]) == 1
    assert insert(app_conn, agency.id, second, [event_row("same", NOW)]) == 1


def test_no_agency_can_write_into_or_read_another_agencys_events(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture, other_agency: AgencyFixture
) -> None:
    theirs = make_account(app_conn, other_agency.id)
    assert insert(app_conn, other_agency.id, theirs, [event_row("theirs", NOW)]) == 1
    with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant_tx(app_conn, agency.id):
        store.insert_events(app_conn, other_agency.id, theirs, [event_row("mine", NOW)])
    with tenant_tx(app_conn, agency.id):
        assert store.get_cursors(app_conn, theirs) == {}
        seen = app_conn.execute("SELECT count(*) FROM cao.access_events").fetchone()
        assert seen == (0,)


def test_cursors_are_per_region_and_pass_and_remember_a_partly_read_window(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    account = make_account(app_conn, agency.id)
    hour = timedelta(hours=1)
    with tenant_tx(app_conn, agency.id):
        store.set_cursor(
            app_conn, agency.id, account, "us-east-1", position=NOW, partial_end=None, now=NOW
        )
        store.set_cursor(
            app_conn,
            agency.id,
            account,
            "eu-west-1",
            position=NOW - 2 * hour,
            partial_end=NOW - hour,
            partial_from=NOW - 90 * timedelta(minutes=1),
            partial_since=NOW - hour,
            now=NOW,
        )
        store.set_cursor(
            app_conn,
            agency.id,
            account,
            "us-east-1",
            pass_="sweep",
            position=NOW - 6 * hour,
            partial_end=None,
            now=NOW,
        )
        cursors = store.get_cursors(app_conn, account)
        with pytest.raises(ValueError, match="after the cursor"):
            store.set_cursor(
                app_conn, agency.id, account, "us-east-1", position=NOW, partial_end=NOW, now=NOW
            )
        with pytest.raises(ValueError, match="partly read"):
            store.set_cursor(
                app_conn,
                agency.id,
                account,
                "us-east-1",
                position=NOW,
                partial_end=None,
                partial_from=NOW,
                now=NOW,
            )
    live = cursors[("us-east-1", "live")]
    assert live.position == NOW and live.partial_end is None
    partial = cursors[("eu-west-1", "live")]
    assert (partial.partial_end, partial.partial_from, partial.partial_since) == (
        NOW - hour,
        NOW - 90 * timedelta(minutes=1),
        NOW - hour,
    )
    assert cursors[("us-east-1", "sweep")].position == NOW - 6 * hour


def test_advancing_a_cursor_never_moves_it_back_nor_past_its_own_partial_window(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    account = make_account(app_conn, agency.id)
    hour = timedelta(hours=1)

    def advance(region: str, to: datetime) -> None:
        store.advance_cursor(
            app_conn, agency.id, account, region, pass_="sweep", position=to, now=NOW
        )

    with tenant_tx(app_conn, agency.id):
        advance("us-east-1", NOW - 5 * hour)  # created
        advance("us-east-1", NOW - 6 * hour)  # not back
        store.set_cursor(
            app_conn,
            agency.id,
            account,
            "eu-west-1",
            pass_="sweep",
            position=NOW - 8 * hour,
            partial_end=NOW - 7 * hour,
            partial_from=NOW - 7 * hour,
            partial_since=NOW,
            now=NOW,
        )
        advance("eu-west-1", NOW - hour)  # its own window comes first
        cursors = store.get_cursors(app_conn, account)
    assert cursors[("us-east-1", "sweep")].position == NOW - 5 * hour
    assert cursors[("eu-west-1", "sweep")].position == NOW - 8 * hour


def test_a_batch_beyond_the_bound_is_refused(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    account = make_account(app_conn, agency.id)
    rows = [event_row(f"e-{i}", NOW) for i in range(store.MAX_BATCH_ROWS + 1)]
    with pytest.raises(ValueError, match="at most"):
        insert(app_conn, agency.id, account, rows)


def test_an_event_id_repeated_inside_one_batch_is_stored_once(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    account = make_account(app_conn, agency.id)
    twice = [event_row("dup", NOW), event_row("dup", NOW), event_row("other", NOW)]
    assert insert(app_conn, agency.id, account, twice) == 2  # the fallback skipped the repeat
    assert insert(app_conn, agency.id, account, twice) == 0


def test_batches_commit_without_waiting_for_the_flush_and_only_that_transaction(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    with tenant_tx(app_conn, agency.id):
        store.defer_commit_flush(app_conn)
        inside = app_conn.execute("SHOW synchronous_commit").fetchone()
    after = app_conn.execute("SHOW synchronous_commit").fetchone()
    assert inside == ("off",) and after == ("on",)
