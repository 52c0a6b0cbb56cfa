"""Aggregated cost: account x service x month x metric, which months were pulled, and reports.

Writes (the cost sync). `cao.cost_rows` holds one amount per (linked account the row was synced
through, account the cost is attributed to, month, service, metric), as `numeric` (Decimal here,
never float). `cao.cost_months` records each month pulled for a linked account and whether AWS
still called it Estimated: the sync plans from it which months to pull again. A re-pulled month
replaces all its rows (`replace_months`): a service that vanished from AWS's answer vanishes
from ours, and pulling the same data twice leaves identical rows. Callers run these inside
`tenant_tx`, in the same transaction as the job's `fence`. Rows are written with `executemany`
(pipelined): COPY FROM is not allowed on tables with row-level security.

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
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, get_args

from psycopg import sql
from psycopg.rows import class_row

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


def month_states(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> dict[date, bool]:
    """Months pulled for the account -> whether AWS still called them Estimated."""
    rows = conn.execute(
        "SELECT month, estimated FROM cao.cost_months WHERE agency_id = %s AND account_id = %s",
        (agency_id, account_id),
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def replace_months(
    conn: Connection,
    account_id: uuid.UUID,
    agency_id: uuid.UUID,
    months: Mapping[date, bool],
    rows: Sequence[CostRow],
    *,
    synced_at: datetime | None = None,
) -> int:
    """Replace every row of `months` (month -> Estimated) with `rows`; returns rows written.

    Rows outside `months` are refused: a month is replaced whole or not at all.
    """
    stray = {r.month for r in rows} - set(months)
    if stray:
        raise ValueError("rows for months that are not being replaced")
    month_list = sorted(months)
    conn.execute(
        "DELETE FROM cao.cost_rows WHERE agency_id = %s AND account_id = %s AND month = ANY(%s)",
        (agency_id, account_id, month_list),
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
        cur.executemany(
            "INSERT INTO cao.cost_months (agency_id, account_id, month, estimated, synced_at)"
            " VALUES (%s, %s, %s, %s, coalesce(%s, now()))"
            " ON CONFLICT (account_id, month) DO UPDATE"
            " SET estimated = excluded.estimated, synced_at = excluded.synced_at",
            [(agency_id, account_id, m, months[m], synced_at) for m in month_list],
        )
    return len(rows)


def delete_months(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, months: Iterable[date]
) -> int:
    """Forget the account's own rows and records of `months` (now synced through its payer)."""
    month_list = sorted(set(months))
    cur = conn.execute(
        "DELETE FROM cao.cost_rows WHERE agency_id = %s AND account_id = %s AND month = ANY(%s)",
        (agency_id, account_id, month_list),
    )
    conn.execute(
        "DELETE FROM cao.cost_months WHERE agency_id = %s AND account_id = %s AND month = ANY(%s)",
        (agency_id, account_id, month_list),
    )
    return cur.rowcount


def payer_coverage(
    conn: Connection,
    agency_id: uuid.UUID,
    usage_account_id: str,
    months: Iterable[date],
    since: datetime,
) -> set[date]:
    """Months among `months` already pulled by a management account of this agency whose
    results include `usage_account_id` (so it is one of its members) and which is still syncing
    (pulled something since `since`): the member needs no request of its own for them."""
    rows = conn.execute(
        "WITH payer AS ("
        "  SELECT p.id FROM cao.accounts p"
        "   WHERE p.agency_id = %(agency)s AND p.is_management"
        "     AND EXISTS (SELECT 1 FROM cao.cost_rows r WHERE r.agency_id = p.agency_id"
        "                  AND r.account_id = p.id AND r.usage_account_id = %(member)s)"
        "     AND EXISTS (SELECT 1 FROM cao.cost_months m WHERE m.agency_id = p.agency_id"
        "                  AND m.account_id = p.id AND m.synced_at >= %(since)s))"
        " SELECT DISTINCT m.month FROM cao.cost_months m JOIN payer ON payer.id = m.account_id"
        " WHERE m.agency_id = %(agency)s AND m.month = ANY(%(months)s)",
        {
            "agency": agency_id,
            "member": usage_account_id,
            "since": since,
            "months": sorted(set(months)),
        },
    ).fetchall()
    return {row[0] for row in rows}


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
