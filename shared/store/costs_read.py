"""Aggregated reads of synced costs (`cao.cost_rows`), summed in SQL as `numeric`.

One query per report: the cells (group key x month x currency) with their sum and whether any
row in them is still Estimated. The group key is chosen from a fixed set of SQL expressions,
never from request text. Reports that do not involve services read the per-account-month
totals (`cao.cost_account_months`) instead of the per-service rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from psycopg import sql
from psycopg.rows import class_row

from shared.db import Connection
from shared.store.costs import GroupBy, Metric

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
