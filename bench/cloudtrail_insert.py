"""Benchmark: CloudTrail events/s through redaction + insert, against a raw COPY of the same rows.

    python -m bench.cloudtrail_insert [events] [stored]     # defaults: 20000 300000

Target (design.md): redaction + insert at least half the speed of a raw COPY.

Into a table that already holds a realistic volume (issue 21): before the rounds, `stored`
events are put in (half of them the measured account's, over the 60 days before the measured
day, the rest spread over 9 other accounts of the agency), and each round deletes only what the
previous one added. Two baselines: a COPY into the same table (its indexes, its unique key, the
summary triggers) and a COPY into a plain table of the same columns (no index, no trigger):
the second is the floor of what writing the rows costs at all.

- "redaction + insert" is the sync's write path with AWS taken out: LookupEvents pages are
  redacted (`redact`: parse CloudTrailEvent, keep the allowlist) into batches of
  `reader.BATCH_ROWS` rows, each committed with `insert_events` (COPY into a temporary table, then
  one INSERT ... SELECT of the events not stored yet) in its own tenant transaction as the app
  role, under row-level security, with the commit flush deferred as the sync does. Measured
  one step after the other: in the sync, redaction runs in the region threads between AWS calls
  (50 events, well under a millisecond, per 300 ms page) while the writer commits, so the
  sequential figure is the conservative one.
- The baseline is one COPY of the already-redacted rows straight into cao.access_events in one
  transaction: no redaction, no conflict handling, no row-level security. It runs as the
  superuser: Postgres refuses COPY FROM into a table with row-level security, which is also why
  the app cannot use it.
- The other insert statements considered for `insert_events` are measured on the same
  pre-redacted rows and batches: INSERT ... SELECT FROM unnest(<one array per column>) ... ON
  CONFLICT, and executemany. (The chosen one skips stored events with an anti-join, falling
  back to ON CONFLICT DO NOTHING on a collision; see shared/store/access.py.)

The machine is shared, so the baselines and the sync's path are measured back to back in each
of ROUNDS rounds; the ratios reported are the medians of the rounds' ratios, and events/s
figures are medians too (with the range).
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench._cloudtrail import (
    connect,
    database,
    ensure_partitions,
    lookup_items,
    make_account,
    make_agency,
)
from functions.sync_cloudtrail.reader import BATCH_ROWS, PAGE_SIZE
from functions.sync_cloudtrail.redact import redact
from shared.db import tenant_tx
from shared.store import access as store

ACCOUNT = "210987654321"
REGION = "us-east-1"
ROUNDS = 5
BASELINE = "raw COPY into the same table (baseline)"
PLAIN = "raw COPY into a plain table (no index, no trigger)"
OTHER_ACCOUNTS = 9
PATH = "redaction + insert (the sync's path)"
COLUMNS = ", ".join(store.EVENT_COLUMNS)
_TYPES = {"event_time": "timestamptz", "is_vendor": "boolean"}

Insert = Callable[[psycopg.Connection[Any], uuid.UUID, uuid.UUID, Sequence[Any]], None]


def chunks(rows: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def timed(setup: Callable[[], None], work: Callable[[], None]) -> float:
    setup()
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def redacted_batches(items: Sequence[dict[str, Any]]) -> Any:
    """Pages of 50 redacted as they come, grouped into the sync's commit batches."""
    rows: list[Any] = []
    for page in chunks(items, PAGE_SIZE):
        rows.extend(r for r in (redact(i, ACCOUNT, REGION) for i in page) if r is not None)
        if len(rows) >= BATCH_ROWS:
            yield rows
            rows = []
    if rows:
        yield rows


def temp_copy(conn: psycopg.Connection[Any], agency: uuid.UUID, acct: uuid.UUID, rows: Any) -> None:
    store.insert_events(conn, agency, acct, rows)


def unnest(conn: psycopg.Connection[Any], agency: uuid.UUID, acct: uuid.UUID, rows: Any) -> None:
    arrays = ", ".join(f"%s::{_TYPES.get(c, 'text')}[]" for c in store.EVENT_COLUMNS)
    conn.execute(
        f"INSERT INTO cao.access_events (agency_id, account_id, {COLUMNS})"
        f" SELECT %s, %s, {COLUMNS} FROM unnest({arrays}) AS r({COLUMNS})"
        " ON CONFLICT (account_id, event_id, event_time) DO NOTHING",
        (agency, acct, *[list(c) for c in zip(*rows, strict=True)]),
    )


def executemany(
    conn: psycopg.Connection[Any], agency: uuid.UUID, acct: uuid.UUID, rows: Any
) -> None:
    marks = ", ".join(["%s"] * (len(store.EVENT_COLUMNS) + 2))
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO cao.access_events (agency_id, account_id, {COLUMNS})"
            f" VALUES ({marks}) ON CONFLICT (account_id, event_id, event_time) DO NOTHING",
            [(agency, acct, *row) for row in rows],
        )


def prefill(
    admin: psycopg.Connection[Any],
    agency_id: uuid.UUID,
    accounts: list[uuid.UUID],
    stored: int,
    now: datetime,
) -> None:
    """`stored` events already there: half the measured account's (accounts[0]), the rest
    spread over the others, in the 60 days before the measured day (one statement: the
    summary triggers run once, as for a COPY). The months' partitions first, as the sync's
    insert path asks for them (shared.store.access.insert_events)."""
    ensure_partitions(admin, now - timedelta(days=62), now)
    admin.execute(
        "INSERT INTO cao.access_events (agency_id, account_id, aws_account_id, region, event_id,"
        " event_time, event_name, principal_arn, principal_name, source_ip, is_vendor)"
        " SELECT %(agency)s,"
        "  CASE WHEN n %% 2 = 0 THEN (%(accounts)s::uuid[])[1]"
        "   ELSE (%(accounts)s::uuid[])[2 + n %% (cardinality(%(accounts)s::uuid[]) - 1)] END,"
        "  %(aws)s, %(region)s, 'stored-' || n,"
        "  %(now)s - interval '2 days' - (n %% 5184000) * interval '1 second',"
        "  'Action' || (n %% 80),"
        "  'arn:aws:sts::' || %(aws)s || ':assumed-role/Role' || (n %% 40)"
        "   || '/user' || (n %% 3000),"
        "  'user' || (n %% 3000), '198.51.' || (n %% 200) || '.' || (n %% 250), n %% 100 = 0"
        " FROM generate_series(1, %(stored)s) n",
        {
            "agency": agency_id,
            "accounts": accounts,
            "aws": ACCOUNT,
            "region": REGION,
            "now": now,
            "stored": stored,
        },
    )
    admin.execute("VACUUM ANALYZE cao.access_events")


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main(count: int, stored: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"generating {count} realistic CloudTrail events (trailgen)...", flush=True)
    items = lookup_items(ACCOUNT, REGION, now - timedelta(days=1), now, count, seed=42)
    with (
        database() as db,
        connect(db.app_url) as app,
        connect(db.admin_url) as admin,
    ):
        agency_id, _ = make_agency(app)
        role = f"arn:aws:iam::{ACCOUNT}:role/CloudAgencyOpsReadOnly"
        account_id = make_account(app, agency_id, ACCOUNT, role)
        others = [
            make_account(app, agency_id, f"{300000000000 + i:012d}", f"{role}{i}")
            for i in range(OTHER_ACCOUNTS)
        ]
        rows = [r for r in (redact(i, ACCOUNT, REGION) for i in items) if r is not None]
        assert len(rows) == count
        started = time.perf_counter()
        prefill(admin, agency_id, [account_id, *others], stored, now)
        print(f"{stored:,} events stored first ({time.perf_counter() - started:.0f} s)", flush=True)
        admin.execute(
            "CREATE TABLE public.bench_plain AS SELECT * FROM cao.access_events WITH NO DATA"
        )
        measured_since = now - timedelta(days=1, minutes=1)

        def empty() -> None:
            # Only what the previous case added (the superuser: no row-level security; the
            # summary triggers take those rows back out).
            admin.execute(
                "DELETE FROM cao.access_events WHERE account_id = %s AND event_time >= %s",
                (account_id, measured_since),
            )
            admin.execute("TRUNCATE public.bench_plain")
            admin.execute("VACUUM ANALYZE cao.access_events")

        def write(batch: Sequence[Any], method: Insert = temp_copy) -> None:
            with tenant_tx(app, agency_id):
                store.defer_commit_flush(app)  # as reader.run's batch transactions do
                method(app, agency_id, account_id, batch)

        def sync_path() -> None:
            for batch in redacted_batches(items):
                write(batch)

        def raw_copy(table: str) -> Callable[[], None]:
            def work() -> None:
                sql = f"COPY {table} (agency_id, account_id, {COLUMNS}) FROM STDIN"
                with admin.transaction(), admin.cursor() as cur, cur.copy(sql) as copy:
                    for row in rows:
                        copy.write_row((agency_id, account_id, *row))

            return work

        def insert_only(method: Insert) -> Callable[[], None]:
            def work() -> None:
                for batch in chunks(rows, BATCH_ROWS):
                    write(batch, method)

            return work

        def redact_only() -> None:
            for _ in redacted_batches(items):
                pass

        cases: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
            PLAIN: (empty, raw_copy("public.bench_plain")),
            BASELINE: (empty, raw_copy("cao.access_events")),
            PATH: (empty, sync_path),
            "redaction alone": (lambda: None, redact_only),
            "insert only: insert_events (the store's)": (empty, insert_only(temp_copy)),
            "insert only: INSERT ... SELECT FROM unnest ON CONFLICT": (
                empty,
                insert_only(unnest),
            ),
            "insert only: executemany": (empty, insert_only(executemany)),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for round_ in range(ROUNDS):
            for name, (setup, work) in cases.items():
                if name == "insert only: executemany" and round_ > 0:
                    continue  # 5x slower: one round tells enough
                times[name].append(timed(setup, work))
        total = admin.execute("SELECT count(*) FROM cao.access_events").fetchone()
        assert total == (stored + count,), total

    print(
        f"\nCloudTrail insert benchmark: {count:,} events into a table holding {stored:,},"
        f" {BATCH_ROWS}-row commits, {ROUNDS} rounds (medians)"
    )
    for name, runs in times.items():
        rates = sorted(count / t for t in runs)
        print(
            f"  {name:<56} {_median(rates):>9,.0f} events/s"
            f"  (range {rates[0]:,.0f}-{rates[-1]:,.0f})"
        )
    for base in (BASELINE, PLAIN):
        ratios = sorted(b / p for b, p in zip(times[base], times[PATH], strict=True))
        verdict = "meets" if _median(ratios) >= 0.5 else "MISSES"
        print(
            f"\nredaction + insert runs at {_median(ratios):.0%} of the {base}"
            f" (range {ratios[0]:.0%}-{ratios[-1]:.0%})"
            + (f": {verdict} the >= 50% target" if base == BASELINE else "")
        )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 20_000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 300_000,
    )
