"""The job system's use cases: the dispatcher (due jobs become queue messages, one per (account,
kind) job), the first sync after a link, and the agency's "sync now".

`dispatch` (the cron's work) takes the due jobs of entitled agencies through
`cao.dispatch_due_jobs`, which marks them queued under FOR UPDATE SKIP LOCKED: two dispatchers
running at once never take the same job, and a run moments later finds them queued. Then,
outside the transaction, it publishes one message per job (`schemas.JobMessage`: the job id,
its agency, its kind and its period, i.e. when the job fell due).

`enqueue_first_sync` (after a link) and `request_sync` (the agency's "sync now") make an
account's jobs due now and publish them the same way. `publish_follow_up` (the worker, after a
run) publishes a job whose next run falls before the next dispatcher run with a delay, so a
follow-up or retry runs when it asked to.

The kinds are the job kind vocabulary (`shared.store.jobs.JOB_KINDS`); the worker runs each
through its handler in functions/jobs/registry.py. Messages go out through the `Publisher` the
caller passes (the composition root's choice: Vercel Queues, or the embedded queue locally).
This module does not import the registry (the handlers load botocore), so the read API that
serves "sync now" loads nothing heavy. The queue consumer is functions/jobs/worker.py.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from functions.jobs.schemas import JobMessage
from shared.db import Connection, system_tx, tenant_tx
from shared.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitedError,
    UnavailableError,
)
from shared.logs import get_logger
from shared.store import jobs, rate_limits
from shared.store.jobs import JOB_KINDS

if TYPE_CHECKING:
    from shared.queue import Publisher

# One batch: one claiming transaction and one publish call. A run takes batch after batch,
# the kinds in turn, until none is due or its time budget is spent (the rest stays due for the
# next run): the cron function may run 60 s (vercel.json), so the budget leaves 15 s to spare.
MAX_PER_KIND = 5000
DISPATCH_BUDGET_S = 45.0
# A batch is published in up to PUBLISH_WAYS parts at once (threads), each sending its messages
# SEND_CONCURRENCY at a time (shared.queue): one send is an HTTPS call of tens of milliseconds,
# so 16 in flight cap a run near 500 messages/s (bench/dispatch_jobs.py); parts of at least
# MIN_PART messages.
PUBLISH_WAYS = 8
MIN_PART = 250
DISPATCH_PERIOD = timedelta(hours=1)  # the dispatcher's cron (vercel.json): hourly
SYNC_NOW_WINDOW_S = 3600
SYNC_NOW_LIMIT = 4  # per account per hour: each sync costs the client Cost Explorer requests
# (applied by the database, in cao.rate_limit_hit; tests/test_schema_privileges.py holds them
# equal)


@dataclass
class DispatchReport:
    published: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    batches: int = 0
    out_of_time: bool = False  # stopped by its time budget with jobs maybe still due


def dispatch_kinds(kind: str | None = None) -> tuple[str, ...]:
    """The kinds one dispatcher run publishes: `kind` alone, else every job kind."""
    if kind is None:
        return JOB_KINDS
    if kind not in JOB_KINDS:
        raise BadRequestError(f"kind must be one of: {', '.join(JOB_KINDS)}")
    return (kind,)


def dispatch(
    conn: Connection,
    publisher: Publisher[JobMessage],
    kinds: Iterable[str] | None = None,
    *,
    limit: int = MAX_PER_KIND,
    budget_s: float = DISPATCH_BUDGET_S,
    monotonic: Callable[[], float] = time.monotonic,
    ways: int = PUBLISH_WAYS,
) -> DispatchReport:
    """Publish one message per due job of entitled agencies, for each kind (default: every
    job kind), in batches of `limit`, the kinds in turn, until none is due, the queue refuses
    a message (the refused jobs are due again: the next run retries them), or `budget_s` has
    passed (on `monotonic`). Each batch is published in up to `ways` parts at once
    (`_publish`). What is due, and who is entitled, is decided on the database's clock."""
    report = DispatchReport()
    started = monotonic()
    active = list(kinds if kinds is not None else JOB_KINDS)
    for kind in active:
        report.published[kind] = 0
    while active:
        for kind in list(active):
            with system_tx(conn):
                due = jobs.dispatch_due(conn, kind, limit)
            failed = _publish(publisher, [JobMessage.for_job(j) for j in due], ways)
            _unqueue(conn, failed)
            report.published[kind] += len(due) - len(failed)
            report.failed += len(failed)
            report.batches += 1
            if len(due) < limit or failed:
                active.remove(kind)
        if active and monotonic() - started >= budget_s:
            report.out_of_time = True
            break
    log = get_logger().warning if report.out_of_time else get_logger().info
    log(
        "dispatched sync jobs",
        extra={
            "published": report.published,
            "failed": report.failed,
            "batches": report.batches,
            "out_of_time": report.out_of_time,
        },
    )
    return report


def _publish(
    publisher: Publisher[JobMessage], messages: list[JobMessage], ways: int
) -> list[JobMessage]:
    """Publish `messages` in up to `ways` parts at once; returns the ones not sent. A part
    that raises counts as not sent (its jobs are due again)."""
    if not messages:
        return []
    parts = max(1, min(ways, len(messages) // MIN_PART))
    if parts == 1:
        return publisher.publish(messages)
    size = math.ceil(len(messages) / parts)
    chunks = [messages[i : i + size] for i in range(0, len(messages), size)]
    failed: list[JobMessage] = []
    with ThreadPoolExecutor(len(chunks), thread_name_prefix="dispatch") as pool:
        futures = [(chunk, pool.submit(publisher.publish, chunk)) for chunk in chunks]
        for chunk, future in futures:
            try:
                failed.extend(future.result())
            except Exception as exc:  # noqa: BLE001 - those jobs are due again; reported
                get_logger().warning(
                    "queue publish failed", extra={"error_class": type(exc).__name__}
                )
                failed.extend(chunk)
    return failed


def enqueue_first_sync(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    *,
    publisher: Publisher[JobMessage],
    now: datetime,
) -> int:
    """After an account was linked (and that transaction committed): create its sync jobs and
    publish them now. Returns the messages published.

    Never fails the link: when the agency may not sync yet, or the queue cannot be reached,
    the jobs stay due and the next dispatcher run takes them.
    """
    with tenant_tx(conn, agency_id):
        jobs.ensure_jobs(conn, agency_id, account_id, due_at=now)
        if not jobs.is_entitled(conn, agency_id, now):
            return 0
        due = jobs.request_now(conn, agency_id, account_id, now, JOB_KINDS)
    if not due:
        return 0
    try:
        failed = publisher.publish([JobMessage.for_job(j) for j in due])
    except Exception as exc:  # noqa: BLE001 - the link succeeded; the dispatcher catches up
        get_logger().warning("first sync not published", extra={"error_class": type(exc).__name__})
        failed = [JobMessage.for_job(j) for j in due]
    _unqueue(conn, failed)
    return len(due) - len(failed)


@dataclass(frozen=True)
class SyncRequest:
    """What "sync now" did: kinds queued now, and kinds already on their way."""

    queued: list[str]
    in_progress: list[str]


def request_sync(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    now: datetime,
    *,
    publisher: Publisher[JobMessage],
) -> SyncRequest:
    """The agency asks for a sync of one account now (rate-limited per account)."""
    with tenant_tx(conn, agency_id):
        status = jobs.account_status(conn, agency_id, account_id)
    if status is None:
        raise NotFoundError("no such account")
    # Counted only once the account is known to be the caller's: another agency cannot use up
    # this account's budget by guessing its id.
    with system_tx(conn):
        wait = rate_limits.hit(conn, f"sync-now:{account_id}")
    if wait:
        raise RateLimitedError(
            f"at most {SYNC_NOW_LIMIT} syncs per account per hour; retry later",
            retry_after=wait,
        )
    if status in {"paused", "unsafe_trust_policy"}:
        raise ConflictError(
            "this account is not syncing (paused or unsafe trust policy): verify it again first"
        )
    kinds = JOB_KINDS
    with tenant_tx(conn, agency_id):
        if not jobs.is_entitled(conn, agency_id, now):
            raise PaymentRequiredError("syncing needs an active subscription or trial")
        jobs.ensure_jobs(conn, agency_id, account_id, kinds, due_at=now)
        due = jobs.request_now(conn, agency_id, account_id, now, kinds)
    failed = publisher.publish([JobMessage.for_job(j) for j in due])
    if failed:
        _unqueue(conn, failed)
        raise UnavailableError("the sync queue is unavailable; retry later")
    queued = sorted(j.kind for j in due)
    return SyncRequest(queued, sorted(set(kinds) - set(queued)))


def publish_follow_up(
    conn: Connection,
    agency_id: uuid.UUID,
    job_id: uuid.UUID,
    *,
    publisher: Publisher[JobMessage],
    now: datetime,
) -> bool:
    """After a run: when the job's next run falls before the next dispatcher run (a follow-up
    of a partial run, a throttle's or an error's retry), publish it now with a delay, so it runs
    when it asked to, not at the next hour. True when published.

    Never fails the run: when the queue cannot be reached, the job stays due and the hourly
    dispatcher takes it."""
    with tenant_tx(conn, agency_id):
        due = jobs.queue_follow_up(conn, agency_id, job_id, now + DISPATCH_PERIOD)
    if due is None:
        return False
    # Whole seconds, rounded up, plus one: a message delivered before the job is due is not
    # claimed (the consumer has it redelivered then, at the cost of one more delivery).
    delay = max(0, math.ceil((due.due_at - now).total_seconds()) + 1)
    message = JobMessage.for_job(due, delay)
    try:
        failed = publisher.publish([message])
    except Exception as exc:  # noqa: BLE001 - the run is recorded; the dispatcher catches up
        get_logger().warning("follow-up not published", extra={"error_class": type(exc).__name__})
        failed = [message]
    _unqueue(conn, failed)
    return not failed


def _unqueue(conn: Connection, failed: Sequence[JobMessage]) -> None:
    """Jobs whose message was not sent go back to idle, so the next run takes them at once."""
    by_agency: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for message in failed:
        by_agency[message.agency_id].append(message.job_id)
    for agency_id, job_ids in by_agency.items():
        with tenant_tx(conn, agency_id):
            jobs.unqueue(conn, agency_id, job_ids)
