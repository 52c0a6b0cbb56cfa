"""Linked client accounts, the organization members discovered through them, and the reads of
their sync health (jobs, cursors, runs) for GET /api/accounts.

Every function runs inside `tenant_tx(conn, agency_id)` and filters on the agency id as well,
so row-level security backs the explicit filter. No credential is ever stored here: an account
is its 12-digit id, its role ARN, an alias, its regions, its status, and a reference to the
ExternalId it was last verified with (`external_id_id`). `needs_trust_update` is computed: true
while that reference is not the agency's current ExternalId (after a rotation, until the
account verifies with the new value).

Syncs must assume an account's role with `external_id_for(...)` (the value the account was
verified with), not with the agency's current value: that is what keeps syncs running while
clients update their trust policies one by one after a rotation.

`AccountRow` is the whole stored account (linking, edits, the syncs); `AccountSummaryRow` the
columns the list and detail views show, read with keyset pagination on (linked_at, id).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from psycopg import sql
from psycopg.rows import class_row

from shared.db import Connection

STATUSES = frozenset(
    {
        "active",
        "needs_trust_update",
        "access_denied",
        "paused",
        "cost_explorer_not_enabled",
        "unsafe_trust_policy",
        "unreachable",
    }
)
MAX_STATUS_MESSAGE = 1000
MAX_DISCOVERED = 5000
MAX_LIST = 1000

_COLUMNS = (
    "a.id, a.aws_account_id, a.role_arn, a.alias, a.regions, a.external_id_id, a.status,"
    " a.status_message, a.is_management, a.linked_at, a.verified_at, a.consecutive_denials,"
    " (cur.id IS NULL OR a.external_id_id <> cur.id) AS needs_trust_update"
)
_FROM = (
    " FROM cao.accounts a LEFT JOIN cao.external_ids cur"
    " ON cur.agency_id = a.agency_id AND cur.retired_at IS NULL"
)


@dataclass(frozen=True)
class AccountRow:
    id: uuid.UUID
    aws_account_id: str
    role_arn: str
    alias: str | None
    regions: list[str] | None
    external_id_id: uuid.UUID
    status: str
    status_message: str | None
    is_management: bool
    linked_at: datetime
    verified_at: datetime | None
    consecutive_denials: int
    needs_trust_update: bool


@dataclass(frozen=True)
class DiscoveredRow:
    aws_account_id: str
    name: str | None
    management_id: uuid.UUID
    management_aws_account_id: str
    management_role_arn: str
    discovered_at: datetime
    linked_account_id: uuid.UUID | None


def _select(where: str) -> str:
    return f"SELECT {_COLUMNS}{_FROM} WHERE {where}"


def get(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> AccountRow | None:
    row = conn.execute(
        _select("a.agency_id = %s AND a.id = %s"), (agency_id, account_id)
    ).fetchone()
    return AccountRow(*row) if row else None


def get_for_update(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID
) -> AccountRow | None:
    """The account, row-locked for the rest of the caller's transaction."""
    row = conn.execute(
        _select("a.agency_id = %s AND a.id = %s") + " FOR UPDATE OF a", (agency_id, account_id)
    ).fetchone()
    return AccountRow(*row) if row else None


def get_by_role_arn(conn: Connection, agency_id: uuid.UUID, role_arn: str) -> AccountRow | None:
    row = conn.execute(
        _select("a.agency_id = %s AND a.role_arn = %s"), (agency_id, role_arn)
    ).fetchone()
    return AccountRow(*row) if row else None


def get_by_aws_account_id(
    conn: Connection, agency_id: uuid.UUID, aws_account_id: str
) -> AccountRow | None:
    row = conn.execute(
        _select("a.agency_id = %s AND a.aws_account_id = %s") + " ORDER BY a.linked_at LIMIT 1",
        (agency_id, aws_account_id),
    ).fetchone()
    return AccountRow(*row) if row else None


def list_for_linking(conn: Connection, agency_id: uuid.UUID) -> list[AccountRow]:
    """The agency's accounts (bounded), oldest link first: what linking checks against."""
    rows = conn.execute(
        _select("a.agency_id = %s") + " ORDER BY a.linked_at, a.id LIMIT %s",
        (agency_id, MAX_LIST),
    ).fetchall()
    return [AccountRow(*r) for r in rows]


def list_needing_trust_update(conn: Connection, agency_id: uuid.UUID) -> list[AccountRow]:
    """Accounts still verified with a retired ExternalId (their trust policy needs the new one)."""
    rows = conn.execute(
        _select("a.agency_id = %s AND (cur.id IS NULL OR a.external_id_id <> cur.id)")
        + " ORDER BY a.linked_at, a.id LIMIT %s",
        (agency_id, MAX_LIST),
    ).fetchall()
    return [AccountRow(*r) for r in rows]


def count(conn: Connection, agency_id: uuid.UUID) -> int:
    row = conn.execute(
        "SELECT count(*) FROM cao.accounts WHERE agency_id = %s", (agency_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def insert(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    aws_account_id: str,
    role_arn: str,
    alias: str | None,
    regions: list[str] | None,
    external_id_id: uuid.UUID,
    status: str,
    status_message: str | None,
    is_management: bool,
    now: datetime,
) -> AccountRow | None:
    """Insert a linked account; None when this agency already links that role ARN."""
    row = conn.execute(
        "INSERT INTO cao.accounts (agency_id, aws_account_id, role_arn, alias, regions,"
        " external_id_id, status, status_message, is_management, linked_at, verified_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (agency_id, role_arn) DO NOTHING RETURNING id",
        (
            agency_id,
            aws_account_id,
            role_arn,
            alias,
            regions,
            external_id_id,
            status,
            _bounded(status_message),
            is_management,
            now,
            now,
        ),
    ).fetchone()
    if row is None:
        return None
    return get(conn, agency_id, row[0])


_UNSET: object = object()


def update(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    *,
    alias: str | object | None = _UNSET,
    regions: list[str] | object | None = _UNSET,
) -> AccountRow | None:
    """Change the alias and/or regions (a field left out is unchanged); None if not found."""
    row = conn.execute(
        "UPDATE cao.accounts SET"
        " alias = CASE WHEN %s THEN %s ELSE alias END,"
        " regions = CASE WHEN %s THEN %s::text[] ELSE regions END"
        " WHERE agency_id = %s AND id = %s RETURNING id",
        (
            alias is not _UNSET,
            None if alias is _UNSET else alias,
            regions is not _UNSET,
            None if regions is _UNSET else regions,
            agency_id,
            account_id,
        ),
    ).fetchone()
    return get(conn, agency_id, row[0]) if row else None


def delete(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> AccountRow | None:
    """Delete the account; its synced data goes with it (ON DELETE CASCADE in schema.sql:
    cost rows and months, access events, sync jobs, cursors and runs, discovered members;
    runbooks keep their text and lose the link). Returns the deleted account, or None."""
    before = get(conn, agency_id, account_id)
    if before is None:
        return None
    conn.execute(
        "DELETE FROM cao.accounts WHERE agency_id = %s AND id = %s", (agency_id, account_id)
    )
    return before


def set_status(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    *,
    status: str,
    message: str | None,
    verified_at: datetime | None = None,
    external_id_id: uuid.UUID | None = None,
    is_management: bool | None = None,
    denied: bool = False,
) -> None:
    """Record the outcome of a check. `verified_at`, `external_id_id` and `is_management` change
    only when given; `denied` counts consecutive AccessDenied outcomes (reset otherwise)."""
    if status not in STATUSES:
        raise ValueError(f"unknown account status {status}")
    conn.execute(
        "UPDATE cao.accounts SET status = %s, status_message = %s,"
        " verified_at = coalesce(%s, verified_at),"
        " external_id_id = coalesce(%s, external_id_id),"
        " is_management = coalesce(%s, is_management),"
        " consecutive_denials = CASE WHEN %s THEN consecutive_denials + 1 ELSE 0 END"
        " WHERE agency_id = %s AND id = %s",
        (
            status,
            _bounded(message),
            verified_at,
            external_id_id,
            is_management,
            denied,
            agency_id,
            account_id,
        ),
    )


def external_id_for(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> str | None:
    """The ExternalId to assume this account's role with: the one it was last verified with."""
    row = conn.execute(
        "SELECT e.value FROM cao.accounts a JOIN cao.external_ids e"
        " ON e.agency_id = a.agency_id AND e.id = a.external_id_id"
        " WHERE a.agency_id = %s AND a.id = %s",
        (agency_id, account_id),
    ).fetchone()
    return str(row[0]) if row else None


def replace_discovered(
    conn: Connection,
    agency_id: uuid.UUID,
    management_id: uuid.UUID,
    members: Iterable[tuple[str, str | None]],
    now: datetime,
) -> int:
    """Make (id, name) pairs the discovered members of one management account; returns count.

    Only the 12-digit id and the account name are kept: never an email.
    """
    conn.execute(
        "DELETE FROM cao.discovered_accounts WHERE agency_id = %s AND management_id = %s",
        (agency_id, management_id),
    )
    rows = [
        (agency_id, management_id, aws_id, None if name is None else name[:200], now)
        for aws_id, name in list(members)[:MAX_DISCOVERED]
    ]
    if rows:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO cao.discovered_accounts"
                " (agency_id, management_id, aws_account_id, name, discovered_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                rows,
            )
    return len(rows)


def list_discovered(
    conn: Connection, agency_id: uuid.UUID, limit: int = MAX_DISCOVERED
) -> list[DiscoveredRow]:
    """Discovered members with their management account and, if linked, the linked account."""
    rows = conn.execute(
        "SELECT d.aws_account_id, d.name, d.management_id, m.aws_account_id, m.role_arn,"
        " d.discovered_at,"
        " (SELECT l.id FROM cao.accounts l WHERE l.agency_id = d.agency_id"
        "   AND l.aws_account_id = d.aws_account_id ORDER BY l.linked_at LIMIT 1)"
        " FROM cao.discovered_accounts d JOIN cao.accounts m"
        " ON m.agency_id = d.agency_id AND m.id = d.management_id"
        " WHERE d.agency_id = %s ORDER BY d.aws_account_id, d.management_id LIMIT %s",
        (agency_id, max(1, min(limit, MAX_DISCOVERED))),
    ).fetchall()
    return [DiscoveredRow(*r) for r in rows]


def _bounded(message: str | None) -> str | None:
    return None if message is None else message[:MAX_STATUS_MESSAGE]


def due_for_trust_probe(conn: Connection, limit: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """(agency_id, account_id) of accounts due a trust probe, across agencies, stalest first.

    Cross-tenant: goes through the SECURITY DEFINER function `cao.accounts_due_trust_probe`,
    inside `system_tx`; "due" (not verified in 6 days, entitled) is decided there, on the
    database's clock. It returns ids only; read each account inside its agency's tenant_tx.
    """
    rows = conn.execute(
        "SELECT agency_id, account_id FROM cao.accounts_due_trust_probe(%s)", (limit,)
    ).fetchall()
    return [(r[0], r[1]) for r in rows]


@dataclass(frozen=True)
class AccountSummaryRow:
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
) -> list[AccountSummaryRow]:
    """Accounts in link order, from just after `after` (keyset on (linked_at, id))."""
    params: dict[str, object] = {"agency": agency_id, "limit": limit}
    keyset = sql.SQL("")
    if after is not None:
        keyset = sql.SQL(" AND linked_at >= %(t)s AND (linked_at > %(t)s OR id > %(id)s)")
        params.update(t=after[0], id=after[1])
    cur = conn.cursor(row_factory=class_row(AccountSummaryRow))
    return cur.execute(
        sql.SQL(
            "SELECT {} FROM cao.accounts WHERE agency_id = %(agency)s{}"
            " ORDER BY linked_at, id LIMIT %(limit)s"
        ).format(_ACCOUNT_COLUMNS, keyset),
        params,
    ).fetchall()


def get_account(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID
) -> AccountSummaryRow | None:
    cur = conn.cursor(row_factory=class_row(AccountSummaryRow))
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
    """Per account, the CloudTrail position of its most lagging region (the live pass: the
    late-event sweep trails hours behind by design)."""
    rows = conn.execute(
        "SELECT account_id, min(position) FROM cao.sync_cursors"
        " WHERE pass = 'live' AND agency_id = %s AND account_id = ANY(%s) GROUP BY account_id",
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
