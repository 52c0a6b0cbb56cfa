"""One linked account's Cost Explorer sync: the 'costs' job handler (functions/jobs/registry.py).

`run` is called by the queue consumer (functions/jobs/worker.py) with a `JobContext`: the
job's lease, a run record already open, our AWS clients and the clock. Pure parts are in
`transform`. It runs in three steps:

1. A short read transaction: the account, the ExternalId it was verified with (kept in memory
   only, for the one assume-role call), the months pulled before, and for a member account
   whether its organization's management account already reported it.
2. AWS, outside any transaction: assume the role (session `cao-sync-<agency>`), then ONE
   GetCostAndUsage request shape for the planned months (MONTHLY; SERVICE, or LINKED_ACCOUNT +
   SERVICE for a management account; three metrics), following NextPageToken with otherwise
   identical parameters. Every page is a billed request: requests == pages.
3. One write transaction, starting with `jobs.fence`: the pulled months replace their rows, the
   account's sync status, the job's next run, the run record. A worker whose lease was taken
   over raises LeaseLostError there and writes nothing; a crash before it commits leaves the
   previous data as it was.

Failures are classified, recorded (run, job, account status) and end the delivery normally (the
consumer acknowledges them); anything else propagates for the queue to redeliver:

- AccessDenied on assume: the account shows `access_denied`; the third in a row pauses it (no
  more calls until it is verified again). Retried next day, never sooner: no retry storm.
- "User not enabled for cost explorer access": the account shows `cost_explorer_not_enabled`
  with instructions; retried next day.
- LimitExceededException (after botocore's standard retries) and other transient AWS failures:
  rescheduled with exponential backoff and jitter.
- DataUnavailableException: recorded; retried next day.
- An expired session mid-pagination is assumed again once, and the same page asked again.

Credentials stay in the client factory of this call and are dropped with it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.jobs.schemas import JobContext
from functions.sync_costs import transform
from shared.db import Connection, tenant_tx
from shared.errors import (
    AccessDeniedError,
    AwsError,
    CostExplorerNotEnabledError,
    ExpiredCredentialsError,
    LeaseLostError,
    ThrottledError,
)
from shared.logs import get_logger
from shared.store import costs, jobs

if TYPE_CHECKING:
    from shared.aws import Client, ClientFactory

CE_REGION = "us-east-1"  # Cost Explorer's only endpoint
MAX_PAGES = 200  # $2 of requests: far beyond any real organization; a paging bug stops here
MEMBER_FRESHNESS = timedelta(hours=26)  # a payer's pull this recent covers its members


@dataclass
class _Counts:
    api_calls: int = 0
    ce_requests: int = 0
    pages: list[dict[str, Any]] = field(default_factory=list)


class _Failure(Exception):
    """Internal: a classified failure, recorded by `_record_failure`."""

    def __init__(self, error_class: str, retry_at: datetime) -> None:
        super().__init__(error_class)
        self.error_class = error_class
        self.retry_at = retry_at


def run(ctx: JobContext, *, draw: Callable[[], float] = random.random) -> None:
    """Sync the costs of the leased account; see the module docstring."""
    conn, lease, ours, clock, run_id = ctx.conn, ctx.lease, ctx.ours, ctx.clock, ctx.run_id
    now = clock()
    today = now.astimezone(UTC).date()
    with tenant_tx(conn, lease.agency_id):
        target = jobs.sync_target(conn, lease.agency_id, lease.account_id)
        if target is None:
            raise LeaseLostError("the account was unlinked")
        state = jobs.job_state(conn, lease.agency_id, lease.job_id)
        months = transform.plan_months(
            today, costs.month_states(conn, lease.agency_id, lease.account_id)
        )
        covered: set[date] = set()
        if not target.is_management:
            covered = costs.payer_coverage(
                conn, lease.agency_id, target.aws_account_id, months, now - MEMBER_FRESHNESS
            )
    failures = state.consecutive_failures if state else 0

    if covered >= set(months):
        _record_covered(conn, lease, run_id, months, clock())
        return

    counts = _Counts()
    try:
        _pull(
            target,
            lease,
            ours,
            months=months,
            today=today,
            counts=counts,
            now=now,
            failures=failures,
            draw=draw,
        )
        data = transform.rows_from_pages(
            counts.pages, months, target.aws_account_id, target.is_management, today
        )
    except _Failure as failure:
        _record_failure(conn, lease, run_id, counts, months, failure, clock())
        return
    except transform.MalformedAnswerError:
        malformed = _Failure("MalformedCostAnswer", transform.next_daily_run(now))
        _record_failure(conn, lease, run_id, counts, months, malformed, clock())
        return
    finally:
        counts.pages = []  # nothing of the answer outlives this call but the rows

    _record_success(conn, lease, run_id, target, data, counts, clock())


# ---- AWS ----------------------------------------------------------------------------------------


def _pull(
    target: jobs.SyncTarget,
    lease: jobs.Lease,
    ours: ClientFactory,
    *,
    months: list[date],
    today: date,
    counts: _Counts,
    now: datetime,
    failures: int,
    draw: Callable[[], float],
) -> None:
    """Assume the role and read every page into `counts.pages`; _Failure when classified."""
    from shared import aws  # noqa: PLC0415 - botocore only when a sync calls AWS

    session = aws.session_name(lease.agency_id, "sync")

    def assume() -> Client:
        counts.api_calls += 1
        clients = aws.assume_role(ours, target.role_arn, target.external_id, session)
        return clients.client("ce", CE_REGION)

    try:
        ce = assume()
    except AccessDeniedError as exc:
        raise _Failure("AccessDenied", transform.next_daily_run(now)) from exc
    except AwsError as exc:
        raise _transient(exc, now, failures, draw) from exc

    token: str | None = None
    reassumed = False
    while True:
        if len(counts.pages) >= MAX_PAGES:
            raise _Failure("TooManyPages", transform.next_daily_run(now))
        params = transform.cost_request(months, today, target.is_management, token)
        counts.api_calls += 1
        counts.ce_requests += 1
        try:
            page = ce.get_cost_and_usage(**params)
        except ExpiredCredentialsError as exc:
            if reassumed:
                raise _transient(exc, now, failures, draw) from exc
            reassumed = True
            try:
                ce = assume()  # then the same page again, with the same token
            except AccessDeniedError as denied:
                raise _Failure("AccessDenied", transform.next_daily_run(now)) from denied
            except AwsError as again:
                raise _transient(again, now, failures, draw) from again
            continue
        except CostExplorerNotEnabledError as exc:
            raise _Failure("CostExplorerNotEnabled", transform.next_daily_run(now)) from exc
        except AwsError as exc:
            if exc.aws_code == "DataUnavailableException":
                raise _Failure("DataUnavailable", transform.next_daily_run(now)) from exc
            raise _transient(exc, now, failures, draw) from exc
        counts.pages.append(page)
        token = page.get("NextPageToken") or None
        if token is None:
            return


def _transient(exc: AwsError, now: datetime, failures: int, draw: Callable[[], float]) -> _Failure:
    """Throttling (botocore already retried), 5xx, expired twice, anything else AWS refused:
    try again later, backing off with jitter."""
    name = "Throttled" if isinstance(exc, ThrottledError) else (exc.aws_code or exc.code)
    return _Failure(name[: jobs.MAX_ERROR_CLASS], transform.backoff(now, failures, draw()))


# ---- writes -------------------------------------------------------------------------------------


def _record_success(  # noqa: PLR0917 - private; called once, in this order
    conn: Connection,
    lease: jobs.Lease,
    run_id: uuid.UUID,
    target: jobs.SyncTarget,
    data: transform.CostData,
    counts: _Counts,
    now: datetime,
) -> None:
    next_run = transform.next_daily_run(now)
    with tenant_tx(conn, lease.agency_id):
        jobs.fence(conn, lease)
        written = costs.replace_months(
            conn, lease.account_id, lease.agency_id, data.months, data.rows, synced_at=now
        )
        jobs.note_access_ok(conn, lease.agency_id, lease.account_id)
        jobs.note_cost_explorer(conn, lease.agency_id, lease.account_id, enabled=True)
        members = 0
        if target.is_management:
            members = _cover_members(conn, lease, target, data, next_run, now)
        jobs.complete(conn, lease, next_run, now=now)
        jobs.finish_run(
            conn,
            lease.agency_id,
            run_id,
            "succeeded",
            now=now,
            api_calls=counts.api_calls,
            ce_requests=counts.ce_requests,
            months=list(data.months),
            rows_written=written,
        )
    get_logger().info(
        "cost sync succeeded",
        extra={
            "job_id": str(lease.job_id),
            "account_id": str(lease.account_id),
            "months": len(data.months),
            "ce_requests": counts.ce_requests,
            "rows_written": written,
            "members_covered": members,
        },
    )


def _cover_members(  # noqa: PLR0917 - private; called once, in this order
    conn: Connection,
    lease: jobs.Lease,
    target: jobs.SyncTarget,
    data: transform.CostData,
    next_run: datetime,
    now: datetime,
) -> int:
    """Members of this organization linked on their own: their costs just came through the
    payer, so their own rows for these months go (no double counting) and their idle jobs are
    done until the next run (no request of their own)."""
    members = jobs.linked_accounts_by_aws_id(
        conn, lease.agency_id, data.usage_accounts - {target.aws_account_id}
    )
    for account_id in members.values():
        costs.delete_months(conn, lease.agency_id, account_id, data.months)
    jobs.advance_idle(
        conn, lease.agency_id, list(members.values()), kind="costs", next_run_at=next_run, now=now
    )
    return len(members)


def _record_covered(
    conn: Connection, lease: jobs.Lease, run_id: uuid.UUID, months: list[date], now: datetime
) -> None:
    with tenant_tx(conn, lease.agency_id):
        jobs.fence(conn, lease)
        costs.delete_months(conn, lease.agency_id, lease.account_id, months)
        jobs.complete(conn, lease, transform.next_daily_run(now), now=now)
        jobs.finish_run(conn, lease.agency_id, run_id, "succeeded", now=now, months=months)
    get_logger().info(
        "cost sync covered by the payer",
        extra={"job_id": str(lease.job_id), "account_id": str(lease.account_id)},
    )


def _record_failure(  # noqa: PLR0917 - private; the same order as _record_success
    conn: Connection,
    lease: jobs.Lease,
    run_id: uuid.UUID,
    counts: _Counts,
    months: list[date],
    failure: _Failure,
    now: datetime,
) -> None:
    paused = False
    with tenant_tx(conn, lease.agency_id):
        jobs.fence(conn, lease)
        if failure.error_class == "AccessDenied":
            paused = jobs.note_access_denied(conn, lease.agency_id, lease.account_id)
        elif failure.error_class == "CostExplorerNotEnabled":
            jobs.note_access_ok(conn, lease.agency_id, lease.account_id)
            jobs.note_cost_explorer(conn, lease.agency_id, lease.account_id, enabled=False)
        if paused:
            jobs.pause(conn, lease, failure.error_class, now=now)
        else:
            jobs.fail(conn, lease, failure.error_class, failure.retry_at, False, now=now)
        jobs.finish_run(
            conn,
            lease.agency_id,
            run_id,
            "failed",
            now=now,
            api_calls=counts.api_calls,
            ce_requests=counts.ce_requests,
            months=months,
            error_class=failure.error_class,
        )
    get_logger().warning(
        "cost sync failed",
        extra={
            "job_id": str(lease.job_id),
            "account_id": str(lease.account_id),
            "error_class": failure.error_class,
            "ce_requests": counts.ce_requests,
            "paused": paused,
            "retry_at": failure.retry_at.isoformat(),
        },
    )
