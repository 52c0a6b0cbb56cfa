"""Reads of linked accounts and their sync health (jobs, cursors, runs) for the read API.

Onboarding owns writes to `cao.accounts` (shared/store/accounts.py); the sync issues own the job,
cursor and run tables. Every query here names the agency in its WHERE clause and runs inside
`tenant_tx`, so row-level security backs the explicit filter.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from psycopg import sql
from psycopg.rows import class_row

from shared.db import Connection


@dataclass(frozen=True)
class AccountRow:
    id: uuid.UUID
    aws_account_id: str
    alias: str | None
    status: str
    status_message: str | None
    is_management: bool
    regions: list[str] | None
    linked_at: datetime
    verified_at: datetime | None


@dataclass(frozen=True)
class JobRow:
    account_id: uuid.UUID
    kind: str
    state: str
    next_run_at: datetime
    last_success_at: datetime | None
    last_error_class: str | None
    last_error_at: datetime | None
    consecutive_failures: int


@dataclass(frozen=True)
class RunRow:
    id: uuid.UUID
    account_id: uuid.UUID
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    api_calls: int
    ce_requests: int
    ce_cost_usd: Decimal
    months: list[date] | None
    rows_written: int
    error_class: str | None


@dataclass(frozen=True)
class Spend:
    ce_requests: int
    ce_cost_usd: Decimal


_ACCOUNT_COLUMNS = sql.SQL(
    "id, aws_account_id, alias, status, status_message, is_management, regions, linked_at,"
    " verified_at"
)


def page_accounts(
    conn: Connection,
    agency_id: uuid.UUID,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[AccountRow]:
    """Accounts in link order, from just after `after` (keyset on (linked_at, id))."""
    params: dict[str, object] = {"agency": agency_id, "limit": limit}
    keyset = sql.SQL("")
    if after is not None:
        keyset = sql.SQL(" AND linked_at >= %(t)s AND (linked_at > %(t)s OR id > %(id)s)")
        params.update(t=after[0], id=after[1])
    cur = conn.cursor(row_factory=class_row(AccountRow))
    return cur.execute(
        sql.SQL(
            "SELECT {} FROM cao.accounts WHERE agency_id = %(agency)s{}"
            " ORDER BY linked_at, id LIMIT %(limit)s"
        ).format(_ACCOUNT_COLUMNS, keyset),
        params,
    ).fetchall()


def get_account(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> AccountRow | None:
    cur = conn.cursor(row_factory=class_row(AccountRow))
    return cur.execute(
        sql.SQL("SELECT {} FROM cao.accounts WHERE agency_id = %s AND id = %s").format(
            _ACCOUNT_COLUMNS
        ),
        (agency_id, account_id),
    ).fetchone()


def aws_ids_of(
    conn: Connection, agency_id: uuid.UUID, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """The AWS account IDs of those of `account_ids` that belong to the agency."""
    rows = conn.execute(
        "SELECT id, aws_account_id FROM cao.accounts WHERE agency_id = %s AND id = ANY(%s)",
        (agency_id, list(account_ids)),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


@dataclass(frozen=True)
class AccountLabel:
    name: str | None
    account_id: uuid.UUID | None


def labels(conn: Connection, agency_id: uuid.UUID) -> dict[str, AccountLabel]:
    """Per AWS account ID: the linked account (its alias as the name), else the name an
    organization listing gave a discovered member."""
    out: dict[str, AccountLabel] = {}
    for aws_id, name in conn.execute(
        "SELECT aws_account_id, name FROM cao.discovered_accounts WHERE agency_id = %s",
        (agency_id,),
    ):
        out[aws_id] = AccountLabel(name, None)
    for aws_id, alias, account_id in conn.execute(
        "SELECT aws_account_id, alias, id FROM cao.accounts WHERE agency_id = %s"
        " ORDER BY linked_at DESC",
        (agency_id,),
    ):
        known = out.get(aws_id)
        out[aws_id] = AccountLabel(alias or (known.name if known else None), account_id)
    return out


def jobs_of(
    conn: Connection, agency_id: uuid.UUID, account_ids: Sequence[uuid.UUID]
) -> list[JobRow]:
    cur = conn.cursor(row_factory=class_row(JobRow))
    return cur.execute(
        "SELECT account_id, kind, state, next_run_at, last_success_at, last_error_class,"
        " last_error_at, consecutive_failures FROM cao.sync_jobs"
        " WHERE agency_id = %s AND account_id = ANY(%s) ORDER BY account_id, kind",
        (agency_id, list(account_ids)),
    ).fetchall()


def oldest_cursors(
    conn: Connection, agency_id: uuid.UUID, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    """Per account, the CloudTrail position of its most lagging region."""
    rows = conn.execute(
        "SELECT account_id, min(position) FROM cao.sync_cursors"
        " WHERE agency_id = %s AND account_id = ANY(%s) GROUP BY account_id",
        (agency_id, list(account_ids)),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def spend_since(
    conn: Connection, agency_id: uuid.UUID, account_ids: Sequence[uuid.UUID], since: datetime
) -> dict[uuid.UUID, Spend]:
    """Cost Explorer requests (and their cost to the client) per account since `since`.

    Only cost syncs and linking/verification checks call Cost Explorer; naming those kinds
    lets `sync_runs_account (account_id, kind, started_at)` skip the hourly CloudTrail runs.
    """
    rows = conn.execute(
        "SELECT account_id, sum(ce_requests), sum(ce_cost_usd) FROM cao.sync_runs"
        " WHERE agency_id = %s AND account_id = ANY(%s) AND kind IN ('costs', 'verify')"
        " AND started_at >= %s GROUP BY account_id",
        (agency_id, list(account_ids), since),
    ).fetchall()
    return {r[0]: Spend(int(r[1] or 0), Decimal(r[2] or 0)) for r in rows}


def recent_runs(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, limit: int
) -> list[RunRow]:
    cur = conn.cursor(row_factory=class_row(RunRow))
    return cur.execute(
        "SELECT id, account_id, kind, status, started_at, finished_at, api_calls, ce_requests,"
        " ce_cost_usd, months, rows_written, error_class FROM cao.sync_runs"
        " WHERE agency_id = %s AND account_id = %s ORDER BY started_at DESC, id LIMIT %s",
        (agency_id, account_id, limit),
    ).fetchall()


def discovered_count(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> int:
    row = conn.execute(
        "SELECT count(*) FROM cao.discovered_accounts WHERE agency_id = %s AND management_id = %s",
        (agency_id, account_id),
    ).fetchone()
    return int(row[0]) if row else 0
