"""The queue consumer: runs each delivered job through its handler and settles it.

On Vercel, `api/sync_worker.py` is the topic's push consumer (its `experimentalTriggers` in
vercel.json: retry delay RETRY_AFTER_S, at most MAX_DELIVERIES deliveries): the platform POSTs
each delivery to that function's own path, /api/sync_worker. `accept_push` accepts only real
deliveries (confirmed with the queue service, before any work), then the SDK's
`accept_and_handle` calls `on_sync_message`, registered below with `@subscribe` for the
consumer group Vercel derives from that function's path. Locally and in
tests, `local_queue()` runs the SDK's embedded queue service (shared/queue.py), which delivers
the same messages to the same subscriber.

The consumer (`consume`, in a worker thread: it does blocking I/O) claims the job's lease,
closes as `abandoned` the runs of deliveries that died holding it (their lease expired
unrenewed), opens a run record and runs the job's kind through `registry.handler_for` with a
`JobContext`. The lease is short (LEASE_SECONDS) and renewed every HEARTBEAT_S while the handler
runs (functions/jobs/heartbeat.py), so a crashed worker's job is taken over within about a
minute, and a live one keeps it however long it runs. Every AWS call of a job ends within
WORK_BUDGET_S of the claim, inside the function's 300 s maxDuration. Then:
- the handler returned (success, or a failure it classified and recorded): acknowledge; and
  when the job's next run falls before the next dispatcher run (a follow-up, a retry, the next
  hour), publish it now with that delay (`service.publish_follow_up`);
- LeaseLostError (another delivery took over an expired lease): the run is marked superseded,
  nothing else is written; acknowledge;
- the lease is held by a live delivery (a duplicate arriving while the job runs): redeliver
  once that lease has expired, so a crashed worker's job is picked up again; a delayed
  follow-up delivered before its job is due: redeliver when it is; a duplicate that finds the
  job done (not due any more) is acknowledged;
- anything else: the run is marked failed, the lease given back, and the exception propagates
  so the queue redelivers; at the last allowed delivery the job is left `failed` (visible to
  the agency, taken again by a later dispatcher run) and the message acknowledged.
Settling (the run's status, the lease) happens on a fresh connection from the pool, never on
the handler's: the failure may be that connection (the database restarted, the pooler dropped
it), and a settle that fails would leave the job `running` until its lease expires.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from vercel.queue import Message, RetryAfter, subscribe

from functions.jobs import registry, service
from functions.jobs.heartbeat import Heartbeat
from functions.jobs.schemas import JobContext, JobMessage
from shared import bootstrap, observability
from shared.bootstrap import Deps
from shared.db import Connection, system_tx, tenant_tx
from shared.errors import BadRequestError, LeaseLostError, UnavailableError
from shared.logs import get_logger
from shared.pacing import CallLimits
from shared.queue import CONSUMER_GROUP, TOPIC, LocalQueue, confirm_push, read_push
from shared.store import jobs

if TYPE_CHECKING:
    from vercel.queue import QueueClient

RETRY_AFTER_S = 60
MAX_DELIVERIES = 5
# A crashed worker's job is taken over once this passes without a renewal; a live worker
# renews it every HEARTBEAT_S (three chances before it would lapse).
LEASE_SECONDS = 60
HEARTBEAT_S = 20.0
# Every AWS call of a job ends within this of the claim (each HTTP attempt starts only if its
# timeouts end by then: shared.aws, CallLimits), leaving the rest of the function's 300 s
# maxDuration for the job's last commits.
WORK_BUDGET_S = 270.0
BUSY_RETRY_MAX_S = 900
TERMINAL_RETRY = timedelta(hours=1)


def local_queue(*, manual_clock: bool = False) -> LocalQueue:
    """The SDK's embedded queue, delivering to this module's subscriber (the local stack and
    tests; importing this module is what registers the subscriber)."""
    return LocalQueue(manual_clock=manual_clock)


def consume(payload: Any, delivery_count: int) -> float | None:
    """Handle one delivery with the composition root's dependencies: None to acknowledge it,
    or seconds after which to redeliver."""
    try:
        message = JobMessage.from_payload(payload)
    except (ValueError, TypeError):
        # It will never parse better: acknowledge rather than redeliver it forever.
        get_logger().warning("unreadable sync message dropped")
        return None
    deps = bootstrap.current()
    with deps.connection() as conn:
        return process(conn, message, delivery_count, deps)


def process(conn: Connection, message: JobMessage, delivery_count: int, deps: Deps) -> float | None:
    """Claim, run and settle one job; see the module docstring."""
    clock = deps.clock
    now = clock()
    with system_tx(conn):
        lease = jobs.claim(conn, message.job_id, now, LEASE_SECONDS)
    if lease is None:
        return _not_claimed(conn, message, delivery_count, now)
    log_extra = {"job_id": str(lease.job_id), "kind": lease.kind, "delivery": delivery_count}
    with tenant_tx(conn, lease.agency_id):
        jobs.abandon_runs(conn, lease, now)
        run_id = jobs.start_run(conn, lease, now)
    handler = registry.handler_for(lease.kind)
    limits = CallLimits(
        deadline=deps.pacer.clock() + WORK_BUDGET_S, clock=deps.pacer.clock, sleep=deps.pacer.sleep
    )
    try:
        if handler is None:
            raise LookupError(f"no handler registered for job kind {lease.kind}")
        with Heartbeat(functools.partial(_renew, deps, lease), HEARTBEAT_S):
            handler(
                JobContext(
                    conn=conn,
                    lease=lease,
                    clients=lambda: deps.our_clients().bounded(limits),
                    clock=clock,
                    run_id=run_id,
                    pacer=deps.pacer,
                )
            )
    except LeaseLostError:
        _settle(deps, lease, run_id, "superseded", None, clock(), last=False)
        get_logger().info("sync superseded by another delivery", extra=log_extra)
        return None
    except Exception as exc:
        last = max(delivery_count, lease.deliveries) >= MAX_DELIVERIES
        _settle(deps, lease, run_id, "failed", type(exc).__name__, clock(), last=last)
        if last:
            get_logger().error(
                "sync job failed at its last delivery",
                extra={**log_extra, "error_class": type(exc).__name__},
            )
            observability.report(exc, job_kind=lease.kind, job_id=str(lease.job_id))
            return None
        raise
    _follow_up(conn, lease, deps, clock())
    return None


def _follow_up(conn: Connection, lease: jobs.Lease, deps: Deps, now: datetime) -> None:
    """A next run due before the next dispatcher run is published now, delayed (jobs.service);
    best effort: the dispatcher still finds the job due."""
    try:
        service.publish_follow_up(
            conn, lease.agency_id, lease.job_id, publisher=deps.publisher(), now=now
        )
    except Exception as exc:  # noqa: BLE001 - the run itself is settled
        get_logger().warning(
            "could not publish a follow-up", extra={"error_class": type(exc).__name__}
        )


def _not_claimed(
    conn: Connection, message: JobMessage, delivery_count: int, now: datetime
) -> float | None:
    """Another delivery holds the job (come back when its lease expires) or there is nothing
    to do (the job ran already, is paused, gone, or may not sync).

    A claim skipped while another claimer's transaction was still open can read the job as
    idle and be acknowledged: safe, since that claimer's own message stays unacknowledged until
    its run ends, and is redelivered if its worker dies."""
    with tenant_tx(conn, message.agency_id):
        state = jobs.job_state(conn, message.agency_id, message.job_id)
    if (
        state is not None
        and state.state == "queued"
        and state.next_run_at > now
        and delivery_count < MAX_DELIVERIES
    ):
        # A delayed follow-up delivered a little early (the queue's clock is not ours).
        return float(min(BUSY_RETRY_MAX_S, math.ceil((state.next_run_at - now).total_seconds())))
    if (
        state is not None
        and state.lease_expires_at is not None
        and state.lease_expires_at > now
        and state.next_run_at <= now
        and delivery_count < MAX_DELIVERIES
    ):
        wait = (state.lease_expires_at - now).total_seconds()
        return float(min(BUSY_RETRY_MAX_S, math.ceil(wait) + 1))
    return None


def _renew(deps: Deps, lease: jobs.Lease) -> bool:
    """One heartbeat: extend the lease from now (False once it is no longer ours)."""
    with deps.connection() as conn, tenant_tx(conn, lease.agency_id):
        return jobs.renew(conn, lease, deps.clock(), LEASE_SECONDS)


def _settle(  # noqa: PLR0917 - private; status and error travel together
    deps: Deps,
    lease: jobs.Lease,
    run_id: Any,
    status: str,
    error_class: str | None,
    now: datetime,
    *,
    last: bool,
) -> None:
    """Close the run; after a failure give the lease back, or at the last delivery end the job
    `failed`. On a fresh connection (see the module docstring); best effort: the database itself
    may be what failed, and then the lease lapses and the next claim closes the run."""
    try:
        with deps.connection() as conn:
            with tenant_tx(conn, lease.agency_id):
                jobs.finish_run(
                    conn, lease.agency_id, run_id, status, now=now, error_class=error_class
                )
            if status != "failed":
                return
            with tenant_tx(conn, lease.agency_id):
                if last:
                    jobs.fail(
                        conn, lease, error_class or "Error", now + TERMINAL_RETRY, True, now=now
                    )
                else:
                    jobs.release(conn, lease)
    except LeaseLostError:
        pass  # another delivery owns the job now; it settles it
    except Exception as exc:  # noqa: BLE001 - the original failure is what gets reported
        get_logger().warning(
            "could not record a failed sync", extra={"error_class": type(exc).__name__}
        )


@subscribe(
    topic=TOPIC,
    consumer_group=CONSUMER_GROUP,
    retry_after=RETRY_AFTER_S,
    max_attempts=MAX_DELIVERIES,
)
async def on_sync_message(message: Message[Any]) -> None:
    """The push consumer: runs `consume` in a worker thread (it blocks on I/O)."""
    delay = await anyio.to_thread.run_sync(
        functools.partial(consume, message.payload, message.metadata.delivery_count)
    )
    if delay is not None:
        raise RetryAfter(math.ceil(delay))


async def accept_push(body: bytes, headers: Mapping[str, str], client: QueueClient) -> None:
    """One Vercel push delivery (raw body and its ce-* headers), accepted only once real.

    Before any work: the headers must describe an inline delivery of our topic to our consumer
    group and the body must be one of our job messages (else BadRequestError, 400), and the
    queue service must confirm the delivery's receipt handle (else UnauthorizedError, 401, or
    UnavailableError, 503, when it cannot answer): see shared.queue. Then the SDK calls our
    subscriber through `client`, keeps the queue's lease alive meanwhile and acknowledges or
    reschedules the message.

    A failure that escapes is answered 503 so that the queue redelivers it. It reaches Sentry
    only at the last allowed delivery (MAX_DELIVERIES): earlier ones are retries on their way,
    not incidents (`process` reports the failures it catches at the last delivery itself).
    """
    metadata = read_push(headers)
    try:
        message = JobMessage.from_payload(json.loads(body))
    except (ValueError, TypeError) as exc:  # JSON and UTF-8 decoding errors are ValueErrors
        raise BadRequestError(
            "the delivery's payload is not a sync job message", code="bad_delivery"
        ) from exc
    await confirm_push(client, metadata, headers)
    try:
        await client.accept_and_handle(body, dict(headers))
    except Exception as exc:
        extra = {
            "job_id": str(message.job_id),
            "kind": message.kind,
            "delivery": metadata.delivery_count,
            "error_class": type(exc).__name__,
        }
        if metadata.delivery_count >= MAX_DELIVERIES:
            get_logger().error("sync delivery failed at its last delivery", extra=extra)
            observability.report(exc, job_kind=message.kind, job_id=str(message.job_id))
        else:
            get_logger().warning("sync delivery failed; the queue redelivers it", extra=extra)
        raise UnavailableError(
            "the job did not complete; the queue redelivers it", code="delivery_failed"
        ) from exc
