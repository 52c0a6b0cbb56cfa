"""The 'cloudtrail' job handler: one claimed job of the sync worker (functions/jobs/registry.py).

    run(ctx: JobContext) -> None

The rest of the domain: the LookupEvents engine (`reader`), its time windows (`windows`), the
allowlist of stored fields (`redact`) and the daily retention purge (`retention`, route GET
/api/cron/purge in `routes`).

1. A short read transaction: the account (role ARN, the ExternalId it was verified with, kept
   in memory for the assume-role calls only), its regions (its own, else the agency's
   defaults; us-east-1 always) and the agency's backfill and retention settings.
2. Assume the role (session `cao-sync-<agency>`), then `reader.run`: regions in parallel, each
   batch of rows committed with its cursor in a transaction fenced by the lease. One time
   budget (TIME_BUDGET_S, on the pacer's clock) covers it all: the assume calls (also a
   re-assume mid-run) are bounded by it, and the reader gets what is left of it, so every AWS
   request has ended by then, well inside the worker's 300 s and its 360 s lease.
3. One closing transaction, fenced too: the job's next run and the run record.

Falling behind: a region whose lag exceeds BEHIND_AFTER_S (2 h) and whose event time left to
read grew since its last write is logged and reported to Sentry as a warning
(`falling_behind`); GET /api/accounts shows the lag and the flag.

Scheduling: a run that read everything is due again at the top of the next hour (`now + 1 h`
would slip past the hourly dispatch). A run that stopped on its time budget with a backlog left
is due again after FOLLOW_UP_DELAY. The worker publishes any next run due before the next
dispatch right away, with its delay (functions/jobs/worker.py), so each runs when due.
Throttling: due again after the jittered delay the sync chose (its cursors did not move).
AccessDenied on assume: the account is marked (the third refusal in a row pauses it), retried
next hour at the earliest.
Other AWS failures: retried after a jittered delay. LeaseLostError propagates (the consumer
closes the run as superseded); so does anything unexpected (the queue redelivers).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from functions.jobs.schemas import JobContext
from functions.sync_cloudtrail import reader
from shared import aws, observability
from shared.db import Connection, tenant_tx
from shared.errors import AccessDeniedError, AwsError, LeaseLostError
from shared.logs import get_logger
from shared.pacing import CallLimits
from shared.store import access, jobs

if TYPE_CHECKING:
    from shared.aws import ClientFactory

# The consumer's function must outlive this, plus the final commit (see README / vercel.json).
TIME_BUDGET_S = 240.0
FOLLOW_UP_DELAY = timedelta(seconds=15)  # published with this delay: bench/cloudtrail_ceiling
RETRY_DELAY = timedelta(minutes=10)  # transient AWS failures; jittered up to twice this


def next_hourly_run(now: datetime) -> datetime:
    """The top of the next hour (UTC)."""
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return hour + timedelta(hours=1)


def run(
    ctx: JobContext,
    *,
    time_budget_s: float = TIME_BUDGET_S,
    draw: Callable[[], float] = random.random,
) -> None:
    """Sync the CloudTrail events of the leased account; see the module docstring."""
    conn, lease, ours, clock, run_id = ctx.conn, ctx.lease, ctx.ours, ctx.clock, ctx.run_id
    with tenant_tx(conn, lease.agency_id):
        target = jobs.sync_target(conn, lease.agency_id, lease.account_id)
        settings = access.sync_target(conn, lease.account_id)
    if target is None or settings is None:
        raise LeaseLostError("the account was unlinked")

    session = aws.session_name(lease.agency_id, "sync")
    assumes = 0
    started = ctx.pacer.clock()
    limits = CallLimits(
        deadline=started + time_budget_s, clock=ctx.pacer.clock, sleep=ctx.pacer.sleep
    )

    def assume() -> ClientFactory:
        nonlocal assumes
        assumes += 1
        return aws.assume_role(ours, target.role_arn, target.external_id, session, limits=limits)

    try:
        clients = assume()
    except AwsError as exc:
        _record_assume_failure(conn, lease, run_id, exc, now=clock(), draw=draw)
        return

    options = reader.ReadOptions(
        agency_id=lease.agency_id,
        account_id=lease.account_id,
        aws_account_id=settings.aws_account_id,
        clients=clients,
        regions=settings.regions,
        fence=lambda c: jobs.fence(c, lease),
        pacer=ctx.pacer,
        clock=clock,
        time_budget_s=max(0.0, time_budget_s - (ctx.pacer.clock() - started)),
        reassume=assume,
        backfill_days=settings.backfill_days,
        retention_days=settings.retention_days,
    )
    outcome = reader.run(conn, options)
    del clients, options  # the credentials go with this call
    _record_outcome(conn, lease, run_id, outcome, assumes=assumes, now=clock(), draw=draw)
    _report_falling_behind(lease, outcome)


def falling_behind(outcome: reader.Outcome) -> list[reader.RegionOutcome]:
    """The regions more than BEHIND_AFTER_S behind now with more event time left to read than
    at their last write: more events than the runs can read, or runs that keep failing. (A
    first backfill, or one catching up, is far behind too, but has less and less to read.)"""
    return [
        r
        for r in outcome.regions
        if r.lag_s is not None
        and r.lag_s > access.BEHIND_AFTER_S
        and r.unread_before_s is not None
        and r.unread_s is not None
        and r.unread_s > r.unread_before_s
    ]


def _report_falling_behind(lease: jobs.Lease, outcome: reader.Outcome) -> None:
    for region in falling_behind(outcome):
        tags = {
            "agency_id": str(lease.agency_id),
            "account_id": str(lease.account_id),
            "region": region.region,
            "lag_s": str(int(region.lag_s or 0)),
        }
        get_logger().warning("cloudtrail sync is falling behind", extra=tags)
        observability.report_message("CloudTrail sync is falling behind", **tags)


def _record_outcome(
    conn: Connection,
    lease: jobs.Lease,
    run_id: uuid.UUID,
    outcome: reader.Outcome,
    *,
    assumes: int,
    now: datetime,
    draw: Callable[[], float],
) -> None:
    progressed = outcome.events_written > 0 or any(r.windows_completed for r in outcome.regions)
    if outcome.error_class is None:
        status = "partial" if outcome.backlog_remaining else "succeeded"
    else:
        status = "partial" if progressed else "failed"
    with tenant_tx(conn, lease.agency_id):
        jobs.fence(conn, lease)
        jobs.note_access_ok(conn, lease.agency_id, lease.account_id)
        if outcome.error_class is None:
            due = now + FOLLOW_UP_DELAY if outcome.backlog_remaining else next_hourly_run(now)
            jobs.complete(conn, lease, due, now=now)
        else:
            if outcome.retry_after_s is not None:
                due = now + timedelta(seconds=outcome.retry_after_s)
            elif outcome.error_class == reader.ACCESS_DENIED:
                due = next_hourly_run(now)
            else:
                due = now + RETRY_DELAY * (1 + draw())
            jobs.fail(conn, lease, outcome.error_class, due, False, now=now)
        jobs.finish_run(
            conn,
            lease.agency_id,
            run_id,
            status,
            now=now,
            api_calls=outcome.total_api_calls + assumes,
            rows_written=outcome.events_written,
            error_class=outcome.error_class,
        )


def _record_assume_failure(
    conn: Connection,
    lease: jobs.Lease,
    run_id: uuid.UUID,
    exc: AwsError,
    *,
    now: datetime,
    draw: Callable[[], float],
) -> None:
    error = reader.error_class(exc)
    paused = False
    with tenant_tx(conn, lease.agency_id):
        jobs.fence(conn, lease)
        if isinstance(exc, AccessDeniedError):
            paused = jobs.note_access_denied(conn, lease.agency_id, lease.account_id)
        if paused:
            jobs.pause(conn, lease, error, now=now)
        else:
            due = (
                next_hourly_run(now)
                if isinstance(exc, AccessDeniedError)
                else now + RETRY_DELAY * (1 + draw())
            )
            jobs.fail(conn, lease, error, due, False, now=now)
        jobs.finish_run(
            conn, lease.agency_id, run_id, "failed", now=now, api_calls=1, error_class=error
        )
    get_logger().warning(
        "cloudtrail sync could not assume the role",
        extra={
            "job_id": str(lease.job_id),
            "account_id": str(lease.account_id),
            "error_class": error,
            "paused": paused,
        },
    )
