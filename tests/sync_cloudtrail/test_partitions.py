"""cao.access_events is partitioned by month (issue 21): the insert touches only the batch's
keys and counts each event once; partitions are made ahead by a bounded SECURITY DEFINER
function (the app role owns no DDL right); row-level security holds through the parent and on
every partition; retention drops a month partition whose every event is past its agency's
retention, and the summaries (principals, agency totals, vendor ledger) still equal a
recomputation from the events after it.

The purge runs on the database's clock (a caller cannot hand the cross-tenant delete a "now"),
so the clock these tests inject is the database's own `now()`, read once, and every event is
placed relative to it: before, across and after the retention horizon and its month.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from functions.sync_cloudtrail import retention
from shared.db import tenant_tx
from shared.store import access
from tests.support.database import TestDatabase
from tests.support.factories import AgencyFixture, make_account, make_agency
from tests.support.principals import (
    assert_summaries_match_events,
    assert_vendor_ledger_matches_events,
    summarised,
    vendor_ledger,
)
from tests.sync_cloudtrail.test_retention import with_retention
from tests.sync_cloudtrail.test_store import event_row, insert

Conn = psycopg.Connection[Any]
OURS = "arn:aws:sts::210987654321:assumed-role/CloudAgencyOpsReadOnly/cao-sync-1"


def db_now(conn: Conn) -> datetime:
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0].astimezone(UTC)


def month_of(t: datetime) -> datetime:
    return datetime(t.year, t.month, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"access_events_{month:%Y_%m}"


def where_is(owner: Conn, event_id: str) -> str:
    row = owner.execute(
        "SELECT tableoid::regclass::text FROM cao.access_events WHERE event_id = %s", (event_id,)
    ).fetchone()
    assert row is not None
    return str(row[0]).removeprefix("cao.")


def vendor_row(event_id: str, when: datetime, session: str, name: str, ip: str) -> Any:
    return event_row(
        event_id,
        when,
        principal_arn=OURS.replace("cao-sync-1", session),
        principal_name=session,
        event_name=name,
        source_ip=ip,
        is_vendor=True,
    )


# ---- the insert ---------------------------------------------------------------------------------


def test_a_batch_overlapping_stored_events_inserts_only_the_new_ones_and_counts_them_once(
    app_conn: Conn, owner_conn: Conn, agency: AgencyFixture
) -> None:
    account = make_account(app_conn, agency.id)
    now = db_now(owner_conn)
    t0 = now - timedelta(days=40)  # two months' partitions at least
    rows = [
        event_row(f"e-{i}", t0 + timedelta(hours=i), source_ip=f"192.0.2.{i % 5}")
        for i in range(0, 960, 8)
    ]
    rows += [
        vendor_row(f"v-{i}", t0 + timedelta(hours=i), "cao-sync-1", "LookupEvents", "203.0.113.1")
        for i in range(0, 960, 96)
    ]
    assert insert(app_conn, agency.id, account, rows) == 130
    before = summarised(owner_conn, agency.id)
    ledger_before = vendor_ledger(owner_conn, agency.id)

    # A re-read window: half of it stored, some new events (one of ours among them).
    new = [
        event_row(f"n-{i}", now - timedelta(minutes=i), source_ip="192.0.2.77") for i in range(9)
    ]
    new.append(vendor_row("v-new", now, "cao-sync-1", "GetCostAndUsage", "203.0.113.2"))
    assert insert(app_conn, agency.id, account, [*rows[::2], *new]) == 10
    # The same event IDs again, even at another time, and one twice in a batch: nothing new.
    moved = [event_row(f"e-{i}", now - timedelta(days=1)) for i in range(0, 80, 8)]
    assert insert(app_conn, agency.id, account, moved) == 0
    assert insert(app_conn, agency.id, account, [event_row("twice", now)] * 2) == 1

    stored = owner_conn.execute(
        "SELECT count(*), count(DISTINCT event_id) FROM cao.access_events WHERE account_id = %s",
        (account,),
    ).fetchone()
    assert stored == (141, 141)
    assert assert_summaries_match_events(owner_conn, agency.id) == 2
    [alice] = [v for (_, p), v in summarised(owner_conn, agency.id).items() if "alice" in p]
    assert alice[4] == 120 + 9 + 1  # counted once: the first batch, the new ones, "twice"
    assert alice[4] == next(v for v in before.values() if v[1] == "alice")[4] + 10
    [session] = vendor_ledger(owner_conn, agency.id).values()
    assert session[4] == next(iter(ledger_before.values()))[4] + 1 == 11
    assert session[5] == ["GetCostAndUsage", "LookupEvents"]
    assert session[6] == ["203.0.113.1", "203.0.113.2"]


def test_the_insert_reads_only_the_batchs_keys_however_many_events_the_account_holds(
    app_conn: Conn, owner_conn: Conn, agency: AgencyFixture
) -> None:
    """The held-event probe is a nested loop over the batch (one index probe per row and
    partition), never a scan or hash of the account's stored events."""
    account = make_account(app_conn, agency.id)
    now = db_now(owner_conn)
    held = [event_row(f"h-{i}", now - timedelta(minutes=i)) for i in range(3000)]
    insert(app_conn, agency.id, account, held)
    owner_conn.execute("ANALYZE cao.access_events")
    with tenant_tx(app_conn, agency.id):
        access.insert_events(app_conn, agency.id, account, [event_row("probe", now)])
        app_conn.execute(access._CREATE_INCOMING)
        with app_conn.cursor() as cur, cur.copy(access._COPY_INCOMING) as copy:
            copy.write_row(event_row("probe-2", now))
        plan = "\n".join(
            r[0]
            for r in app_conn.execute(
                sql.SQL("EXPLAIN (ANALYZE, COSTS OFF) {}").format(sql.SQL(access._MOVE_NEW)),
                {"agency": agency.id, "account": account},
            )
        )
    # The month holding the account's events is probed through its unique index, once per row
    # of the batch (tiny partitions may be scanned: a few rows, by the planner's choice).
    part = partition_name(month_of(now))
    assert f"Index Scan using {part}_account_id_event_id_event_time_key" in plan, plan
    assert "Hash" not in plan, plan
    assert "Nested Loop" in plan and "Limit" in plan, plan


# ---- partitions: made ahead, bounded, owned by the owner ----------------------------------------


def test_the_insert_and_the_purge_create_the_partitions_they_need_and_the_app_owns_none(
    clean_db: TestDatabase, app_conn: Conn, owner_conn: Conn, agency: AgencyFixture
) -> None:
    account = make_account(app_conn, agency.id)
    now = db_now(owner_conn)
    months = [month_of(now - timedelta(days=d)) for d in (0, 35, 70)]
    for m in months:
        owner_conn.execute(
            sql.SQL("DROP TABLE IF EXISTS cao.{}").format(sql.Identifier(partition_name(m)))
        )
    rows = [event_row(f"e-{d}", now - timedelta(days=d)) for d in (0, 35, 70)]
    insert(app_conn, agency.id, account, rows)
    partitions = access.event_partitions(owner_conn)
    for m, d in zip(months, (0, 35, 70), strict=True):
        assert partition_name(m) in partitions
        assert where_is(owner_conn, f"e-{d}") == partition_name(m)
    owners = owner_conn.execute(
        "SELECT DISTINCT r.rolname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_roles r ON r.oid = c.relowner"
        " WHERE i.inhparent = 'cao.access_events'::regclass"
    ).fetchall()
    assert owners == [("cao_owner",)]

    # The daily purge makes next month's ahead of any event.
    after = month_of(month_of(now) + timedelta(days=32))
    owner_conn.execute(
        sql.SQL("DROP TABLE IF EXISTS cao.{}").format(sql.Identifier(partition_name(after)))
    )
    retention.purge(app_conn)
    assert partition_name(after) in access.event_partitions(owner_conn)

    # Bounded: nothing years ahead; and the app role cannot make one itself.
    with app_conn.transaction():
        made = app_conn.execute(
            "SELECT cao.ensure_event_partitions(ARRAY[now() + interval '5 years'])"
        ).fetchone()
    assert made == (0,)
    far = month_of(now + timedelta(days=5 * 366))
    assert partition_name(far) not in access.event_partitions(owner_conn)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), app_conn.transaction():
        app_conn.execute(
            sql.SQL(
                "CREATE TABLE cao.{} PARTITION OF cao.access_events FOR VALUES FROM (%s) TO (%s)"
            ).format(sql.Identifier(partition_name(far))),
            (far, far + timedelta(days=31)),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege), app_conn.transaction():
        app_conn.execute("SELECT cao.secure_event_partition('cao.access_events_default')")


def test_a_row_in_the_default_partition_moves_into_its_month_when_that_is_made(
    app_conn: Conn, owner_conn: Conn, agency: AgencyFixture
) -> None:
    account = make_account(app_conn, agency.id)
    now = db_now(owner_conn)
    partitions = set(access.event_partitions(owner_conn))
    month = next(
        m
        for m in (month_of(now - timedelta(days=30 * k)) for k in range(23, 2, -1))
        if partition_name(m) not in partitions
    )
    # A writer that did not ask for its month first (the owner, straight into the parent).
    row = event_row("homeless", month + timedelta(days=3), principal_arn=None, principal_name="x")
    owner_conn.execute(
        sql.SQL("INSERT INTO cao.access_events (agency_id, account_id, {}) VALUES ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, access.EVENT_COLUMNS)),
            sql.SQL(", ").join(sql.Placeholder() * (len(access.EVENT_COLUMNS) + 2)),
        ),
        (agency.id, account, *row),
    )
    assert where_is(owner_conn, "homeless") == "access_events_default"
    before = summarised(owner_conn, agency.id)

    # More rows waiting than the caller will move in one statement: the month is left alone
    # (the rows stay stored and readable in the default partition), no error.
    with app_conn.transaction():
        made = app_conn.execute(
            "SELECT cao.ensure_event_partitions(%s::timestamptz[], 0)", ([month],)
        ).fetchone()
    assert made == (0,) and where_is(owner_conn, "homeless") == "access_events_default"

    with app_conn.transaction():
        app_conn.execute("SELECT cao.ensure_event_partitions(%s::timestamptz[])", ([month],))
    assert where_is(owner_conn, "homeless") == partition_name(month)
    empty = owner_conn.execute(
        "SELECT count(*) FROM cao.access_events_default WHERE event_id = 'homeless'"
    ).fetchone()
    assert empty == (0,)
    assert summarised(owner_conn, agency.id) == before  # a move is not a new event
    assert_summaries_match_events(owner_conn, agency.id)


# ---- row-level security through the parent and on each partition --------------------------------


def test_no_agency_reads_another_agencys_events_through_the_parent_or_a_partition(
    app_conn: Conn, owner_conn: Conn
) -> None:
    mine, theirs = make_agency(app_conn), make_agency(app_conn)
    now = db_now(owner_conn)
    insert(app_conn, mine.id, make_account(app_conn, mine.id), [event_row("mine", now)])
    insert(app_conn, theirs.id, make_account(app_conn, theirs.id), [event_row("theirs", now)])
    part = partition_name(month_of(now))

    with tenant_tx(app_conn, mine.id):
        seen = app_conn.execute(
            "SELECT event_id FROM cao.access_events WHERE event_id IN ('mine', 'theirs')"
        ).fetchall()
    assert seen == [("mine",)]
    # Naming a partition: the app role holds no privilege on any.
    for name in (part, "access_events_default"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant_tx(app_conn, mine.id):
            app_conn.execute(sql.SQL("SELECT * FROM cao.{}").format(sql.Identifier(name)))
        with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant_tx(app_conn, mine.id):
            app_conn.execute(sql.SQL("DELETE FROM cao.{}").format(sql.Identifier(name)))

    # Every partition has the parent's policies, forced: even granted SELECT, a tenant would
    # see only its own rows there.
    flags = owner_conn.execute(
        "SELECT bool_and(c.relrowsecurity AND c.relforcerowsecurity),"
        " bool_and((SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) = 2)"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'cao.access_events'::regclass"
    ).fetchone()
    assert flags == (True, True)
    owner_conn.execute(sql.SQL("GRANT SELECT ON cao.{} TO cao_app").format(sql.Identifier(part)))
    try:
        with tenant_tx(app_conn, mine.id):
            direct = app_conn.execute(
                sql.SQL("SELECT event_id FROM cao.{} WHERE event_id IN ('mine', 'theirs')").format(
                    sql.Identifier(part)
                )
            ).fetchall()
        with app_conn.transaction():  # no tenant at all
            none = app_conn.execute(
                sql.SQL("SELECT count(*) FROM cao.{}").format(sql.Identifier(part))
            ).fetchone()
    finally:
        owner_conn.execute(
            sql.SQL("REVOKE SELECT ON cao.{} FROM cao_app").format(sql.Identifier(part))
        )
    assert direct == [("mine",)] and none == (0,)


# ---- retention by partition ---------------------------------------------------------------------


def _history(
    conn: Conn, agency: AgencyFixture, now: datetime, old_month: datetime, horizon: datetime
) -> uuid.UUID:
    """Events of one account: in a month wholly past the horizon, in the month that straddles
    it (before and after it), and recent; two principals and two of our sessions span them."""
    account = make_account(conn, agency.id)
    edge = month_of(horizon)
    times = {
        "old": old_month + timedelta(days=2),
        "edge-before": edge + timedelta(minutes=1),
        "edge-after": horizon + timedelta(minutes=30),
        "recent": now - timedelta(hours=1),
    }
    rows = []
    for label, when in times.items():
        rows += [
            event_row(
                f"{label}-bob",
                when,
                principal_arn="arn:aws:iam::210987654321:user/bob",
                principal_name=f"bob-{label}",
                source_ip=f"198.51.100.{len(label)}",
            ),
            vendor_row(
                f"{label}-ours", when, "cao-sync-1", f"Call{label}", f"203.0.113.{len(label)}"
            ),
        ]
    rows += [
        event_row("old-gone", times["old"], principal_arn="arn:aws:iam::210987654321:user/gone"),
        vendor_row("old-ours-2", times["old"], "cao-sync-0", "LookupEvents", "203.0.113.9"),
    ]
    insert(conn, agency.id, account, rows)
    return account


def test_retention_drops_a_month_past_the_horizon_and_the_summaries_equal_the_events(
    clean_db: TestDatabase, app_conn: Conn, owner_conn: Conn
) -> None:
    thirty, kept = make_agency(app_conn), make_agency(app_conn)
    with_retention(app_conn, thirty, 30)
    with_retention(app_conn, kept, 365)
    now = db_now(owner_conn)  # the injected clock: the purge's own
    horizon = now - timedelta(days=30)
    old_month = month_of(month_of(horizon) - timedelta(days=1))
    _history(app_conn, thirty, now, old_month, horizon)
    theirs = make_account(app_conn, kept.id)
    insert(app_conn, kept.id, theirs, [event_row("kept-recent", now - timedelta(hours=2))])
    assert assert_vendor_ledger_matches_events(owner_conn, thirty.id) == 2
    kept_before = summarised(owner_conn, kept.id)
    old_part = partition_name(old_month)
    assert old_part in access.event_partitions(owner_conn)

    outcome = retention.purge(app_conn)

    assert old_part not in access.event_partitions(owner_conn)  # pg_inherits: dropped, whole
    assert to_regclass(owner_conn, old_part) is None
    assert partition_name(month_of(horizon)) in access.event_partitions(owner_conn)
    assert outcome.partitions_dropped >= 1 and outcome.rows_in_partitions >= 4
    left = {
        r[0]
        for r in owner_conn.execute(
            "SELECT event_id FROM cao.access_events WHERE agency_id = %s", (thirty.id,)
        )
    }
    # The straddling month lost its rows before the horizon, row by row.
    assert left == {"edge-after-bob", "edge-after-ours", "recent-bob", "recent-ours"}
    assert outcome.deleted[thirty.id] == 6
    # bob and our cao-sync-1 session are left as principals; "gone" and cao-sync-0 went.
    assert assert_summaries_match_events(owner_conn, thirty.id) == 2
    [bob] = [v for (_, p), v in summarised(owner_conn, thirty.id).items() if p.endswith("/bob")]
    assert (bob[1], bob[4]) == ("bob-recent", 2)
    assert [k[1] for k in vendor_ledger(owner_conn, thirty.id)] == ["cao-sync-1"]
    assert summarised(owner_conn, kept.id) == kept_before
    assert sum(r[0] for r in _audit(app_conn, thirty)) == 6


def test_a_month_another_agency_still_keeps_is_not_dropped_only_the_expired_rows_go(
    clean_db: TestDatabase, app_conn: Conn, owner_conn: Conn
) -> None:
    thirty, kept = make_agency(app_conn), make_agency(app_conn)
    with_retention(app_conn, thirty, 30)
    with_retention(app_conn, kept, 365)
    now = db_now(owner_conn)
    horizon = now - timedelta(days=30)
    old_month = month_of(month_of(horizon) - timedelta(days=1))
    _history(app_conn, thirty, now, old_month, horizon)
    theirs = make_account(app_conn, kept.id)
    insert(app_conn, kept.id, theirs, [event_row("kept-old", old_month + timedelta(days=5))])

    outcome = retention.purge(app_conn)

    assert partition_name(old_month) in access.event_partitions(owner_conn)
    assert where_is(owner_conn, "kept-old") == partition_name(old_month)
    assert outcome.deleted[thirty.id] == 6 and kept.id not in outcome.deleted
    assert assert_summaries_match_events(owner_conn, thirty.id) == 2
    assert assert_summaries_match_events(owner_conn, kept.id) == 1


def to_regclass(owner: Conn, name: str) -> Any:
    row = owner.execute("SELECT to_regclass(%s)", (f"cao.{name}",)).fetchone()
    assert row is not None
    return row[0]


def _audit(conn: Conn, agency: AgencyFixture) -> list[tuple[int]]:
    with tenant_tx(conn, agency.id):
        return [
            (int(r[0]["deleted"]),)
            for r in conn.execute(
                "SELECT details FROM cao.audit_log WHERE action = %s", (retention.ACTION,)
            )
        ]


# ---- account deletion ---------------------------------------------------------------------------


def test_deleting_an_account_leaves_the_summaries_equal_to_the_events(
    client: TestClient, app_conn: Conn, owner_conn: Conn, agency: AgencyFixture
) -> None:
    now = db_now(owner_conn)
    horizon = now - timedelta(days=30)
    old_month = month_of(month_of(horizon) - timedelta(days=1))
    gone = _history(app_conn, agency, now, old_month, horizon)
    stays = _history(app_conn, agency, now, old_month, horizon)
    assert assert_vendor_ledger_matches_events(owner_conn, agency.id) == 4

    assert client.delete(f"/api/accounts/{gone}", headers=agency.headers).status_code == 204

    assert assert_summaries_match_events(owner_conn, agency.id) == 4
    assert {a for a, _ in vendor_ledger(owner_conn, agency.id)} == {stays}
    page = client.get("/api/access/vendor", headers=agency.headers).json()
    assert {item["account_id"] for item in page["items"]} == {str(stays)}
    assert sum(item["event_count"] for item in page["items"]) == 5
