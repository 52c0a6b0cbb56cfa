"""The principal summaries GET /api/access/principals reads (cao.access_principals and
cao.access_principal_ips) are kept in the same transaction as the events they summarise: after a
real sync, an overlapping re-read, a rerun, a repeated batch and retention purges, they equal a
recomputation from the stored events, row for row (issue 15, item 11)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from devstack.simaws import SimulatedAws
from functions.sync_cloudtrail import retention
from shared.db import tenant_tx
from shared.pacing import Pacer
from shared.store import access
from tests.support.factories import AgencyFixture, make_account, make_agency
from tests.support.principals import assert_summaries_match_events, summarised
from tests.sync_cloudtrail.conftest import Linked
from tests.sync_cloudtrail.helpers import NOW, FakeClock
from tests.sync_cloudtrail.test_retention import with_retention
from tests.sync_cloudtrail.test_store import event_row, insert
from tests.sync_cloudtrail.test_sync import DAY, do_sync, seed


def test_after_a_sync_a_reread_overlap_and_a_rerun_the_summaries_equal_the_events(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    agency_id = linked.agency.id
    seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW - timedelta(minutes=20), 300, 3)
    seed(fresh_sim, linked, "eu-west-1", NOW - DAY, NOW - timedelta(minutes=20), 200, 8)
    regions = ("us-east-1", "eu-west-1")
    assert do_sync(app_conn, linked, clock, pacer, regions=regions).events_written == 500
    first = summarised(owner_conn, agency_id)
    assert assert_summaries_match_events(owner_conn, agency_id) > 5
    assert sum(s[4] for s in first.values()) <= 500

    # Late events inside the overlap and new ones: the next run re-reads the overlap.
    seed(fresh_sim, linked, "us-east-1", NOW - timedelta(minutes=12), NOW, 30, 4)
    clock.advance(3600)
    seed(fresh_sim, linked, "us-east-1", NOW, clock.now(), 40, 5)
    assert do_sync(app_conn, linked, clock, pacer, regions=regions).events_written == 70
    assert_summaries_match_events(owner_conn, agency_id)
    after = summarised(owner_conn, agency_id)
    assert after != first

    # A rerun reads the same window again and writes nothing; the summaries do not move.
    assert do_sync(app_conn, linked, clock, pacer, regions=regions).events_written == 0
    assert summarised(owner_conn, agency_id) == after


def test_a_batch_inserted_twice_is_summarised_once(
    app_conn: psycopg.Connection[Any], owner_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    account = make_account(app_conn, agency.id)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    rows = [
        event_row(f"e-{i}", t0 + timedelta(minutes=i), source_ip=f"192.0.2.{i % 7}")
        for i in range(60)
    ]
    assert insert(app_conn, agency.id, account, rows) == 60
    # The same rows again, some with one new event, then a batch that collides inside itself
    # (the insert's fallback path).
    assert insert(app_conn, agency.id, account, [*rows[:30], event_row("new", t0)]) == 1
    twice = [event_row("dup", t0 - timedelta(days=1)), event_row("dup", t0 - timedelta(days=1))]
    assert insert(app_conn, agency.id, account, twice) == 1

    assert assert_summaries_match_events(owner_conn, agency.id) == 1
    [(_arn, _name, first_seen, last_seen, count, ips)] = summarised(owner_conn, agency.id).values()
    assert (count, first_seen, last_seen) == (
        62,
        t0 - timedelta(days=1),
        t0 + timedelta(minutes=59),
    )
    assert len(ips) == 8  # seven, and the default of the two added events


def _mixed_ages(conn: psycopg.Connection[Any], agency: AgencyFixture) -> list[uuid.UUID]:
    """Events at ages 1 to 99 days for principals whose history spans the retention cutoff
    (their first event, a name and some IPs go with the purge), one that only has old events,
    and an AWS service known by name only."""
    now = datetime.now(UTC)
    accounts = [make_account(conn, agency.id) for _ in range(2)]
    for a, account in enumerate(accounts):
        rows = []
        for d in range(1, 100, 3):
            when = now - timedelta(days=d, minutes=1)
            old = d > 30
            rows += [
                event_row(
                    f"bob-{d}",
                    when,
                    principal_arn="arn:aws:iam::210987654321:user/bob",
                    principal_name="zz-old-name" if old else "bob",
                    source_ip=f"198.51.100.{d}" if old else "192.0.2.1",
                ),
                event_row(
                    f"svc-{d}",
                    when,
                    principal_arn=None,
                    principal_name="ec2.amazonaws.com",
                    source_ip=None if d % 2 else "ec2.amazonaws.com",
                ),
            ]
            if old:
                rows.append(
                    event_row(
                        f"gone-{d}",
                        when,
                        principal_arn=f"arn:aws:iam::210987654321:user/gone-{a}",
                        principal_name=f"gone-{a}",
                    )
                )
        insert(conn, agency.id, account, rows)
    return accounts


def test_a_retention_purge_recomputes_the_principals_it_touched(
    app_conn: psycopg.Connection[Any], owner_conn: psycopg.Connection[Any]
) -> None:
    kept, purged = make_agency(app_conn), make_agency(app_conn)
    with_retention(app_conn, kept, 365)
    with_retention(app_conn, purged, 30)
    _mixed_ages(app_conn, kept)
    _mixed_ages(app_conn, purged)
    kept_before = summarised(owner_conn, kept.id)
    assert assert_summaries_match_events(owner_conn, purged.id) == 6

    # Several small batches: each is one statement and one recomputation.
    outcome = retention.purge(app_conn, batch=7)
    assert outcome.batches > 3 and outcome.deleted[purged.id] > 0

    assert assert_summaries_match_events(owner_conn, purged.id) == 4  # the two "gone" went
    after = summarised(owner_conn, purged.id)
    bob = next(v for (_, p), v in after.items() if p.endswith("user/bob"))
    assert bob[1] == "bob"  # the name only purged events carried is gone with them
    assert bob[5] == ["192.0.2.1"]
    assert summarised(owner_conn, kept.id) == kept_before  # another agency's are untouched


def test_the_app_role_writes_only_its_own_agencys_summaries(
    app_conn: psycopg.Connection[Any], owner_conn: psycopg.Connection[Any]
) -> None:
    mine, theirs = make_agency(app_conn), make_agency(app_conn)
    account = make_account(app_conn, mine.id)
    insert(app_conn, mine.id, account, [event_row("e-1", NOW)])
    with tenant_tx(app_conn, theirs.id):
        seen = app_conn.execute("SELECT count(*) FROM cao.access_principals").fetchone()
        seen_ips = app_conn.execute("SELECT count(*) FROM cao.access_principal_ips").fetchone()
        seen_totals = app_conn.execute(
            "SELECT count(*) FROM cao.access_principal_totals"
        ).fetchone()
        assert (seen, seen_ips, seen_totals) == ((0,), (0,), (0,))
        page = access.page_principals(app_conn, theirs.id, access.EventFilter(), None, 10)
        assert page == []
    for statement in (
        "INSERT INTO cao.access_principals (agency_id, account_id, principal, first_seen,"
        " last_seen, event_count) VALUES (%(agency)s, %(account)s, 'x', now(), now(), 1)",
        "INSERT INTO cao.access_principal_ips (agency_id, account_id, principal, source_ip)"
        " VALUES (%(agency)s, %(account)s, 'x', '192.0.2.9')",
        "INSERT INTO cao.access_principal_totals (agency_id, principal, first_seen, last_seen,"
        " event_count, source_ip_count, source_ips)"
        " VALUES (%(agency)s, 'x', now(), now(), 1, 0, '{}')",
    ):
        try:
            with tenant_tx(app_conn, theirs.id):
                app_conn.execute(statement, {"agency": mine.id, "account": account})
        except psycopg.errors.InsufficientPrivilege:
            pass
        else:
            raise AssertionError("a tenant wrote another agency's summary")
    for statement in ("DELETE FROM cao.access_principals", "DELETE FROM cao.access_principal_ips"):
        try:
            with tenant_tx(app_conn, mine.id):
                app_conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            pass
        else:
            raise AssertionError("the app role deleted summaries (only the owner may)")
    assert assert_summaries_match_events(owner_conn, mine.id) == 1
