"""Budgets and the thresholds they raised, spend anomalies, the agency's anomaly floors, and the
read-only CloudTrail queries behind an anomaly's "what changed" (functions/alerts).

Callers run these inside `tenant_tx`. The CloudTrail reads here only SELECT from
`cao.access_events` and `cao.sync_cursors` (the CloudTrail sync owns both); nothing here writes
them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from psycopg.rows import class_row, kwargs_row
from psycopg.types.json import Jsonb

from shared.db import Connection
from shared.kit.schemas import Row

MAX_BUDGETS = 500  # per agency

# ---- budgets ------------------------------------------------------------------------------------


class BudgetRow(Row):
    id: uuid.UUID
    name: str
    client_id: uuid.UUID | None
    account_id: uuid.UUID | None
    amount: Decimal
    currency: str
    thresholds: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime


_BUDGET = (
    "SELECT id, name, client_id, account_id, amount, currency, thresholds, created_at,"
    " updated_at FROM cao.budgets"
)


def budgets(conn: Connection, agency_id: uuid.UUID) -> list[BudgetRow]:
    cur = conn.cursor(row_factory=kwargs_row(BudgetRow.model_construct))
    return cur.execute(_BUDGET + " WHERE agency_id = %s ORDER BY name, id", (agency_id,)).fetchall()


def budget(
    conn: Connection, agency_id: uuid.UUID, budget_id: uuid.UUID, *, lock: bool = False
) -> BudgetRow | None:
    cur = conn.cursor(row_factory=kwargs_row(BudgetRow.model_construct))
    return cur.execute(
        _BUDGET + " WHERE agency_id = %s AND id = %s" + (" FOR UPDATE" if lock else ""),
        (agency_id, budget_id),
    ).fetchone()


def count_budgets(conn: Connection, agency_id: uuid.UUID) -> int:
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"cao.budgets:{agency_id}",)
    )
    row = conn.execute("SELECT count(*) FROM cao.budgets WHERE agency_id = %s", (agency_id,))
    found = row.fetchone()
    return int(found[0]) if found else 0


def insert_budget(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    name: str,
    client_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
    amount: Decimal,
    currency: str,
    thresholds: list[dict[str, Any]],
) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO cao.budgets (agency_id, name, client_id, account_id, amount, currency,"
        " thresholds) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (agency_id, name, client_id, account_id, amount, currency, Jsonb(thresholds)),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def update_budget(
    conn: Connection,
    agency_id: uuid.UUID,
    budget_id: uuid.UUID,
    *,
    name: str,
    amount: Decimal,
    thresholds: list[dict[str, Any]],
) -> None:
    conn.execute(
        "UPDATE cao.budgets SET name = %s, amount = %s, thresholds = %s, updated_at = now()"
        " WHERE agency_id = %s AND id = %s",
        (name, amount, Jsonb(thresholds), agency_id, budget_id),
    )


def delete_budget(conn: Connection, agency_id: uuid.UUID, budget_id: uuid.UUID) -> bool:
    cur = conn.execute(
        "DELETE FROM cao.budgets WHERE agency_id = %s AND id = %s", (agency_id, budget_id)
    )
    return cur.rowcount > 0


class BudgetEventRow(Row):
    budget_id: uuid.UUID
    month: date
    kind: str
    percent: int
    raised_at: datetime
    actual: Decimal
    forecast: Decimal
    budget: Decimal


def raise_threshold(
    conn: Connection,
    agency_id: uuid.UUID,
    budget_id: uuid.UUID,
    *,
    month: date,
    kind: str,
    percent: int,
    raised_at: datetime,
    actual: Decimal,
    forecast: Decimal,
    amount: Decimal,
) -> bool:
    """Record a threshold crossed; False when it was already raised this month."""
    cur = conn.execute(
        "INSERT INTO cao.budget_events (agency_id, budget_id, month, kind, percent, raised_at,"
        " actual, forecast, budget) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (budget_id, month, kind, percent) DO NOTHING",
        (agency_id, budget_id, month, kind, percent, raised_at, actual, forecast, amount),
    )
    return cur.rowcount > 0


def budget_events(
    conn: Connection, agency_id: uuid.UUID, month: date, budget_ids: Sequence[uuid.UUID]
) -> list[BudgetEventRow]:
    cur = conn.cursor(row_factory=kwargs_row(BudgetEventRow.model_construct))
    return cur.execute(
        "SELECT budget_id, month, kind, percent, raised_at, actual, forecast, budget"
        " FROM cao.budget_events WHERE agency_id = %s AND month = %s AND budget_id = ANY(%s)"
        " ORDER BY raised_at, kind, percent",
        (agency_id, month, list(budget_ids)),
    ).fetchall()


def previous_totals(
    conn: Connection, agency_id: uuid.UUID, month: date
) -> dict[tuple[str, str, str], Decimal]:
    """A month's UnblendedCost per (AWS account, service, currency), from the stored rows."""
    rows = conn.execute(
        "SELECT usage_account_id, service, currency, sum(amount) FROM cao.cost_rows"
        " WHERE agency_id = %s AND month = %s AND metric = 'UnblendedCost' GROUP BY 1, 2, 3",
        (agency_id, month),
    ).fetchall()
    return {(r[0], r[1], r[2]): Decimal(r[3]) for r in rows}


# ---- anomaly settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Floors:
    relative_floor_pct: int = 100
    absolute_floor: Decimal = Decimal("10.00")


def floors(conn: Connection, agency_id: uuid.UUID) -> Floors:
    row = conn.execute(
        "SELECT relative_floor_pct, absolute_floor FROM cao.anomaly_settings WHERE agency_id = %s",
        (agency_id,),
    ).fetchone()
    return Floors() if row is None else Floors(row[0], row[1])


def set_floors(conn: Connection, agency_id: uuid.UUID, value: Floors) -> None:
    conn.execute(
        "INSERT INTO cao.anomaly_settings (agency_id, relative_floor_pct, absolute_floor)"
        " VALUES (%s, %s, %s) ON CONFLICT (agency_id) DO UPDATE SET"
        " relative_floor_pct = excluded.relative_floor_pct,"
        " absolute_floor = excluded.absolute_floor, updated_at = now()",
        (agency_id, value.relative_floor_pct, value.absolute_floor),
    )


# ---- anomalies ----------------------------------------------------------------------------------


class AnomalyRow(Row):
    id: uuid.UUID
    account_id: uuid.UUID
    usage_account_id: str
    service: str
    currency: str
    span_start: datetime
    span_end: datetime
    growth: Decimal
    rate_per_day: Decimal
    baseline_per_day: Decimal
    mad_per_day: Decimal
    baseline_rates: int
    first_detected_at: datetime
    last_detected_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    note: str | None


_ANOMALY = (
    "SELECT id, account_id, usage_account_id, service, currency, span_start, span_end, growth,"
    " rate_per_day, baseline_per_day, mad_per_day, baseline_rates, first_detected_at,"
    " last_detected_at, acknowledged_at, acknowledged_by, note FROM cao.anomalies"
)


def open_anomaly(
    conn: Connection,
    agency_id: uuid.UUID,
    usage_account_id: str,
    service: str,
    currency: str,
    *,
    seen_since: datetime,
) -> uuid.UUID | None:
    """The series' anomaly last detected at or after `seen_since`, if any."""
    row = conn.execute(
        "SELECT id FROM cao.anomalies WHERE agency_id = %s AND usage_account_id = %s"
        " AND service = %s AND currency = %s AND last_detected_at >= %s"
        " ORDER BY last_detected_at DESC LIMIT 1",
        (agency_id, usage_account_id, service, currency, seen_since),
    ).fetchone()
    return None if row is None else uuid.UUID(str(row[0]))


def extend_anomaly(
    conn: Connection, agency_id: uuid.UUID, anomaly_id: uuid.UUID, detected_at: datetime
) -> None:
    conn.execute(
        "UPDATE cao.anomalies SET last_detected_at = greatest(last_detected_at, %s)"
        " WHERE agency_id = %s AND id = %s",
        (detected_at, agency_id, anomaly_id),
    )


def insert_anomaly(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    account_id: uuid.UUID,
    usage_account_id: str,
    service: str,
    currency: str,
    span_start: datetime,
    span_end: datetime,
    growth: Decimal,
    rate_per_day: Decimal,
    baseline_per_day: Decimal,
    mad_per_day: Decimal,
    baseline_rates: int,
    detected_at: datetime,
) -> bool:
    cur = conn.execute(
        "INSERT INTO cao.anomalies (agency_id, account_id, usage_account_id, service, currency,"
        " span_start, span_end, growth, rate_per_day, baseline_per_day, mad_per_day,"
        " baseline_rates, first_detected_at, last_detected_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (
            agency_id,
            account_id,
            usage_account_id,
            service,
            currency,
            span_start,
            span_end,
            growth,
            rate_per_day,
            baseline_per_day,
            mad_per_day,
            baseline_rates,
            detected_at,
            detected_at,
        ),
    )
    return cur.rowcount > 0


def anomalies_page(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
    usage_account_ids: Sequence[str] | None = None,
    account_ids: Sequence[uuid.UUID] | None = None,
    acknowledged: bool | None = None,
) -> list[AnomalyRow]:
    """Newest first (first detection, then id); `limit` + 1 rows for `split_page`."""
    where = ["agency_id = %(agency)s"]
    params: dict[str, object] = {"agency": agency_id, "limit": limit + 1}
    if after is not None:
        where.append("(first_detected_at, id) < (%(at)s, %(id)s)")
        params.update(at=after[0], id=after[1])
    if usage_account_ids is not None or account_ids is not None:
        where.append("(account_id = ANY(%(ids)s) OR usage_account_id = ANY(%(usage)s))")
        params.update(ids=list(account_ids or ()), usage=list(usage_account_ids or ()))
    if acknowledged is not None:
        where.append("(acknowledged_at IS NOT NULL) = %(ack)s")
        params["ack"] = acknowledged
    cur = conn.cursor(row_factory=kwargs_row(AnomalyRow.model_construct))
    return cur.execute(
        _ANOMALY + " WHERE " + " AND ".join(where) + " ORDER BY first_detected_at DESC, id DESC"
        " LIMIT %(limit)s",
        params,
    ).fetchall()


def anomaly(
    conn: Connection, agency_id: uuid.UUID, anomaly_id: uuid.UUID, *, lock: bool = False
) -> AnomalyRow | None:
    cur = conn.cursor(row_factory=kwargs_row(AnomalyRow.model_construct))
    return cur.execute(
        _ANOMALY + " WHERE agency_id = %s AND id = %s" + (" FOR UPDATE" if lock else ""),
        (agency_id, anomaly_id),
    ).fetchone()


def acknowledge(
    conn: Connection,
    agency_id: uuid.UUID,
    anomaly_id: uuid.UUID,
    *,
    by: str,
    note: str | None,
    at: datetime,
) -> None:
    conn.execute(
        "UPDATE cao.anomalies SET acknowledged_at = %s, acknowledged_by = %s, note = %s"
        " WHERE agency_id = %s AND id = %s",
        (at, by, note, agency_id, anomaly_id),
    )


# ---- what changed: CloudTrail, read only --------------------------------------------------------


@dataclass(frozen=True)
class EventGroup:
    principal_arn: str | None
    principal_name: str | None
    event_name: str
    count: int
    first_seen: datetime
    last_seen: datetime
    source_ips: list[str]
    regions: list[str]


MAX_EVENT_GROUPS = 200


def write_event_groups(
    conn: Connection,
    agency_id: uuid.UUID,
    aws_account_id: str,
    *,
    since: datetime,
    until: datetime,
    name_pattern: str,
) -> list[EventGroup]:
    """The account's events in [since, until] whose name matches `name_pattern` (a POSIX
    regular expression, a constant of the caller), grouped by principal and event name, the
    most frequent first; our own sessions are left out."""
    cur = conn.cursor(row_factory=class_row(EventGroup))
    return cur.execute(
        "SELECT principal_arn, principal_name, event_name, count(*)::int AS count,"
        " min(event_time) AS first_seen, max(event_time) AS last_seen,"
        " (array_agg(DISTINCT source_ip) FILTER (WHERE source_ip IS NOT NULL))[1:5]"
        "   AS source_ips,"
        " array_agg(DISTINCT region) AS regions"
        " FROM cao.access_events WHERE agency_id = %s AND aws_account_id = %s"
        " AND event_time BETWEEN %s AND %s AND event_name ~ %s AND NOT is_vendor"
        " GROUP BY principal_arn, principal_name, event_name"
        " ORDER BY count(*) DESC, event_name, principal_arn LIMIT %s",
        (agency_id, aws_account_id, since, until, name_pattern, MAX_EVENT_GROUPS),
    ).fetchall()


@dataclass(frozen=True)
class RegionRead:
    region: str
    read_until: datetime


def regions_read(conn: Connection, agency_id: uuid.UUID, aws_account_id: str) -> list[RegionRead]:
    """The regions the CloudTrail sync reads for the AWS account (any of its links), with how
    far its live pass has read each."""
    cur = conn.cursor(row_factory=class_row(RegionRead))
    return cur.execute(
        "SELECT c.region, max(c.position) AS read_until FROM cao.sync_cursors c"
        " JOIN cao.accounts a ON a.agency_id = c.agency_id AND a.id = c.account_id"
        " WHERE c.agency_id = %s AND a.aws_account_id = %s AND c.pass = 'live'"
        " GROUP BY c.region ORDER BY c.region",
        (agency_id, aws_account_id),
    ).fetchall()
