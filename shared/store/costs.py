"""Aggregated cost: account x service x month x metric, which months were pulled, and reports.

Writes (the cost sync). `cao.cost_rows` holds one amount per (linked account the row was synced
through, account the cost is attributed to, month, service, metric), as `numeric` (Decimal here,
never float). `cao.cost_months` records each month pulled for a linked account, when, and whether
AWS still called it Estimated: the sync plans from it which months to pull again. A re-pulled
month replaces all its rows (`replace_months`): a service that vanished from AWS's answer
vanishes from ours, and pulling the same data twice leaves identical rows. Callers run these
inside `tenant_tx`, in the same transaction as the job's `fence`. Rows are written with
`executemany` (pipelined): COPY FROM is not allowed on tables with row-level security.

One source per AWS account per month: a member of an organization can be synced through its
management account and, when that one is failing, on its own. `store_months` makes the writer
the only source of the months it writes for every AWS account it covers (the other links' rows
of those accounts and months go), under a per-agency transaction lock, so whatever the order of
failures and concurrent syncs, reports never count an account's month twice.

Reads (GET /api/costs), summed in SQL as `numeric`: one query per report, the cells (group key x
month x currency) with their sum and whether any row in them is still Estimated. The group key
is chosen from a fixed set of SQL expressions, never from request text. Reports that do not
involve services read the per-account-month totals (`cao.cost_account_months`) instead of the
per-service rows.

The vocabularies (`Metric`, `GroupBy`) are declared here once and used by the sync, the route
and the report.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, get_args

from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from shared.db import Connection

if TYPE_CHECKING:
    from shared.db import Connection


# The cost vocabularies, declared once for the sync, the reports and their stores: the metrics
# the sync pulls and stores (every one of them, in one request), and the dimensions a cost
# report groups by.
Metric = Literal["UnblendedCost", "AmortizedCost", "NetUnblendedCost"]
METRICS: tuple[Metric, ...] = get_args(Metric)
GroupBy = Literal["account", "service", "month"]


@dataclass(frozen=True)
class CostRow:
    """One amount: `usage_account_id` is the AWS account the cost belongs to."""

    usage_account_id: str
    month: date
    service: str
    metric: str
    amount: Decimal
    currency: str
    estimated: bool


@dataclass(frozen=True)
class MonthRecord:
    """A month pulled before: whether AWS still called it Estimated, and when."""

    estimated: bool
    synced_at: datetime


def month_records(
    conn: Connection, agency_id: uuid.UUID, account_ids: Sequence[uuid.UUID]
) -> dict[date, MonthRecord]:
    """Months pulled through any of `account_ids` -> their record; for a month pulled through
    several, the one listed first wins (callers list the account holding it first)."""
    rows = conn.execute(
        "SELECT account_id, month, estimated, synced_at FROM cao.cost_months"
        " WHERE agency_id = %s AND account_id = ANY(%s)",
        (agency_id, list(account_ids)),
    ).fetchall()
    rank = {account: n for n, account in enumerate(account_ids)}
    best: dict[date, tuple[int, MonthRecord]] = {}
    for account, month, estimated, synced_at in rows:
        order = rank[account]
        if month not in best or order < best[month][0]:
            best[month] = (order, MonthRecord(estimated, synced_at))
    return {month: record for month, (_, record) in best.items()}


def month_states(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> dict[date, bool]:
    """Months pulled for the account -> whether AWS still called them Estimated."""
    rows = conn.execute(
        "SELECT month, estimated FROM cao.cost_months WHERE agency_id = %s AND account_id = %s",
        (agency_id, account_id),
    ).fetchall()
    return {row[0]: row[1] for row in rows}


@dataclass(frozen=True)
class Scope:
    """Part of a split pull: the rows of these usage accounts, or (`exclude`) of all others."""

    accounts: tuple[str, ...]
    exclude: bool = False

    def holds(self, usage_account_id: str) -> bool:
        return (usage_account_id in self.accounts) != self.exclude


def replace_months(
    conn: Connection,
    account_id: uuid.UUID,
    agency_id: uuid.UUID,
    months: Mapping[date, bool],
    rows: Sequence[CostRow],
    *,
    synced_at: datetime | None = None,
    scope: Scope | None = None,
    record: bool = True,
) -> int:
    """Replace every row of `months` (month -> Estimated) with `rows`; returns rows written.

    Rows outside `months` are refused: a month is replaced whole or not at all. With `scope`
    (a split pull) only the rows of the scope's usage accounts are replaced; `record` False
    leaves the month records alone (the last part of a split pull records them, Estimated if
    any part's rows are).
    """
    stray = {r.month for r in rows} - set(months)
    if stray:
        raise ValueError("rows for months that are not being replaced")
    if scope is not None and not all(scope.holds(r.usage_account_id) for r in rows):
        raise ValueError("rows of usage accounts outside the scope")
    month_list = sorted(months)
    if scope is None:
        conn.execute(
            "DELETE FROM cao.cost_rows"
            " WHERE agency_id = %s AND account_id = %s AND month = ANY(%s)",
            (agency_id, account_id, month_list),
        )
    else:
        conn.execute(
            "DELETE FROM cao.cost_rows WHERE agency_id = %s AND account_id = %s"
            " AND month = ANY(%s) AND (usage_account_id = ANY(%s)) <> %s",
            (agency_id, account_id, month_list, list(scope.accounts), scope.exclude),
        )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO cao.cost_rows (agency_id, account_id, usage_account_id, month, service,"
            " metric, amount, currency, estimated, synced_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()))",
            [
                (
                    agency_id,
                    account_id,
                    r.usage_account_id,
                    r.month,
                    r.service,
                    r.metric,
                    r.amount,
                    r.currency,
                    r.estimated,
                    synced_at,
                )
                for r in rows
            ],
        )
        if not record:
            return len(rows)
        cur.executemany(
            "INSERT INTO cao.cost_months (agency_id, account_id, month, estimated, synced_at)"
            " SELECT %(agency)s, %(account)s, %(month)s, %(flag)s OR (%(split)s AND EXISTS ("
            "   SELECT 1 FROM cao.cost_rows WHERE agency_id = %(agency)s"
            "    AND account_id = %(account)s AND month = %(month)s AND estimated)),"
            "   coalesce(%(at)s, now())"
            " ON CONFLICT (account_id, month) DO UPDATE"
            " SET estimated = excluded.estimated, synced_at = excluded.synced_at",
            [
                {
                    "agency": agency_id,
                    "account": account_id,
                    "month": m,
                    "flag": months[m],
                    "split": scope is not None,
                    "at": synced_at,
                }
                for m in month_list
            ],
        )
    return len(rows)


def store_months(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    months: Mapping[date, bool],
    rows: Sequence[CostRow],
    *,
    covers: Iterable[str],
    synced_at: datetime,
    scope: Scope | None = None,
    record: bool = True,
) -> int:
    """Replace `months` of the account (`replace_months`) and make it the only source of those
    months for every AWS account in `covers` (plus those its rows name): their rows synced
    through other linked accounts of the agency go, and so do the month records of those
    accounts linked on their own. Returns rows written.

    A per-agency transaction lock serialises these writes, so two syncs writing the same
    account's month at once (a payer and its member) cannot both keep their rows. `scope` and
    `record` as in `replace_months` (a split pull's part).
    """
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"cao.cost_rows:{agency_id}",)
    )
    written = replace_months(
        conn, account_id, agency_id, months, rows, synced_at=synced_at, scope=scope, record=record
    )
    usage = sorted(set(covers) | {r.usage_account_id for r in rows})
    month_list = sorted(months)
    if not usage or not month_list:
        return written
    conn.execute(
        "DELETE FROM cao.cost_rows WHERE agency_id = %s AND account_id <> %s"
        " AND usage_account_id = ANY(%s) AND month = ANY(%s)",
        (agency_id, account_id, usage, month_list),
    )
    conn.execute(
        "DELETE FROM cao.cost_months m USING cao.accounts a"
        " WHERE m.agency_id = %s AND a.agency_id = m.agency_id AND a.id = m.account_id"
        "   AND m.account_id <> %s AND a.aws_account_id = ANY(%s) AND m.month = ANY(%s)",
        (agency_id, account_id, usage, month_list),
    )
    return written


# ---- an unfinished pull -------------------------------------------------------------------------


@dataclass(frozen=True)
class PullState:
    """Where a linked account's Cost Explorer pull stands (`cao.cost_pulls`).

    `request` is the exact GetCostAndUsage request of the part in progress, without its token,
    and `token` the last page's NextPageToken: a retry sends them again. `pending` maps the
    request's months not complete yet to the Estimated flag seen so far (their rows so far are
    in `cao.cost_pull_rows`), `month_pages` the pages bought since a month last completed.
    A split pull (`groups`, set once a month needed more pages than a request may buy) asks per
    group of linked accounts, then for all others; `part` is the index of the one in progress
    (len(groups): the others), `first` the first month of every part. `accounts_per_request`
    stays once set: the account's later pulls are split from the start.
    """

    request: dict[str, Any] | None = None
    token: str | None = None
    pending: dict[date, bool] = field(default_factory=dict)
    month_pages: int = 0
    first: date | None = None
    groups: list[list[str]] | None = None
    part: int = 0
    accounts_per_request: int | None = None


def pull_state(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> PullState:
    row = conn.execute(
        "SELECT request, next_token, pending, month_pages, first_month, groups, part,"
        " accounts_per_request FROM cao.cost_pulls WHERE agency_id = %s AND account_id = %s",
        (agency_id, account_id),
    ).fetchone()
    if row is None:
        return PullState()
    return PullState(
        request=row[0],
        token=row[1],
        pending={date.fromisoformat(m): bool(f) for m, f in (row[2] or {}).items()},
        month_pages=row[3],
        first=row[4],
        groups=row[5],
        part=row[6],
        accounts_per_request=row[7],
    )


def save_pull(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    state: PullState,
    staged: Sequence[CostRow] = (),
    *,
    done: Iterable[date] = (),
    restart: bool = False,
) -> None:
    """Record where the pull stands, add `staged` (rows of pending months), and drop the
    staged rows of `done` months (just stored), of months no longer pending, and (`restart`: a
    request asked again from its first page) all of them."""
    conn.execute(
        "INSERT INTO cao.cost_pulls (agency_id, account_id, request, next_token, pending,"
        " month_pages, first_month, groups, part, accounts_per_request, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())"
        " ON CONFLICT (account_id) DO UPDATE SET request = excluded.request,"
        " next_token = excluded.next_token, pending = excluded.pending,"
        " month_pages = excluded.month_pages, first_month = excluded.first_month,"
        " groups = excluded.groups, part = excluded.part,"
        " accounts_per_request = excluded.accounts_per_request, updated_at = now()",
        (
            agency_id,
            account_id,
            Jsonb(state.request) if state.request is not None else None,
            state.token,
            Jsonb({m.isoformat(): f for m, f in state.pending.items()}),
            state.month_pages,
            state.first,
            Jsonb(state.groups) if state.groups is not None else None,
            state.part,
            state.accounts_per_request,
        ),
    )
    conn.execute(
        "DELETE FROM cao.cost_pull_rows WHERE agency_id = %s AND account_id = %s"
        " AND (%s OR month = ANY(%s) OR NOT month = ANY(%s))",
        (agency_id, account_id, restart, sorted(set(done)), sorted(state.pending)),
    )
    if not staged:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO cao.cost_pull_rows (agency_id, account_id, usage_account_id, month,"
            " service, metric, amount, currency, estimated)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    agency_id,
                    account_id,
                    r.usage_account_id,
                    r.month,
                    r.service,
                    r.metric,
                    r.amount,
                    r.currency,
                    r.estimated,
                )
                for r in staged
            ],
        )


def staged_rows(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> list[CostRow]:
    """The rows an unfinished pull bought of months not complete yet."""
    cur = conn.cursor(row_factory=class_row(CostRow))
    return cur.execute(
        "SELECT usage_account_id, month, service, metric, amount, currency, estimated"
        " FROM cao.cost_pull_rows WHERE agency_id = %s AND account_id = %s",
        (agency_id, account_id),
    ).fetchall()


def known_accounts(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, since_month: date
) -> list[str]:
    """The AWS accounts a management account's pull is expected to name: its organization's
    members (ListAccounts, at each verification) and the accounts of its rows since
    `since_month`."""
    rows = conn.execute(
        "SELECT aws_account_id FROM cao.discovered_accounts"
        " WHERE agency_id = %(agency)s AND management_id = %(account)s"
        " UNION SELECT DISTINCT usage_account_id FROM cao.cost_rows"
        " WHERE agency_id = %(agency)s AND account_id = %(account)s AND month >= %(since)s",
        {"agency": agency_id, "account": account_id, "since": since_month},
    ).fetchall()
    return sorted(r[0] for r in rows)


@dataclass(frozen=True)
class Payer:
    """A linked management account whose organization includes a given AWS account."""

    account_id: uuid.UUID
    last_success_at: datetime | None


def payer_of(
    conn: Connection, agency_id: uuid.UUID, usage_account_id: str, since_month: date
) -> Payer | None:
    """The agency's linked management account that covers `usage_account_id`, the most
    recently synced one first: listed among its members (ListAccounts, refreshed at each
    verification), or in its cost rows of `since_month` or later (a member that left the
    organization stops being covered once its rows are that old)."""
    row = conn.execute(
        "SELECT p.id, j.last_success_at FROM cao.accounts p"
        " LEFT JOIN cao.sync_jobs j"
        "   ON j.agency_id = p.agency_id AND j.account_id = p.id AND j.kind = 'costs'"
        " WHERE p.agency_id = %(agency)s AND p.is_management"
        "   AND p.aws_account_id <> %(member)s"
        "   AND (EXISTS (SELECT 1 FROM cao.discovered_accounts d WHERE d.agency_id = p.agency_id"
        "                 AND d.management_id = p.id AND d.aws_account_id = %(member)s)"
        "     OR EXISTS (SELECT 1 FROM cao.cost_rows r WHERE r.agency_id = p.agency_id"
        "                 AND r.account_id = p.id AND r.usage_account_id = %(member)s"
        "                 AND r.month >= %(since)s))"
        " ORDER BY j.last_success_at DESC NULLS LAST LIMIT 1",
        {"agency": agency_id, "member": usage_account_id, "since": since_month},
    ).fetchone()
    return None if row is None else Payer(row[0], row[1])


_KEYS: dict[GroupBy, sql.Composable] = {
    "account": sql.SQL("usage_account_id"),
    "service": sql.SQL("service"),
    "month": sql.SQL("to_char(month, 'YYYY-MM')"),
}


@dataclass(frozen=True)
class CostCell:
    key: str
    month: date
    currency: str
    amount: Decimal
    estimated: bool


def aggregate(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    metric: Metric,
    first: date,
    last: date,
    group_by: GroupBy,
    account_ids: Sequence[uuid.UUID] | None = None,
    usage_account_ids: Sequence[str] | None = None,
    services: Sequence[str] | None = None,
) -> list[CostCell]:
    """Sums per (group key, month, currency) for months first..last (inclusive).

    Account filter: rows synced through one of `account_ids` (a management account brings its
    members) or attributed to one of `usage_account_ids`.
    """
    where = [
        sql.SQL("agency_id = %(agency)s"),
        sql.SQL("metric = %(metric)s"),
        sql.SQL("month BETWEEN %(first)s AND %(last)s"),
    ]
    params: dict[str, object] = {
        "agency": agency_id,
        "metric": metric,
        "first": first,
        "last": last,
    }
    if account_ids is not None or usage_account_ids is not None:
        where.append(sql.SQL("(account_id = ANY(%(ids)s) OR usage_account_id = ANY(%(usage)s))"))
        params.update(ids=list(account_ids or ()), usage=list(usage_account_ids or ()))
    if services is not None:
        where.append(sql.SQL("service = ANY(%(services)s)"))
        params["services"] = list(services)
    # Without a service dimension the per-account-month totals give the same sums from ~30x
    # fewer rows (schema.sql: cost_account_months, kept by triggers on cost_rows).
    table = "cost_rows" if services is not None or group_by == "service" else "cost_account_months"
    query = sql.SQL(
        "SELECT {key} AS key, month, currency, sum(amount) AS amount, bool_or(estimated) AS"
        " estimated FROM cao.{table} WHERE {where} GROUP BY 1, 2, 3"
    ).format(key=_KEYS[group_by], table=sql.Identifier(table), where=sql.SQL(" AND ").join(where))
    cur = conn.cursor(row_factory=class_row(CostCell))
    return cur.execute(query, params).fetchall()
