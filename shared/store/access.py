"""CloudTrail access events: the sync's writes (events, per-(account, region) cursors, the
retention purge) and the access-governance reads.

Every function takes a connection already inside a transaction and never commits; the caller
commits rows and cursor together (functions/sync_cloudtrail/reader.py). Event and cursor
functions run inside `tenant_tx` (row-level security: that agency only); the retention purge
goes through the SECURITY DEFINER functions `cao.drop_expired_event_partition` and
`cao.purge_expired_events`, the cross-tenant paths.

Bulk insert. Each batch is COPYed into a temporary table (dropped with the transaction: nothing
outlives it, so a transaction-mode pooler is fine), then moved into cao.access_events with one
INSERT ... SELECT ... ON CONFLICT (account_id, event_id, event_time) DO NOTHING that skips the
events already stored (re-reading an event, overlap or rerun after a crash, is harmless). Held
events are found by the batch's keys only: a LATERAL probe per row of each month partition's
unique index (account_id, event_id, ...), whatever the time stored with that ID, so the insert
costs the same however many events the account holds (issue 21; the anti-join it replaces was
planned as a hash of every stored event of the account). Before it, the month partitions the
batch needs are created if missing (`cao.ensure_event_partitions`, SECURITY DEFINER). COPY
straight into cao.access_events is not possible: Postgres refuses COPY FROM into a table with
row-level security. bench/cloudtrail_insert.py measured the choice against INSERT ... SELECT
FROM unnest(<arrays>) and executemany; its output has the numbers.

Reads. Events are read newest first with keyset pagination on (event_time, id): the index
`access_events_agency_time (agency_id, event_time DESC, id DESC)` serves the page directly, and
rows inserted while a client pages never shift it (no OFFSET). The keyset condition is written
as plain comparisons rather than a row comparison: with row-level security on, only leakproof
operators may be used as index conditions ahead of the policy, and timestamptz/bigint
comparisons are. A principal is its ARN when CloudTrail gave one, else its name (AWS service
principals).

Summaries. `cao.access_principals` (per account x principal: names, first and last seen, event
count), `cao.access_principal_ips` (its distinct source IPs), their agency totals, and the
vendor ledger (`cao.access_vendor_sessions`, `cao.access_vendor_event_names`,
`cao.access_vendor_ips`: our own sessions per account x session name) are written by statement
triggers on cao.access_events (schema.sql), in the transaction of the statement that wrote the
events: the INSERT of `insert_events` adds exactly the rows it inserted (those it skipped are not
in the trigger's transition table), the retention purge recomputes what it touched (a row delete
through the trigger, a dropped month partition in `cao.drop_expired_event_partition`), deletions
cascade. No code here writes them but the operator's `rebuild_principal_summaries`. The
principals, new-principals and vendor pages read only them, all time; a `since`/`until` window
is computed from the window's events.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import sql
from psycopg.rows import class_row, kwargs_row
from pydantic import Field

from shared.db import Connection
from shared.kit.schemas import Row as StoredRow
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
# Rows the account already holds are skipped by one probe of each partition's unique index per
# row of the batch (a LATERAL with LIMIT 1 is a nested loop: only the batch's keys are read,
# however many events the account has), whatever their stored time; a duplicate inside the batch
# or a concurrent writer is skipped by ON CONFLICT on the unique key. RETURNING nothing: the
# statement's rowcount is the rows inserted, and the summaries' trigger sees exactly those.
_MOVE_NEW = (
    f"INSERT INTO cao.access_events (agency_id, account_id, {_COLUMN_LIST})"  # noqa: S608
    f" SELECT %(agency)s, %(account)s, {_COLUMN_LIST} FROM {_INCOMING} i"
    " LEFT JOIN LATERAL (SELECT true AS held FROM cao.access_events e"
    "   WHERE e.account_id = %(account)s AND e.event_id = i.event_id LIMIT 1) s ON true"
    " WHERE s.held IS NULL"
    " ON CONFLICT (account_id, event_id, event_time) DO NOTHING"
)
_ENSURE_PARTITIONS = "SELECT cao.ensure_event_partitions(%s::timestamptz[])"
_EVENT_TIME = EVENT_COLUMNS.index("event_time")

Row = Sequence[Any]


def _months(rows: Sequence[Row]) -> list[datetime]:
    """The first instant (UTC) of each month the rows' event times fall in."""
    months = set()
    for row in rows:
        t = row[_EVENT_TIME].astimezone(UTC)
        months.add(datetime(t.year, t.month, 1, tzinfo=UTC))
    return sorted(months)


def insert_events(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, rows: Sequence[Row]
) -> int:
    """Insert event rows (columns `EVENT_COLUMNS`); returns how many were new. The month
    partitions the rows need are created first if missing (`cao.ensure_event_partitions`)."""
    if not rows:
        return 0
    if len(rows) > MAX_BATCH_ROWS:
        raise ValueError(f"insert at most {MAX_BATCH_ROWS} rows per call")
    conn.execute(_ENSURE_PARTITIONS, (_months(rows),))
    conn.execute(_CREATE_INCOMING)
    with conn.cursor() as cur:
        with cur.copy(_COPY_INCOMING) as copy:
            for row in rows:
                copy.write_row(row)
        cur.execute(_MOVE_NEW, {"agency": agency_id, "account": account_id})
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
    """The read position of one pass over one (account, region): see
    functions/sync_cloudtrail/windows.py."""

    region: str
    pass_: str
    position: datetime
    partial_end: datetime | None
    partial_from: datetime | None
    partial_since: datetime | None
    updated_at: datetime


CURSOR_PASSES = ("live", "sweep")
# An account whose CloudTrail events are more than this behind now is shown as falling behind
# (GET /api/accounts) and, while its lag grows, reported (Sentry). Hourly runs keep the lag
# under about an hour; a throttle or an error's retry adds minutes.
BEHIND_AFTER_S = 2 * 3600


def get_cursors(conn: Connection, account_id: uuid.UUID) -> dict[tuple[str, str], Cursor]:
    """Every cursor of an account, by (region, pass)."""
    rows = conn.execute(
        "SELECT region, pass, position, partial_end, partial_from, partial_since, updated_at"
        " FROM cao.sync_cursors WHERE account_id = %s",
        (account_id,),
    ).fetchall()
    return {(r[0], r[1]): Cursor(*r) for r in rows}


def set_cursor(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    region: str,
    *,
    position: datetime,
    partial_end: datetime | None,
    now: datetime,
    pass_: str = "live",  # noqa: S107 - a read pass's name, not a password
    partial_from: datetime | None = None,
    partial_since: datetime | None = None,
) -> None:
    """Record the read position of one pass over one (account, region)."""
    if pass_ not in CURSOR_PASSES:
        raise ValueError(f"pass must be one of {CURSOR_PASSES}")
    if partial_end is not None and partial_end <= position:
        raise ValueError("a partly read window ends after the cursor")
    if partial_end is None and (partial_from is not None or partial_since is not None):
        raise ValueError("partial_from and partial_since describe a partly read window")
    conn.execute(
        "INSERT INTO cao.sync_cursors (agency_id, account_id, region, pass, position,"
        " partial_end, partial_from, partial_since, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (account_id, region, pass) DO UPDATE SET position = EXCLUDED.position,"
        " partial_end = EXCLUDED.partial_end, partial_from = EXCLUDED.partial_from,"
        " partial_since = EXCLUDED.partial_since, updated_at = EXCLUDED.updated_at",
        (
            agency_id,
            account_id,
            region,
            pass_,
            position,
            partial_end,
            partial_from,
            partial_since,
            now,
        ),
    )


def advance_cursor(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    region: str,
    *,
    pass_: str,
    position: datetime,
    now: datetime,
) -> None:
    """Move a pass's cursor forward to `position` (created there if absent); never backwards,
    and never while it has a partly read window of its own to finish."""
    if pass_ not in CURSOR_PASSES:
        raise ValueError(f"pass must be one of {CURSOR_PASSES}")
    conn.execute(
        "INSERT INTO cao.sync_cursors (agency_id, account_id, region, pass, position, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (account_id, region, pass) DO UPDATE"
        " SET position = greatest(cao.sync_cursors.position, EXCLUDED.position),"
        " updated_at = EXCLUDED.updated_at WHERE cao.sync_cursors.partial_end IS NULL",
        (agency_id, account_id, region, pass_, position, now),
    )


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
    conn: Connection, batch: int = PURGE_BATCH
) -> dict[uuid.UUID, tuple[int, datetime]]:
    """Delete at most `batch` events past their agency's retention as of the database's clock
    (one call of `cao.purge_expired_events`); returns (rows deleted, the cutoff) per agency."""
    rows = conn.execute(
        "SELECT agency_id, deleted, older_than FROM cao.purge_expired_events(%s)", (batch,)
    ).fetchall()
    return {r[0]: (int(r[1]), r[2]) for r in rows}


def drop_expired_partition(
    conn: Connection,
) -> tuple[str | None, dict[uuid.UUID, tuple[int, datetime]]]:
    """Drop the oldest month partition whose every event is past its agency's retention, as of
    the database's clock (one call of `cao.drop_expired_event_partition`); returns its name
    (None when no partition is due) and (rows dropped, the cutoff) per agency."""
    rows = conn.execute(
        "SELECT partition_name, agency_id, deleted, older_than"
        " FROM cao.drop_expired_event_partition()"
    ).fetchall()
    if not rows:
        return None, {}
    return rows[0][0], {r[1]: (int(r[2]), r[3]) for r in rows if r[1] is not None}


def create_partitions_ahead(conn: Connection) -> int:
    """Create this month's and next month's event partitions if missing (the database's clock);
    returns how many were created."""
    row = conn.execute(
        "SELECT cao.ensure_event_partitions(ARRAY[now(), now() + interval '1 month'])"
    ).fetchone()
    return 0 if row is None else int(row[0])


def event_partitions(conn: Connection) -> list[str]:
    """The names of the partitions of cao.access_events (the owner's view; for operators and
    tests)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'cao.access_events'::regclass ORDER BY c.relname"
    ).fetchall()
    return [r[0] for r in rows]


def retention_days(conn: Connection, agency_id: uuid.UUID) -> int | None:
    """The agency's CloudTrail retention in days (None if the agency is gone)."""
    row = conn.execute(
        "SELECT cloudtrail_retention_days FROM cao.agencies WHERE id = %s", (agency_id,)
    ).fetchone()
    return None if row is None else int(row[0])


MAX_LISTED_IPS = 20
MAX_LISTED_EVENT_NAMES = 50


@dataclass(frozen=True)
class EventFilter:
    account_ids: Sequence[uuid.UUID] | None = None
    principal: str | None = None
    event_name: str | None = None
    source_ip: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class EventRow(StoredRow):
    id: int
    account_id: uuid.UUID
    aws_account_id: str
    region: str
    event_id: str
    event_time: datetime
    event_name: str
    principal_arn: str | None
    principal_name: str | None
    source_ip: str | None
    is_vendor: bool = Field(description="a session of ours (CloudAgencyOps)")


class PrincipalRow(StoredRow):
    principal: str = Field(description="the principal ARN, or its name when CloudTrail has none")
    principal_arn: str | None
    principal_name: str | None
    first_seen: datetime
    last_seen: datetime
    event_count: int
    source_ip_count: int
    source_ips: list[str] = Field(description="up to 20 of them")


@dataclass(frozen=True)
class VendorSessionRow:
    key: str
    account_id: uuid.UUID
    aws_account_id: str
    session_name: str
    principal_arn: str | None
    first_event: datetime
    last_event: datetime
    event_count: int
    event_names: list[str]
    source_ips: list[str]


def _conditions(
    agency_id: uuid.UUID, f: EventFilter, alias: str = "", *, accounts: bool = True
) -> tuple[list[sql.Composable], dict[str, object]]:
    p = sql.SQL(alias + "." if alias else "")
    where: list[sql.Composable] = [sql.SQL("{}agency_id = %(agency)s").format(p)]
    params: dict[str, object] = {"agency": agency_id}
    if f.account_ids is not None and accounts:
        where.append(sql.SQL("{}account_id = ANY(%(accounts)s)").format(p))
        params["accounts"] = list(f.account_ids)
    if f.principal is not None:
        column = "principal_arn" if f.principal.startswith("arn:") else "principal_name"
        where.append(sql.SQL("{}{} = %(principal)s").format(p, sql.Identifier(column)))
        params["principal"] = f.principal
    if f.event_name is not None:
        where.append(sql.SQL("{}event_name = %(event_name)s").format(p))
        params["event_name"] = f.event_name
    if f.source_ip is not None:
        where.append(sql.SQL("{}source_ip = %(source_ip)s").format(p))
        params["source_ip"] = f.source_ip
    if f.since is not None:
        where.append(sql.SQL("{}event_time >= %(since)s").format(p))
        params["since"] = f.since
    if f.until is not None:
        where.append(sql.SQL("{}event_time < %(until)s").format(p))
        params["until"] = f.until
    return where, params


_EVENT_COLUMNS = sql.SQL(
    "id, account_id, aws_account_id, region, event_id, event_time, event_name, principal_arn,"
    " principal_name, source_ip, is_vendor"
)


def page_events(
    conn: Connection,
    agency_id: uuid.UUID,
    f: EventFilter,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[EventRow]:
    """Up to `limit` events, newest first, strictly after the position `after`.

    The keyset condition is `event_time <= t AND (event_time < t OR id < i)`: its first term is
    an index range, so a deep page starts where the previous one ended instead of filtering its
    way down. With an account filter, each account's newest rows are read from
    `access_events_account_time` and merged (a LATERAL per account): an `= ANY(...)` filter on
    the agency-wide index would read past every other account's events.
    """
    where, params = _conditions(agency_id, f, accounts=False)
    if after is not None:
        where.append(sql.SQL("event_time <= %(at)s AND (event_time < %(at)s OR id < %(after_id)s)"))
        params.update(at=after[0], after_id=after[1])
    params["limit"] = limit
    if f.account_ids is None:
        query = sql.SQL(
            "SELECT {columns} FROM cao.access_events WHERE {where}"
            " ORDER BY event_time DESC, id DESC LIMIT %(limit)s"
        ).format(columns=_EVENT_COLUMNS, where=sql.SQL(" AND ").join(where))
    else:
        params["accounts"] = list(dict.fromkeys(f.account_ids))
        query = sql.SQL(
            "SELECT e.* FROM unnest(%(accounts)s::uuid[]) AS a(account_id)"
            " CROSS JOIN LATERAL (SELECT {columns} FROM cao.access_events"
            "   WHERE account_id = a.account_id AND {where}"
            "   ORDER BY event_time DESC, id DESC LIMIT %(limit)s) e"
            " ORDER BY e.event_time DESC, e.id DESC LIMIT %(limit)s"
        ).format(columns=_EVENT_COLUMNS, where=sql.SQL(" AND ").join(where))
    cur = conn.cursor(row_factory=kwargs_row(EventRow.model_construct))
    return cur.execute(query, params).fetchall()


_PRINCIPAL_AGGREGATE = sql.SQL(
    "SELECT coalesce(principal_arn, principal_name) AS principal,"
    " max(principal_arn) AS principal_arn, max(principal_name) AS principal_name,"
    " min(event_time) AS first_seen, max(event_time) AS last_seen, count(*) AS event_count,"
    " count(DISTINCT source_ip) AS source_ip_count,"
    " coalesce((array_agg(DISTINCT source_ip) FILTER (WHERE source_ip IS NOT NULL))"
    "[1:{ips}], ARRAY[]::text[]) AS source_ips"
    " FROM cao.access_events WHERE {where}"
    " AND coalesce(principal_arn, principal_name) IS NOT NULL GROUP BY 1"
)


def page_principals(
    conn: Connection,
    agency_id: uuid.UUID,
    f: EventFilter,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PrincipalRow]:
    """One row per principal seen under filter `f`, most recently active first.

    All time (no `since`/`until`), the page is read from the summaries kept at ingest, whatever
    the number of events: over all accounts from the agency totals
    (`cao.access_principal_totals`, one keyset range), under an account filter from the
    per-account summaries (`cao.access_principals`, `cao.access_principal_ips`; see
    `_page_from_summaries`). The summaries are all-time per account x principal, so a time window
    cannot be answered from them: a page under `since` or `until` is computed from the events of
    the window (`_page_from_events`), as exact and as slow as the window is large.
    """
    if f.since is None and f.until is None:
        if f.account_ids is None:
            return _page_from_totals(conn, agency_id, after, limit)
        return _page_from_summaries(conn, agency_id, f.account_ids, after, limit)
    return _page_from_events(conn, agency_id, f, after, limit)


def _page_from_totals(
    conn: Connection, agency_id: uuid.UUID, after: tuple[datetime, str] | None, limit: int
) -> list[PrincipalRow]:
    """The page over all accounts: one keyset range of `cao.access_principal_totals`."""
    params: dict[str, object] = {"agency": agency_id, "limit": limit}
    keyset = sql.SQL("")
    if after is not None:
        keyset = sql.SQL(
            " AND last_seen <= %(at)s AND (last_seen < %(at)s OR principal > %(after_key)s)"
        )
        params.update(at=after[0], after_key=after[1])
    query = sql.SQL(
        "SELECT principal, principal_arn, principal_name, first_seen, last_seen, event_count,"
        " source_ip_count, source_ips FROM cao.access_principal_totals"
        " WHERE agency_id = %(agency)s{keyset} ORDER BY last_seen DESC, principal"
        " LIMIT %(limit)s"
    ).format(keyset=keyset)
    cur = conn.cursor(row_factory=kwargs_row(PrincipalRow.model_construct))
    return cur.execute(query, params).fetchall()


SUMMARY_SCAN = 512


def _page_from_summaries(
    conn: Connection,
    agency_id: uuid.UUID,
    account_ids: Sequence[uuid.UUID] | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PrincipalRow]:
    """A page from the per account x principal summaries, in two steps:
    1. which principals are on it: summary rows are read in page order (last seen, newest
       first; then principal) from the cursor on, in a batch of `scan` rows. A principal's
       first row in that order is its latest activity over all accounts, so the distinct
       principals of a batch are, in order of first appearance, the page's first ones, except
       those active at or before the cursor in another account (they were on an earlier page).
       Too few: the batch grows fourfold until the rows run out.
    2. their summaries over the accounts, and their distinct source IPs.
    """
    scan = max(SUMMARY_SCAN, 4 * limit)
    while True:
        keys, exhausted = _summary_keys(conn, agency_id, account_ids, after, scan=scan)
        if exhausted or len(keys) >= limit:
            return _principal_summaries(conn, agency_id, account_ids, keys[:limit])
        scan *= 4


def _summary_keys(
    conn: Connection,
    agency_id: uuid.UUID,
    account_ids: Sequence[uuid.UUID] | None,
    after: tuple[datetime, str] | None,
    *,
    scan: int,
) -> tuple[list[str], bool]:
    """The page's principals found in the first `scan` summary rows after the cursor, in page
    order, and whether those were all the rows."""
    params: dict[str, object] = {"agency": agency_id, "scan": scan}
    keyset = sql.SQL("")
    if after is not None:
        keyset = sql.SQL(
            " AND last_seen <= %(at)s AND (last_seen < %(at)s OR principal > %(after_key)s)"
        )
        params.update(at=after[0], after_key=after[1])
    if account_ids is None:
        rows_sql = sql.SQL(
            "SELECT principal, last_seen FROM cao.access_principals"
            " WHERE agency_id = %(agency)s{keyset}"
            " ORDER BY last_seen DESC, principal LIMIT %(scan)s"
        ).format(keyset=keyset)
    else:
        # One index range per account, merged: the agency-wide order filtered by account
        # would read past every other account's principals.
        params["accounts"] = list(dict.fromkeys(account_ids))
        rows_sql = sql.SQL(
            "SELECT s.principal, s.last_seen FROM unnest(%(accounts)s::uuid[]) AS a(account_id)"
            " CROSS JOIN LATERAL (SELECT principal, last_seen FROM cao.access_principals"
            "   WHERE account_id = a.account_id AND agency_id = %(agency)s{keyset}"
            "   ORDER BY last_seen DESC, principal LIMIT %(scan)s) s"
            " ORDER BY s.last_seen DESC, s.principal LIMIT %(scan)s"
        ).format(keyset=keyset)
    rows = conn.execute(rows_sql, params).fetchall()
    keys = list(dict.fromkeys(r[0] for r in rows))
    if after is not None and keys:
        keys = [
            k for k in keys if k not in _listed_before(conn, agency_id, account_ids, after, keys)
        ]
    return keys, len(rows) < scan


def _listed_before(
    conn: Connection,
    agency_id: uuid.UUID,
    account_ids: Sequence[uuid.UUID] | None,
    after: tuple[datetime, str],
    keys: Sequence[str],
) -> set[str]:
    """Those of `keys` whose latest activity (under the account filter) is at or before the
    cursor in page order: they were listed on an earlier page."""
    accounts = sql.SQL("")
    params: dict[str, object] = {
        "agency": agency_id,
        "keys": list(keys),
        "at": after[0],
        "after_key": after[1],
    }
    if account_ids is not None:
        accounts = sql.SQL(" AND account_id = ANY(%(accounts)s)")
        params["accounts"] = list(account_ids)
    query = sql.SQL(
        "SELECT DISTINCT principal FROM cao.access_principals"
        " WHERE agency_id = %(agency)s AND principal = ANY(%(keys)s){accounts}"
        " AND last_seen >= %(at)s AND (last_seen > %(at)s OR principal <= %(after_key)s)"
    ).format(accounts=accounts)
    return {r[0] for r in conn.execute(query, params)}


def _principal_summaries(
    conn: Connection,
    agency_id: uuid.UUID,
    account_ids: Sequence[uuid.UUID] | None,
    keys: Sequence[str],
) -> list[PrincipalRow]:
    """The summaries of `keys` over the accounts (all, or those filtered), in their order."""
    if not keys:
        return []
    accounts = sql.SQL("")
    params: dict[str, object] = {"agency": agency_id, "keys": list(keys)}
    if account_ids is not None:
        accounts = sql.SQL(" AND account_id = ANY(%(accounts)s)")
        params["accounts"] = list(account_ids)
    query = sql.SQL(
        "WITH p AS (SELECT principal, max(principal_arn) AS principal_arn,"
        "  max(principal_name) AS principal_name, min(first_seen) AS first_seen,"
        "  max(last_seen) AS last_seen, sum(event_count)::bigint AS event_count"
        "  FROM cao.access_principals"
        "  WHERE agency_id = %(agency)s AND principal = ANY(%(keys)s){accounts}"
        "  GROUP BY principal),"
        " ips AS (SELECT principal, count(DISTINCT source_ip) AS source_ip_count,"
        "  (array_agg(DISTINCT source_ip))[1:{ips}] AS source_ips"
        "  FROM cao.access_principal_ips"
        "  WHERE agency_id = %(agency)s AND principal = ANY(%(keys)s){accounts}"
        "  GROUP BY principal)"
        " SELECT p.*, coalesce(ips.source_ip_count, 0) AS source_ip_count,"
        "  coalesce(ips.source_ips, ARRAY[]::text[]) AS source_ips"
        " FROM p LEFT JOIN ips USING (principal)"
    ).format(accounts=accounts, ips=sql.Literal(MAX_LISTED_IPS))
    cur = conn.cursor(row_factory=kwargs_row(PrincipalRow.model_construct))
    rows = cur.execute(query, params).fetchall()
    order = {k: i for i, k in enumerate(keys)}
    return sorted(rows, key=lambda r: order[r.principal])


def _page_from_events(
    conn: Connection,
    agency_id: uuid.UUID,
    f: EventFilter,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PrincipalRow]:
    """The page under a time window, from the window's events. Two steps:
    1. which principals are on the page (`_principals_on_page`): events are read newest first,
       under the filter and from the cursor's time down, in a batch of PRINCIPAL_SCAN rows. A
       principal's newest event in the batch is its last activity; those active strictly after
       the batch's oldest event are ranked exactly (a principal not in the batch was last seen
       at or before it). Principals active after the cursor's time were on an earlier page and
       are left out. Too few exact ones: the batch grows fourfold, up to PRINCIPAL_SCAN_MAX
       rows, past which the single aggregate is cheaper and is used.
    2. their summaries, one index range of `access_events_principal_summary` each.
    """
    where, params = _conditions(agency_id, f)
    scan = PRINCIPAL_SCAN
    while scan <= PRINCIPAL_SCAN_MAX:
        keys = _principals_on_page(conn, where, params, after=after, limit=limit, scan=scan)
        if keys is not None:
            return _summaries(conn, where, params, keys)
        scan *= 4
    return _aggregate_principals(conn, where, params, after, limit)


PRINCIPAL_SCAN = 1024
PRINCIPAL_SCAN_MAX = 262_144


def _principals_on_page(
    conn: Connection,
    where: list[sql.Composable],
    params: dict[str, object],
    *,
    after: tuple[datetime, str] | None,
    limit: int,
    scan: int,
) -> list[tuple[str, bool]] | None:
    """The page's principals as (key, keyed by ARN), in page order; None when a batch of
    `scan` events does not settle the page."""
    conditions = [*where, sql.SQL("coalesce(principal_arn, principal_name) IS NOT NULL")]
    if after is not None:
        conditions.append(sql.SQL("event_time <= %(at)s"))
    query = sql.SQL(
        "WITH scan AS MATERIALIZED ("
        " SELECT coalesce(principal_arn, principal_name) AS principal,"
        "  principal_arn IS NOT NULL AS by_arn, event_time FROM cao.access_events"
        " WHERE {where} ORDER BY event_time DESC, id DESC LIMIT %(scan)s)"
        " SELECT principal, bool_or(by_arn), max(event_time),"
        "  (SELECT min(event_time) FROM scan), (SELECT count(*) FROM scan)"
        " FROM scan GROUP BY principal"
    ).format(where=sql.SQL(" AND ").join(conditions))
    rows = conn.execute(
        query, {**params, "scan": scan, **({"at": after[0]} if after else {})}
    ).fetchall()
    if not rows:
        return []
    oldest, scanned = rows[0][3], rows[0][4]
    exhausted = scanned < scan
    seen = sorted(
        ((r[2], r[0], r[1]) for r in rows),
        key=lambda r: (-r[0].timestamp(), r[1]),
    )
    if after is not None:
        at, key = after
        seen = [r for r in seen if r[0] < at or (r[0] == at and r[1] > key)]
    exact = seen if exhausted else [r for r in seen if r[0] > oldest]
    if after is not None and exact:
        earlier = _active_after(conn, where, params, after[0], [(r[1], r[2]) for r in exact])
        exact = [r for r in exact if r[1] not in earlier]
    if len(exact) >= limit or exhausted:
        return [(r[1], r[2]) for r in exact[:limit]]
    return None


def _active_after(
    conn: Connection,
    where: list[sql.Composable],
    params: dict[str, object],
    at: datetime,
    keys: Sequence[tuple[str, bool]],
) -> set[str]:
    """Those of `keys` with an event after `at` under the filter (listed on an earlier page)."""
    conditions = sql.SQL(" AND ").join([*where, sql.SQL("event_time > %(at)s")])
    query = sql.SQL(
        "SELECT k FROM unnest(%(arns)s::text[]) k WHERE EXISTS (SELECT 1 FROM cao.access_events"
        "  WHERE {where} AND principal_arn = k)"
        " UNION ALL"
        " SELECT k FROM unnest(%(names)s::text[]) k WHERE EXISTS (SELECT 1 FROM cao.access_events"
        "  WHERE {where} AND principal_arn IS NULL AND principal_name = k)"
    ).format(where=conditions)
    rows = conn.execute(
        query,
        {
            **params,
            "at": at,
            "arns": [k for k, by_arn in keys if by_arn],
            "names": [k for k, by_arn in keys if not by_arn],
        },
    ).fetchall()
    return {r[0] for r in rows}


_PRINCIPAL_SUMMARY = sql.SQL(
    "SELECT k.principal, s.* FROM unnest(%({keys})s::text[]) AS k(principal)"
    " CROSS JOIN LATERAL (SELECT"
    "  max(principal_arn) AS principal_arn, max(principal_name) AS principal_name,"
    "  min(event_time) AS first_seen, max(event_time) AS last_seen, count(*) AS event_count,"
    "  count(DISTINCT source_ip) AS source_ip_count,"
    "  coalesce((array_agg(DISTINCT source_ip) FILTER (WHERE source_ip IS NOT NULL))"
    "[1:{ips}], ARRAY[]::text[]) AS source_ips"
    "  FROM cao.access_events WHERE {where} AND {match}) s"
)


def _summaries(
    conn: Connection,
    where: list[sql.Composable],
    params: dict[str, object],
    keys: Sequence[tuple[str, bool]],
) -> list[PrincipalRow]:
    """The summaries of `keys`, in their order (one LATERAL range per principal, per index)."""
    if not keys:
        return []
    conditions = sql.SQL(" AND ").join(where)
    ips = sql.Literal(MAX_LISTED_IPS)
    query = sql.SQL("{arns} UNION ALL {names}").format(
        arns=_PRINCIPAL_SUMMARY.format(
            keys=sql.SQL("arns"),
            ips=ips,
            where=conditions,
            match=sql.SQL("principal_arn = k.principal"),
        ),
        names=_PRINCIPAL_SUMMARY.format(
            keys=sql.SQL("names"),
            ips=ips,
            where=conditions,
            match=sql.SQL("principal_arn IS NULL AND principal_name = k.principal"),
        ),
    )
    cur = conn.cursor(row_factory=kwargs_row(PrincipalRow.model_construct))
    rows = cur.execute(
        query,
        {
            **params,
            "arns": [k for k, by_arn in keys if by_arn],
            "names": [k for k, by_arn in keys if not by_arn],
        },
    ).fetchall()
    order = {k: i for i, (k, _) in enumerate(keys)}
    return sorted(rows, key=lambda r: order[r.principal])


def _aggregate_principals(
    conn: Connection,
    where: list[sql.Composable],
    params: dict[str, object],
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PrincipalRow]:
    """The page in one aggregate over every event under the filter (the fallback)."""
    keyset = sql.SQL("")
    if after is not None:
        keyset = sql.SQL(
            " WHERE last_seen < %(at)s OR (last_seen = %(at)s AND principal > %(after_key)s)"
        )
        params = {**params, "at": after[0], "after_key": after[1]}
    query = sql.SQL(
        "SELECT * FROM ({agg}) p{keyset} ORDER BY last_seen DESC, principal LIMIT %(limit)s"
    ).format(
        agg=_PRINCIPAL_AGGREGATE.format(
            ips=sql.Literal(MAX_LISTED_IPS), where=sql.SQL(" AND ").join(where)
        ),
        keyset=keyset,
    )
    cur = conn.cursor(row_factory=kwargs_row(PrincipalRow.model_construct))
    return cur.execute(query, {**params, "limit": limit}).fetchall()


def page_new_principals(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    account_ids: Sequence[uuid.UUID] | None,
    cutoff: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PrincipalRow]:
    """Principals whose first stored event (under the account filter) is at or after `cutoff`,
    newest first-appearance first. "First" is within what retention keeps.

    Read from the summaries kept at ingest: all of such a principal's events are in the window,
    so its all-time summary is the window's. Over all accounts, one keyset range of the agency
    totals (`access_principal_totals_first`); under an account filter, the accounts' summaries
    first seen since the cutoff name the candidates, and those first seen earlier in another of
    the accounts are left out."""
    params: dict[str, object] = {"agency": agency_id, "cutoff": cutoff, "limit": limit}
    keyset = sql.SQL("")
    if after is not None:
        keyset = sql.SQL(
            " AND first_seen <= %(at)s AND (first_seen < %(at)s OR principal > %(after_key)s)"
        )
        params.update(at=after[0], after_key=after[1])
    if account_ids is None:
        query = sql.SQL(
            "SELECT principal, principal_arn, principal_name, first_seen, last_seen, event_count,"
            " source_ip_count, source_ips FROM cao.access_principal_totals"
            " WHERE agency_id = %(agency)s AND first_seen >= %(cutoff)s{keyset}"
            " ORDER BY first_seen DESC, principal LIMIT %(limit)s"
        ).format(keyset=keyset)
        cur = conn.cursor(row_factory=kwargs_row(PrincipalRow.model_construct))
        return cur.execute(query, params).fetchall()
    params["accounts"] = list(dict.fromkeys(account_ids))
    query = sql.SQL(
        "SELECT principal FROM ("
        " SELECT s.principal, min(s.first_seen) AS first_seen FROM cao.access_principals s"
        "  WHERE s.agency_id = %(agency)s AND s.account_id = ANY(%(accounts)s)"
        "  AND s.principal IN (SELECT c.principal FROM cao.access_principals c"
        "   WHERE c.agency_id = %(agency)s AND c.account_id = ANY(%(accounts)s)"
        "   AND c.first_seen >= %(cutoff)s)"
        "  GROUP BY s.principal) p"
        " WHERE first_seen >= %(cutoff)s{keyset}"
        " ORDER BY first_seen DESC, principal LIMIT %(limit)s"
    ).format(keyset=keyset)
    keys = [r[0] for r in conn.execute(query, params)]
    return _principal_summaries(conn, agency_id, account_ids, keys)


def page_vendor_sessions(
    conn: Connection,
    agency_id: uuid.UUID,
    f: EventFilter,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[VendorSessionRow]:
    """Our own sessions (events marked is_vendor) per account and session name, latest first.

    All time (no `since`/`until`), read from the ledger kept at ingest
    (`cao.access_vendor_sessions` and its event names and source IPs), one keyset range (one per
    account under an account filter, merged). Under a time window, from the window's events
    (the partial index `access_events_vendor`: our sessions are a sliver of the events)."""
    if f.since is None and f.until is None:
        return _vendor_from_summaries(conn, agency_id, f.account_ids, after, limit)
    where, params = _conditions(agency_id, f)
    where.append(sql.SQL("is_vendor"))
    keyset = sql.SQL("")
    if after is not None:
        keyset = sql.SQL(
            " WHERE last_event < %(at)s OR (last_event = %(at)s AND key > %(after_key)s)"
        )
        params.update(at=after[0], after_key=after[1])
    params["limit"] = limit
    query = sql.SQL(
        "SELECT * FROM ("
        " SELECT account_id::text || '/' || coalesce(principal_name, principal_arn, '') AS key,"
        " account_id, max(aws_account_id) AS aws_account_id,"
        " coalesce(principal_name, principal_arn, '') AS session_name,"
        " max(principal_arn) AS principal_arn, min(event_time) AS first_event,"
        " max(event_time) AS last_event, count(*) AS event_count,"
        " (array_agg(DISTINCT event_name))[1:{names}] AS event_names,"
        " coalesce((array_agg(DISTINCT source_ip) FILTER (WHERE source_ip IS NOT NULL))"
        "[1:{ips}], ARRAY[]::text[]) AS source_ips"
        " FROM cao.access_events WHERE {where} GROUP BY account_id, 4"
        ") v{keyset} ORDER BY last_event DESC, key LIMIT %(limit)s"
    ).format(
        names=sql.Literal(MAX_LISTED_EVENT_NAMES),
        ips=sql.Literal(MAX_LISTED_IPS),
        where=sql.SQL(" AND ").join(where),
        keyset=keyset,
    )
    cur = conn.cursor(row_factory=class_row(VendorSessionRow))
    return cur.execute(query, params).fetchall()


_VENDOR_KEY = "(account_id::text || '/' || session_name)"


def _vendor_from_summaries(
    conn: Connection,
    agency_id: uuid.UUID,
    account_ids: Sequence[uuid.UUID] | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[VendorSessionRow]:
    """The ledger's page from `cao.access_vendor_sessions`, each row with its first event names
    and source IPs (one index range of each per row)."""
    params: dict[str, object] = {"agency": agency_id, "limit": limit}
    keyset: sql.Composable = sql.SQL("")
    if after is not None:
        keyset = sql.SQL(
            " AND last_event <= %(at)s AND (last_event < %(at)s OR {key} > %(after_key)s)"
        ).format(key=sql.SQL(_VENDOR_KEY))
        params.update(at=after[0], after_key=after[1])
    columns = sql.SQL(
        "{key} AS key, account_id, aws_account_id, session_name, principal_arn, first_event,"
        " last_event, event_count"
    ).format(key=sql.SQL(_VENDOR_KEY))
    order = sql.SQL("ORDER BY last_event DESC, {key} LIMIT %(limit)s").format(
        key=sql.SQL(_VENDOR_KEY)
    )
    if account_ids is None:
        sessions = sql.SQL(
            "SELECT {columns} FROM cao.access_vendor_sessions"
            " WHERE agency_id = %(agency)s{keyset} {order}"
        ).format(columns=columns, keyset=keyset, order=order)
    else:
        params["accounts"] = list(dict.fromkeys(account_ids))
        sessions = sql.SQL(
            "SELECT s.* FROM unnest(%(accounts)s::uuid[]) AS a(id)"
            " CROSS JOIN LATERAL (SELECT {columns} FROM cao.access_vendor_sessions"
            "   WHERE account_id = a.id AND agency_id = %(agency)s{keyset} {order}) s"
            " ORDER BY s.last_event DESC, s.key LIMIT %(limit)s"
        ).format(columns=columns, keyset=keyset, order=order)
    query = sql.SQL(
        "SELECT v.*,"
        " ARRAY(SELECT n.event_name FROM cao.access_vendor_event_names n"
        "  WHERE n.account_id = v.account_id AND n.session_name = v.session_name"
        "  ORDER BY n.event_name LIMIT {names}) AS event_names,"
        " ARRAY(SELECT i.source_ip FROM cao.access_vendor_ips i"
        "  WHERE i.account_id = v.account_id AND i.session_name = v.session_name"
        "  ORDER BY i.source_ip LIMIT {ips}) AS source_ips"
        " FROM ({sessions}) v ORDER BY v.last_event DESC, v.key"
    ).format(
        names=sql.Literal(MAX_LISTED_EVENT_NAMES),
        ips=sql.Literal(MAX_LISTED_IPS),
        sessions=sessions,
    )
    cur = conn.cursor(row_factory=class_row(VendorSessionRow))
    return cur.execute(query, params).fetchall()


# ---- principal summaries: rebuild ---------------------------------------------------------------


def rebuild_principal_summaries(conn: Connection, agency_id: uuid.UUID | None) -> int:
    """Recompute the access summaries of one agency (None: every agency) from its events: the
    principal summaries and the vendor-access ledger; returns the per account x principal
    summary rows written. The source IPs go in first: the per-account
    summaries' insert trigger recomputes the agency totals from both. Runs as the schema owner
    (the app role may not delete summaries). Event writes wait on a SHARE lock until the
    transaction ends, so no sync or purge can commit events the rebuild would miss or count
    twice."""
    conn.execute("LOCK TABLE cao.access_events IN SHARE MODE")
    scope = sql.SQL("true" if agency_id is None else "agency_id = %(agency)s")
    params = {"agency": agency_id}
    conn.execute(sql.SQL("DELETE FROM cao.access_principal_ips WHERE {}").format(scope), params)
    conn.execute(sql.SQL("DELETE FROM cao.access_principals WHERE {}").format(scope), params)
    conn.execute(sql.SQL("DELETE FROM cao.access_principal_totals WHERE {}").format(scope), params)
    conn.execute(
        sql.SQL(
            "INSERT INTO cao.access_principal_ips (agency_id, account_id, principal, source_ip)"
            " SELECT DISTINCT agency_id, account_id, coalesce(principal_arn, principal_name),"
            " source_ip FROM cao.access_events WHERE {} AND source_ip IS NOT NULL"
            " AND coalesce(principal_arn, principal_name) IS NOT NULL"
        ).format(scope),
        params,
    )
    conn.execute(
        sql.SQL("DELETE FROM cao.access_vendor_event_names WHERE {}").format(scope), params
    )
    conn.execute(sql.SQL("DELETE FROM cao.access_vendor_ips WHERE {}").format(scope), params)
    conn.execute(sql.SQL("DELETE FROM cao.access_vendor_sessions WHERE {}").format(scope), params)
    vendor = sql.SQL("coalesce(principal_name, principal_arn, '')")
    conn.execute(
        sql.SQL(
            "INSERT INTO cao.access_vendor_sessions (agency_id, account_id, session_name,"
            " aws_account_id, principal_arn, first_event, last_event, event_count)"
            " SELECT agency_id, account_id, {vendor}, max(aws_account_id), max(principal_arn),"
            " min(event_time), max(event_time), count(*) FROM cao.access_events"
            " WHERE {scope} AND is_vendor GROUP BY 1, 2, 3"
        ).format(scope=scope, vendor=vendor),
        params,
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO cao.access_vendor_event_names (agency_id, account_id, session_name,"
            " event_name) SELECT DISTINCT agency_id, account_id, {vendor}, event_name"
            " FROM cao.access_events WHERE {scope} AND is_vendor"
        ).format(scope=scope, vendor=vendor),
        params,
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO cao.access_vendor_ips (agency_id, account_id, session_name, source_ip)"
            " SELECT DISTINCT agency_id, account_id, {vendor}, source_ip FROM cao.access_events"
            " WHERE {scope} AND is_vendor AND source_ip IS NOT NULL"
        ).format(scope=scope, vendor=vendor),
        params,
    )
    written = conn.execute(
        sql.SQL(
            "INSERT INTO cao.access_principals (agency_id, account_id, principal, principal_arn,"
            " principal_name, first_seen, last_seen, event_count)"
            " SELECT agency_id, account_id, coalesce(principal_arn, principal_name),"
            " max(principal_arn), max(principal_name), min(event_time), max(event_time), count(*)"
            " FROM cao.access_events WHERE {} AND coalesce(principal_arn, principal_name)"
            " IS NOT NULL GROUP BY 1, 2, 3"
        ).format(scope),
        params,
    ).rowcount
    return max(written, 0)
