"""Vercel Queues: the sync topic, its publishers, and the push consumer that runs the jobs.

On Vercel, `api/sync_worker.py` is the topic's push consumer (its `experimentalTriggers` in
vercel.json: retry delay RETRY_AFTER_S, at most MAX_DELIVERIES deliveries). Each delivery goes
through the SDK's `accept_and_handle` to `on_sync_message`, registered below with
`@subscribe` for the consumer group Vercel derives from that function's path. Locally and in
tests, `LocalQueue` runs the SDK's embedded queue service, which delivers the same messages to
the same subscriber.

The consumer (`consume`, in a worker thread: it does blocking I/O) claims the job's lease,
opens a run record and runs the job's kind through `registry.handler_for`. Then:
- the handler returned (success, or a failure it classified and recorded): acknowledge;
- LeaseLostError (another delivery took over an expired lease): the run is marked superseded,
  nothing else is written; acknowledge;
- the lease is held by a live delivery (a duplicate arriving while the job runs): redeliver
  once that lease has expired, so a crashed worker's job is picked up again; a duplicate that
  finds the job done (not due any more) is acknowledged;
- anything else: the run is marked failed, the lease given back, and the exception propagates
  so the queue redelivers; at the last allowed delivery the job is left `failed` (visible to
  the agency, taken again by a later dispatcher run) and the message acknowledged.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.from_thread import BlockingPortal, start_blocking_portal
from vercel.queue import Message, QueueClient, RetryAfter, sanitize_name, subscribe

from functions.sync_costs import registry
from functions.sync_costs.dispatch import JobMessage, Publisher
from shared import db, observability
from shared.db import Connection, system_tx, tenant_tx
from shared.errors import LeaseLostError
from shared.logs import get_logger
from shared.settings import get_settings
from shared.store import jobs

if TYPE_CHECKING:
    from vercel.queue._internal.embedded import EmbeddedQueueService

    from shared.aws import ClientFactory

TOPIC = "cao-sync-jobs"
# Vercel names a function's consumer group after its entry point (sanitised by the SDK).
CONSUMER_GROUP = "api/sync_worker.py"
RETRY_AFTER_S = 60
MAX_DELIVERIES = 5
# Longer than the worker's maxDuration (300 s): a live worker never outlives its lease.
LEASE_SECONDS = 360
BUSY_RETRY_MAX_S = 900
TERMINAL_RETRY = timedelta(hours=1)
SEND_CONCURRENCY = 16
RETENTION_S = 24 * 3600


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---- publishing -------------------------------------------------------------------------------


async def _send_all(
    client: QueueClient, messages: Sequence[JobMessage], oidc_token: str | None = None
) -> list[JobMessage]:
    """Send every message (bounded concurrency); returns the ones that failed."""
    failed: list[JobMessage] = []
    limit = anyio.Semaphore(SEND_CONCURRENCY)

    async def send(message: JobMessage) -> None:
        async with limit:
            try:
                await client.send(
                    TOPIC,
                    message.payload(),
                    idempotency_key=message.idempotency_key,
                    retention=RETENTION_S,
                )
            except Exception as exc:  # noqa: BLE001 - reported per message; the job is requeued
                get_logger().warning(
                    "queue send failed",
                    extra={"job_id": str(message.job_id), "error_class": type(exc).__name__},
                )
                failed.append(message)

    if oidc_token:
        from vercel.headers import HeadersContext  # noqa: PLC0415 - production only

        # The SDK reads the function's OIDC token from the request headers' context.
        context = HeadersContext({"x-vercel-oidc-token": oidc_token}).use()
    else:
        context = _nothing()
    with context:
        async with anyio.create_task_group() as group:
            for message in messages:
                group.start_soon(send, message)
    return failed


@contextmanager
def _nothing() -> Iterator[None]:
    yield


class VercelPublisher:
    """Publishes to Vercel Queues from a Vercel function (OIDC auth, VERCEL_REGION)."""

    def __init__(self, oidc_token: str | None = None) -> None:
        self._oidc_token = oidc_token

    def __repr__(self) -> str:
        return "VercelPublisher()"

    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        if not messages:
            return []
        return anyio.run(_send_all, QueueClient(), list(messages), self._oidc_token)


_local_lock = threading.Lock()
_local: Publisher | None = None


def use_publisher(publisher: Publisher | None) -> None:
    """Install (or with None, remove) the process-wide publisher: the local stack and tests."""
    global _local  # noqa: PLW0603 - one per process, set by the local stack only
    with _local_lock:
        _local = publisher


def default_publisher(headers: Mapping[str, str] | None = None) -> Publisher:
    """The installed local publisher, else Vercel Queues with the request's OIDC token."""
    with _local_lock:
        if _local is not None:
            return _local
    token = None
    if headers is not None:
        token = headers.get("x-vercel-oidc-token")
    return VercelPublisher(token)


class LocalQueue:
    """The SDK's embedded queue service on a background event loop, usable from sync code.

    Deliveries go to every registered subscriber (ours: `on_sync_message`) on that loop; the
    consumer runs in worker threads, so deliveries run concurrently as on Vercel.
    """

    def __init__(self, *, manual_clock: bool = False) -> None:
        self._manual_clock = manual_clock
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self.service: EmbeddedQueueService | None = None

    def __enter__(self) -> LocalQueue:
        from vercel.queue.embedded import embedded_queue_service  # noqa: PLC0415 - local only

        portal = self._stack.enter_context(start_blocking_portal())
        self.service = self._stack.enter_context(
            portal.wrap_async_context_manager(
                embedded_queue_service(manual_clock=self._manual_clock)
            )
        )
        self._portal = portal
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._portal = None
        self.service = None

    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        if self._portal is None or self.service is None:
            raise RuntimeError("the local queue is not running")
        client = self.service.get_async_client()
        return self._portal.call(_send_all, client, list(messages), None)

    def shift(self, seconds: float) -> None:
        """Advance the queue's clock (manual_clock only): retries and leases fall due."""
        if self.service is None:
            raise RuntimeError("the local queue is not running")
        self.service.server.shift(seconds)

    def pending(self) -> int:
        """Messages of our topic not yet acknowledged by our consumer group."""
        if self.service is None:
            return 0
        group = str(sanitize_name(CONSUMER_GROUP))
        return sum(
            1
            for m in self.service.server.state.by_topic.get(TOPIC, [])
            if m.duplicate_of is None and not m.acknowledged_for(group)
        )

    def deliveries(self) -> int:
        """Deliveries made so far to our consumer group (all messages)."""
        if self.service is None:
            return 0
        group = str(sanitize_name(CONSUMER_GROUP))
        return sum(
            m.delivery_count_by_consumer.get(group, 0)
            for m in self.service.server.state.by_topic.get(TOPIC, [])
        )


# ---- consuming --------------------------------------------------------------------------------


def _our_clients() -> ClientFactory:
    from shared import aws  # noqa: PLC0415 - botocore only in the worker, when a job runs

    return aws.our_clients(get_settings())


def consume(
    payload: Any,
    delivery_count: int,
    *,
    clock: Callable[[], datetime] = utcnow,
    ours: Callable[[], ClientFactory] = _our_clients,
) -> float | None:
    """Handle one delivery: None to acknowledge it, or seconds after which to redeliver."""
    try:
        message = JobMessage.from_payload(payload)
    except (ValueError, TypeError):
        # It will never parse better: acknowledge rather than redeliver it forever.
        get_logger().warning("unreadable sync message dropped")
        return None
    with db.connect(get_settings().database_url) as conn:
        return process(conn, message, delivery_count, clock=clock, ours=ours)


def process(
    conn: Connection,
    message: JobMessage,
    delivery_count: int,
    *,
    clock: Callable[[], datetime] = utcnow,
    ours: Callable[[], ClientFactory] = _our_clients,
) -> float | None:
    """Claim, run and settle one job; see the module docstring."""
    now = clock()
    with system_tx(conn):
        lease = jobs.claim(conn, message.job_id, now, LEASE_SECONDS)
    if lease is None:
        return _not_claimed(conn, message, delivery_count, now)
    log_extra = {"job_id": str(lease.job_id), "kind": lease.kind, "delivery": delivery_count}
    with tenant_tx(conn, lease.agency_id):
        run_id = jobs.start_run(conn, lease, now)
    handler = registry.handler_for(lease.kind)
    try:
        if handler is None:
            raise LookupError(f"no handler registered for job kind {lease.kind}")
        handler(conn, lease, ours(), clock, run_id=run_id)
    except LeaseLostError:
        _settle(conn, lease, run_id, "superseded", None, clock(), last=False)
        get_logger().info("sync superseded by another delivery", extra=log_extra)
        return None
    except Exception as exc:
        last = max(delivery_count, lease.deliveries) >= MAX_DELIVERIES
        _settle(conn, lease, run_id, "failed", type(exc).__name__, clock(), last=last)
        if last:
            get_logger().error(
                "sync job failed at its last delivery",
                extra={**log_extra, "error_class": type(exc).__name__},
            )
            observability.report(exc, job_kind=lease.kind, job_id=str(lease.job_id))
            return None
        raise
    return None


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
        and state.lease_expires_at is not None
        and state.lease_expires_at > now
        and state.next_run_at <= now
        and delivery_count < MAX_DELIVERIES
    ):
        wait = (state.lease_expires_at - now).total_seconds()
        return float(min(BUSY_RETRY_MAX_S, math.ceil(wait) + 1))
    return None


def _settle(  # noqa: PLR0917 - private; status and error travel together
    conn: Connection,
    lease: jobs.Lease,
    run_id: Any,
    status: str,
    error_class: str | None,
    now: datetime,
    *,
    last: bool,
) -> None:
    """Close the run; after a failure give the lease back, or at the last delivery end the job
    `failed`. Best effort: the database itself may be what failed."""
    try:
        with tenant_tx(conn, lease.agency_id):
            jobs.finish_run(conn, lease.agency_id, run_id, status, now=now, error_class=error_class)
        if status != "failed":
            return
        with tenant_tx(conn, lease.agency_id):
            if last:
                jobs.fail(conn, lease, error_class or "Error", now + TERMINAL_RETRY, True, now=now)
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


async def accept_push(body: bytes, headers: Mapping[str, str]) -> None:
    """Hand a Vercel push delivery (raw body and its ce-* headers) to the SDK, which calls our
    subscriber, keeps the queue's lease alive meanwhile and acknowledges or retries."""
    from vercel.queue import accept_and_handle  # noqa: PLC0415 - the worker only

    await accept_and_handle(body, dict(headers))
