"""CloudTrail access events, the per-(account, region) read cursors, and the retention purge.

Every function takes a connection already inside a transaction and never commits; the caller
commits rows and cursor together (functions/sync_cloudtrail/reader.py). Event and cursor
functions run inside `tenant_tx` (row-level security: that agency only); `purge_expired` goes
through the SECURITY DEFINER function `cao.purge_expired_events`, the one cross-tenant path.

Bulk insert. Each batch is COPYed into a temporary table (dropped with the transaction: nothing
outlives it, so a transaction-mode pooler is fine), then moved into cao.access_events with one
INSERT ... SELECT that skips the events already stored (re-reading an event, overlap or rerun
after a crash, is harmless). Under the sync's lease one transaction at a time writes an account's
events, so the skip is a plain anti-join; should an event id still collide (a duplicate inside
one batch, or a writer without a lease), the batch falls back to `ON CONFLICT DO NOTHING` inside
a savepoint. COPY straight into cao.access_events is not possible: Postgres refuses COPY FROM
into a table with row-level security. bench/cloudtrail_insert.py measured the choice against
INSERT ... SELECT FROM unnest(<arrays>) and executemany; its output has the numbers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import errors as pg_errors

from shared.db import Connection
from shared.policy import STORED_CLOUDTRAIL_FIELDS

# The stored columns of an event row, in the order rows are given: the allowlist, then the
# derived vendor flag. Generated from the one allowlist constant.
EVENT_COLUMNS: tuple[str, ...] = (*(f.column for f in STORED_CLOUDTRAIL_FIELDS), "is_vendor")
_SQL_TYPES = {"event_time": "timestamptz", "is_vendor": "boolean"}
MAX_BATCH_ROWS = 5000  # one statement's worth; the sync commits smaller batches

_COLUMN_LIST = ", ".join(EVENT_COLUMNS)
_INCOMING = "pg_temp.cao_incoming_events"
_CREATE_INCOMING = (
    f"CREATE TEMP TABLE {_INCOMING} ("
    + ", ".join(f"{c} {_SQL_TYPES.get(c, 'text')}" for c in EVENT_COLUMNS)
    + ") ON COMMIT DROP"
)
_COPY_INCOMING = f"COPY {_INCOMING} ({_COLUMN_LIST}) FROM STDIN"
_MOVE_NEW = (
    f"INSERT INTO cao.access_events (agency_id, account_id, {_COLUMN_LIST})"  # noqa: S608
    f" SELECT %(agency)s, %(account)s, {_COLUMN_LIST} FROM {_INCOMING} i"
    " WHERE NOT EXISTS (SELECT 1 FROM cao.access_events e"
    "                    WHERE e.account_id = %(account)s AND e.event_id = i.event_id)"
)
_MOVE_SKIPPING_CONFLICTS = (
    f"INSERT INTO cao.access_events (agency_id, account_id, {_COLUMN_LIST})"  # noqa: S608
    f" SELECT %(agency)s, %(account)s, {_COLUMN_LIST} FROM {_INCOMING}"
    " ON CONFLICT (account_id, event_id) DO NOTHING"
)

Row = Sequence[Any]


def insert_events(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, rows: Sequence[Row]
) -> int:
    """Insert event rows (columns `EVENT_COLUMNS`); returns how many were new."""
    if not rows:
        return 0
    if len(rows) > MAX_BATCH_ROWS:
        raise ValueError(f"insert at most {MAX_BATCH_ROWS} rows per call")
    conn.execute(_CREATE_INCOMING)
    with conn.cursor() as cur:
        with cur.copy(_COPY_INCOMING) as copy:
            for row in rows:
                copy.write_row(row)
        ids = {"agency": agency_id, "account": account_id}
        try:
            with conn.transaction():  # a savepoint: a collision falls back below
                cur.execute(_MOVE_NEW, ids)
        except pg_errors.UniqueViolation:
            cur.execute(_MOVE_SKIPPING_CONFLICTS, ids)
        inserted = max(cur.rowcount, 0)
    # Dropped now, not only at commit: the same transaction may insert another batch.
    conn.execute(f"DROP TABLE {_INCOMING}")
    return inserted


def defer_commit_flush(conn: Connection) -> None:
    """Let this transaction's commit return before its WAL reaches disk (synchronous_commit off
    for this transaction only). A database crash can then lose it, but only whole, together
    with every transaction after it: the rows and the cursor they were committed with vanish
    together and are read again from AWS. For event batches only, never for a job's outcome."""
    conn.execute("SELECT set_config('synchronous_commit', 'off', true)")


@dataclass(frozen=True)
class Cursor:
    """The read position of one (account, region): see functions/sync_cloudtrail/windows.py."""

    region: str
    position: datetime
    partial_end: datetime | None
    updated_at: datetime


def get_cursors(conn: Connection, account_id: uuid.UUID) -> dict[str, Cursor]:
    """Every region's cursor of an account."""
    rows = conn.execute(
        "SELECT region, position, partial_end, updated_at FROM cao.sync_cursors"
        " WHERE account_id = %s",
        (account_id,),
    ).fetchall()
    return {r[0]: Cursor(*r) for r in rows}


def set_cursor(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    region: str,
    *,
    position: datetime,
    partial_end: datetime | None,
    now: datetime,
) -> None:
    """Record the read position of one (account, region)."""
    if partial_end is not None and partial_end <= position:
        raise ValueError("a partly read window ends after the cursor")
    conn.execute(
        "INSERT INTO cao.sync_cursors (agency_id, account_id, region, position, partial_end,"
        " updated_at) VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (account_id, region) DO UPDATE SET position = EXCLUDED.position,"
        " partial_end = EXCLUDED.partial_end, updated_at = EXCLUDED.updated_at",
        (agency_id, account_id, region, position, partial_end, now),
    )


def oldest_event_after(
    conn: Connection, account_id: uuid.UUID, region: str, after: datetime, upto: datetime
) -> datetime | None:
    """The oldest stored event time in (after, upto] of one (account, region): where the read
    of a partly read window stopped."""
    row = conn.execute(
        "SELECT min(event_time) FROM cao.access_events WHERE account_id = %s AND region = %s"
        " AND event_time > %s AND event_time <= %s",
        (account_id, region, after, upto),
    ).fetchone()
    return None if row is None else row[0]


@dataclass(frozen=True)
class SyncTarget:
    """What a CloudTrail sync of one linked account needs from the database."""

    agency_id: uuid.UUID
    account_id: uuid.UUID
    aws_account_id: str
    regions: tuple[str, ...]  # the account's own, else the agency's defaults
    backfill_days: int
    retention_days: int
    status: str


def sync_target(conn: Connection, account_id: uuid.UUID) -> SyncTarget | None:
    """The account's AWS id, regions and the agency's CloudTrail settings (None if unknown)."""
    row = conn.execute(
        "SELECT c.agency_id, c.id, c.aws_account_id, coalesce(c.regions, a.default_regions),"
        " a.cloudtrail_backfill_days, a.cloudtrail_retention_days, c.status"
        " FROM cao.accounts c JOIN cao.agencies a ON a.id = c.agency_id WHERE c.id = %s",
        (account_id,),
    ).fetchone()
    if row is None:
        return None
    return SyncTarget(row[0], row[1], row[2], tuple(row[3]), int(row[4]), int(row[5]), row[6])


# ---- retention --------------------------------------------------------------------------------

PURGE_BATCH = 10_000


def purge_expired_batch(
    conn: Connection, now: datetime, batch: int = PURGE_BATCH
) -> dict[uuid.UUID, int]:
    """Delete at most `batch` events past their agency's retention at `now` (one call of
    `cao.purge_expired_events`); returns rows deleted per agency."""
    rows = conn.execute(
        "SELECT agency_id, deleted FROM cao.purge_expired_events(%s, %s)", (now, batch)
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def retention_days(conn: Connection, agency_id: uuid.UUID) -> int | None:
    """The agency's CloudTrail retention in days (None if the agency is gone)."""
    row = conn.execute(
        "SELECT cloudtrail_retention_days FROM cao.agencies WHERE id = %s", (agency_id,)
    ).fetchone()
    return None if row is None else int(row[0])
