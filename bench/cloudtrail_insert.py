"""Benchmark: CloudTrail events/s through redaction + insert, against a raw COPY of the same rows.

    python -m bench.cloudtrail_insert [events]

Target (design.md): redaction + insert at least half the speed of a raw COPY.

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

Every run writes into an emptied table with all its indexes. The machine is shared, so the
baseline and the sync's path are measured back to back in each of ROUNDS rounds and the ratio
reported is the median of the rounds' ratios; events/s figures are the best of the rounds.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench._cloudtrail import connect, database, lookup_items, make_account, make_agency
from functions.sync_cloudtrail.reader import BATCH_ROWS, PAGE_SIZE
from functions.sync_cloudtrail.redact import redact
from shared.db import tenant_tx
from shared.store import access as store

ACCOUNT = "210987654321"
REGION = "us-east-1"
ROUNDS = 5
BASELINE = "raw COPY of the redacted rows (baseline)"
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
        " ON CONFLICT (account_id, event_id) DO NOTHING",
        (agency, acct, *[list(c) for c in zip(*rows, strict=True)]),
    )


def executemany(
    conn: psycopg.Connection[Any], agency: uuid.UUID, acct: uuid.UUID, rows: Any
) -> None:
    marks = ", ".join(["%s"] * (len(store.EVENT_COLUMNS) + 2))
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO cao.access_events (agency_id, account_id, {COLUMNS})"
            f" VALUES ({marks}) ON CONFLICT (account_id, event_id) DO NOTHING",
            [(agency, acct, *row) for row in rows],
        )


def main(count: int) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"generating {count} realistic CloudTrail events (trailgen)...", flush=True)
    items = lookup_items(ACCOUNT, REGION, now - timedelta(days=1), now, count, seed=42)
    with (
        database() as db,
        connect(db.app_url) as app,
        connect(db.owner_url) as owner,
        connect(db.admin_url) as admin,
    ):
        agency_id, _ = make_agency(app)
        role = f"arn:aws:iam::{ACCOUNT}:role/CloudAgencyOpsReadOnly"
        account_id = make_account(app, agency_id, ACCOUNT, role)
        rows = [r for r in (redact(i, ACCOUNT, REGION) for i in items) if r is not None]
        assert len(rows) == count

        def empty() -> None:
            # With the principal summaries the events' triggers keep (TRUNCATE fires none).
            owner.execute(
                "TRUNCATE cao.access_events, cao.access_principals, cao.access_principal_ips"
            )
            owner.execute("VACUUM ANALYZE cao.access_events")

        def write(batch: Sequence[Any], method: Insert = temp_copy) -> None:
            with tenant_tx(app, agency_id):
                store.defer_commit_flush(app)  # as reader.run's batch transactions do
                method(app, agency_id, account_id, batch)

        def sync_path() -> None:
            for batch in redacted_batches(items):
                write(batch)

        def raw_copy() -> None:
            sql = f"COPY cao.access_events (agency_id, account_id, {COLUMNS}) FROM STDIN"
            with admin.transaction(), admin.cursor() as cur, cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row((agency_id, account_id, *row))

        def insert_only(method: Insert) -> Callable[[], None]:
            def work() -> None:
                for batch in chunks(rows, BATCH_ROWS):
                    write(batch, method)

            return work

        def redact_only() -> None:
            for _ in redacted_batches(items):
                pass

        cases: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
            BASELINE: (empty, raw_copy),
            PATH: (empty, sync_path),
            "redaction alone": (lambda: None, redact_only),
            "insert only: COPY to temp + INSERT new (chosen)": (
                empty,
                insert_only(temp_copy),
            ),
            "insert only: INSERT ... SELECT FROM unnest": (empty, insert_only(unnest)),
            "insert only: executemany": (empty, insert_only(executemany)),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for round_ in range(ROUNDS):
            for name, (setup, work) in cases.items():
                if name == "insert only: executemany" and round_ > 0:
                    continue  # 5x slower: one round tells enough
                times[name].append(timed(setup, work))
        stored = owner.execute("SELECT count(*) FROM cao.access_events").fetchone()
        assert stored == (count,), stored

    ratios = sorted(b / p for b, p in zip(times[BASELINE], times[PATH], strict=True))
    ratio = ratios[len(ratios) // 2]
    print(
        f"\nCloudTrail insert benchmark: {count} events, {BATCH_ROWS}-row commits, {ROUNDS} rounds"
    )
    for name, runs in times.items():
        best = min(runs)
        print(f"  {name:<50} {count / best:>9,.0f} events/s  ({best * 1000:6.0f} ms)")
    verdict = "meets" if ratio >= 0.5 else "MISSES"
    print(
        f"\nredaction + insert runs at {ratio:.0%} of raw COPY speed (median of {ROUNDS} rounds,"
        f" range {ratios[0]:.0%}-{ratios[-1]:.0%}): {verdict} the >= 50% target"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
