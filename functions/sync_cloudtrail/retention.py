"""Retention: the daily purge of access events older than each agency's retention.

Cross-tenant by nature, so the deleting goes through the one SECURITY DEFINER function made for
it, `cao.purge_expired_events(batch)`, which applies every agency's own
`cloudtrail_retention_days` (default 90, bounded 1..365 by the schema) as of the database's
clock (never a caller's "now": the app role could otherwise purge every agency's events) and
returns what it deleted per agency, with the cutoff. It runs in batches, each its own short
transaction, until a batch comes back short or the time budget is spent (the rest goes the
next day, or on the next call).

Events are partitioned by month (schema.sql), so whole months go first: while the oldest month
partition holds no event still within its agency's retention, `cao.drop_expired_event_partition`
drops it (each its own transaction, the summaries recomputed in it); the rows left past their
retention in a month that still holds younger ones (it straddles the horizon, or another agency
keeps it longer) are then deleted in batches as before. The run also creates this month's and
next month's partitions if missing, so a sync rarely has to.

Each batch or dropped partition records what it purged in the same transaction: one audit-log
row per agency that lost rows (`access.purged`, with the count and the cutoff), visible to that
agency in its audit log, so the deletion and its record commit together. The totals go to the
logs.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from shared.db import Connection, system_tx, tenant_tx
from shared.logs import get_logger
from shared.store import access, audit

BATCH = access.PURGE_BATCH
TIME_BUDGET_S = 20.0  # the cron function's maxDuration is 30 s
ACTOR = "system:retention"
ACTION = "access_events.purged"


@dataclass
class PurgeOutcome:
    deleted: dict[uuid.UUID, int] = field(default_factory=dict)
    batches: int = 0
    partitions_dropped: int = 0
    rows_in_partitions: int = 0  # of `deleted`, those that went with a dropped partition
    more: bool = False  # stopped on the time budget with rows still to purge

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def purge(
    conn: Connection,
    *,
    batch: int = BATCH,
    time_budget_s: float = TIME_BUDGET_S,
    monotonic: Callable[[], float] = time.monotonic,
) -> PurgeOutcome:
    """Delete every access event past its agency's retention, as of the database's clock (the
    cross-tenant delete takes no "now" from its caller); see the docstring."""
    outcome = PurgeOutcome()
    started = monotonic()
    with system_tx(conn):
        access.create_partitions_ahead(conn)
    while True:
        with system_tx(conn):
            partition, dropped = access.drop_expired_partition(conn)
            _record(conn, dropped)
        if partition is None:
            break
        outcome.partitions_dropped += 1
        outcome.rows_in_partitions += sum(count for count, _ in dropped.values())
        _add(outcome, dropped)
        if monotonic() - started >= time_budget_s:
            outcome.more = True
            break
    while not outcome.more:
        with system_tx(conn):
            batch_result = access.purge_expired_batch(conn, batch)
            _record(conn, batch_result)
        outcome.batches += 1
        _add(outcome, batch_result)
        if sum(count for count, _ in batch_result.values()) < batch:
            break
        if monotonic() - started >= time_budget_s:
            outcome.more = True
            break
    get_logger().info(
        "retention purge finished",
        extra={
            "deleted": outcome.total,
            "agencies": len(outcome.deleted),
            "batches": outcome.batches,
            "partitions_dropped": outcome.partitions_dropped,
            "more": outcome.more,
        },
    )
    return outcome


def _record(conn: Connection, purged: dict[uuid.UUID, tuple[int, datetime]]) -> None:
    """One audit row per agency that lost rows, in the transaction that deleted them."""
    for agency_id, (count, older_than) in purged.items():
        # A savepoint that sets this agency as the tenant: its audit row passes RLS.
        with tenant_tx(conn, agency_id):
            days = access.retention_days(conn, agency_id)
            audit.record(
                conn,
                agency_id,
                ACTOR,
                ACTION,
                details={
                    "deleted": count,
                    "retention_days": days,
                    "older_than": older_than.isoformat(),
                },
            )


def _add(outcome: PurgeOutcome, purged: dict[uuid.UUID, tuple[int, datetime]]) -> None:
    for agency_id, (count, _) in purged.items():
        outcome.deleted[agency_id] = outcome.deleted.get(agency_id, 0) + count
