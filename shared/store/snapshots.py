"""Month-to-date cost snapshots: per AWS account x service, the UnblendedCost of a month as a
cost sync pulled it, with the time of the pull (`cao.cost_snapshots`).

The cost sync writes them in the same transaction as the months they come from (`record`):
the current month, and the previous month while AWS still calls it Estimated (older months
re-pulled on schedule are final: their growth is not spend of the day). No request is added
for them: they are the rows the sync already bought. Growth between two snapshots of a series,
normalised per elapsed hour, is the spend recorded in between (functions/alerts).

A series is keyed by the AWS account, not by the link it came through: a member pulled through
its management account, then on its own during the payer's outage, then through the payer
again, is one series. Kept `RETENTION_MONTHS` months (`purge`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from psycopg import sql
from psycopg.rows import class_row

from shared import policy
from shared.db import Connection
from shared.kit.months import add_months, month_start
from shared.store.costs import CostRow

RETENTION_MONTHS = policy.SNAPSHOT_RETENTION_MONTHS  # published in policy.WE_STORE_ADDITIONS
SNAPSHOT_METRIC = "UnblendedCost"


def record(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    months: Mapping[date, bool],
    rows: Sequence[CostRow],
    *,
    taken_at: datetime,
) -> int:
    """Snapshot the month-to-date rows of `months` (month -> Estimated) that are the current
    month of `taken_at` or the previous one still Estimated; returns snapshots written."""
    current = month_start(taken_at.date())
    previous = add_months(current, -1)
    wanted = {m for m, estimated in months.items() if m == current or (m == previous and estimated)}
    if not wanted:
        return 0
    picked = [r for r in rows if r.metric == SNAPSHOT_METRIC and r.month in wanted]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO cao.cost_snapshots (agency_id, account_id, usage_account_id, service,"
            " month, taken_at, amount, currency, estimated)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (
                    agency_id,
                    account_id,
                    r.usage_account_id,
                    r.service,
                    r.month,
                    taken_at,
                    r.amount,
                    r.currency,
                    r.estimated,
                )
                for r in picked
            ],
        )
    return len(picked)


def purge(conn: Connection, agency_id: uuid.UUID, today: date) -> int:
    """Delete the agency's snapshots of months more than RETENTION_MONTHS old."""
    oldest = add_months(month_start(today), -(RETENTION_MONTHS - 1))
    cur = conn.execute(
        "DELETE FROM cao.cost_snapshots WHERE agency_id = %s AND month < %s", (agency_id, oldest)
    )
    return cur.rowcount


@dataclass(frozen=True)
class Snapshot:
    usage_account_id: str
    service: str
    currency: str
    month: date
    taken_at: datetime
    amount: Decimal
    account_id: uuid.UUID


_COLUMNS = sql.SQL(
    "s.usage_account_id, s.service, s.currency, s.month, s.taken_at, s.amount, s.account_id"
)


def series_touched(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    *,
    taken_since: datetime,
    history_since: datetime,
    taken_until: datetime | None = None,
) -> list[Snapshot]:
    """Every snapshot since `history_since` of the series that `account_id` snapshotted at or
    after `taken_since` (what one sync just wrote), ordered by series and time; with
    `taken_until`, as they stood then (later snapshots left out)."""
    cur = conn.cursor(row_factory=class_row(Snapshot))
    query = sql.SQL(
        "WITH touched AS (SELECT DISTINCT usage_account_id, service, currency"
        "   FROM cao.cost_snapshots WHERE agency_id = %(agency)s AND account_id = %(account)s"
        "   AND taken_at >= %(since)s AND taken_at <= %(until)s)"
        " SELECT {} FROM cao.cost_snapshots s"
        " JOIN touched t ON t.usage_account_id = s.usage_account_id AND t.service = s.service"
        "  AND t.currency = s.currency"
        " WHERE s.agency_id = %(agency)s AND s.taken_at >= %(history)s"
        " AND s.taken_at <= %(until)s"
        " ORDER BY s.usage_account_id, s.service, s.currency, s.taken_at"
    ).format(_COLUMNS)
    return cur.execute(
        query,
        {
            "agency": agency_id,
            "account": account_id,
            "since": taken_since,
            "history": history_since,
            "until": taken_until or datetime.max.replace(tzinfo=UTC),
        },
    ).fetchall()


def of_month(conn: Connection, agency_id: uuid.UUID, month: date) -> list[Snapshot]:
    """The agency's snapshots of `month` taken during it, ordered by series and time."""
    query = sql.SQL(
        "SELECT {} FROM cao.cost_snapshots s"
        " WHERE s.agency_id = %(agency)s AND s.month = %(month)s AND s.taken_at >= %(month)s"
        " ORDER BY s.usage_account_id, s.service, s.currency, s.taken_at"
    ).format(_COLUMNS)
    cur = conn.cursor(row_factory=class_row(Snapshot))
    return cur.execute(query, {"agency": agency_id, "month": month}).fetchall()
