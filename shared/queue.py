"""Vercel Queues transport: the sync topic, its publishers, and the local embedded queue.

What travels is any `Outgoing` message (a JSON payload and an idempotency key); the job
system's payload type (functions/jobs/schemas.py `JobMessage`) is one. The consumer side, the
`@subscribe` subscriber of TOPIC for CONSUMER_GROUP, lives in functions/jobs/worker.py.

On Vercel, publishers authenticate with the function's OIDC token (`VercelPublisher`). Locally
and in tests, `LocalQueue` runs the SDK's embedded queue service, which delivers the same
messages to the same subscriber (whichever module registered it must have been imported).

Push deliveries: Vercel invokes the consumer function with the stored payload inline and
`ce-*` headers (`ce-vqsreceipthandle` among them). The SDK trusts them as they come, so
`read_push` checks that they describe a delivery of our topic to our consumer group, and
`confirm_push` asks the queue service whether it really leased that receipt handle (by extending
the lease, which only the current holder of a live lease can do) before any work is done.

Which publisher runs, and which queue client confirms deliveries, is the composition root's
choice (`shared.bootstrap`). Importing this module is cheap: the queue SDK itself is imported
only when something is published, a delivery arrives or the local queue starts, so the functions
that serve "sync now" keep a light cold start.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

import anyio

from shared.errors import BadRequestError, UnauthorizedError, UnavailableError
from shared.logs import get_logger

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal
    from vercel.queue import MessageMetadata, QueueClient
    from vercel.queue._internal.embedded import EmbeddedQueueService

TOPIC = "cao-sync-jobs"
# Vercel names a function's consumer group after its entry point (sanitised by the SDK).
CONSUMER_GROUP = "api/sync_worker.py"
SEND_CONCURRENCY = 16
RETENTION_S = 24 * 3600
# A confirmed delivery's lease is extended to the SDK's own processing lease (300 s), which the
# SDK's renewal then keeps alive while the subscriber runs.
PUSH_LEASE_S = 300
MAX_LEASE_S = 3600  # the queue service's longest visibility timeout


class Outgoing(Protocol):
    """What a publisher sends: the message's JSON payload, and a key under which a repeated
    send (an SDK retry, a publish repeated after a lost answer) is stored once."""

    def payload(self) -> dict[str, str]: ...

    @property
    def idempotency_key(self) -> str: ...

    @property
    def delay_s(self) -> int:
        """Seconds before the queue delivers it (Vercel Queues' delayed send; 0: at once)."""
        ...


M = TypeVar("M", bound=Outgoing)


class Publisher(Protocol[M]):
    def publish(self, messages: Sequence[M]) -> list[M]:
        """Send every message; returns those that could not be sent."""
        ...


async def _send_all(
    client: QueueClient, messages: Sequence[M], oidc_token: str | None = None
) -> list[M]:
    """Send every message (bounded concurrency); returns the ones that failed."""
    failed: list[M] = []
    limit = anyio.Semaphore(SEND_CONCURRENCY)

    async def send(message: M) -> None:
        async with limit:
            try:
                await client.send(
                    TOPIC,
                    message.payload(),
                    idempotency_key=message.idempotency_key,
                    retention=RETENTION_S,
                    delay=min(max(0, message.delay_s), RETENTION_S) or None,
                )
            except Exception as exc:  # noqa: BLE001 - reported per message; the sender requeues
                get_logger().warning(
                    "queue send failed",
                    extra={
                        "job_id": message.payload().get("job_id"),
                        "error_class": type(exc).__name__,
                    },
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

    def publish(self, messages: Sequence[M]) -> list[M]:
        if not messages:
            return []
        from vercel.queue import QueueClient  # noqa: PLC0415 - the SDK only to publish

        return anyio.run(_send_all, QueueClient(), list(messages), self._oidc_token)


def _group_name() -> str:
    from vercel.queue import sanitize_name  # noqa: PLC0415 - the SDK only where it is used

    return str(sanitize_name(CONSUMER_GROUP))


def vercel_queue_client() -> QueueClient:
    """The queue service of a deployed function (region and OIDC token from the platform)."""
    from vercel.queue import QueueClient  # noqa: PLC0415 - the worker only

    return QueueClient()


def read_push(headers: Mapping[str, str]) -> MessageMetadata:
    """The delivery that a push's `ce-*` headers describe, read by the SDK's own parser (so what
    is checked here is exactly what `accept_and_handle` reads next); BadRequestError unless it
    is an inline delivery (receipt handle, JSON payload) of our topic to our consumer group.
    Nothing here is confirmed yet: anyone can write headers."""
    from vercel.queue import QueueError  # noqa: PLC0415 - the worker only

    # Not exported by vercel-queue 0.10 (pinned); the function accept_and_handle calls.
    from vercel.queue._internal.push import parse_push_delivery_metadata  # noqa: PLC0415

    try:
        metadata = parse_push_delivery_metadata(dict(headers))
    except (ValueError, TypeError, QueueError) as exc:
        raise BadRequestError(
            "not a Vercel Queues push delivery (ce-* headers missing or malformed)",
            code="bad_delivery",
        ) from exc
    if metadata.topic != TOPIC or str(metadata.consumer_group) != _group_name():
        raise BadRequestError("the delivery is not for this consumer", code="bad_delivery")
    if not metadata.receipt_handle:
        raise BadRequestError("the delivery has no receipt handle", code="bad_delivery")
    if "application/json" not in (metadata.content_type or "").lower():
        raise BadRequestError("the delivery's payload is not JSON", code="bad_delivery")
    return metadata


def _confirm_lease_s(metadata: MessageMetadata) -> int:
    """The lease a confirmation sets: the SDK's processing lease, and never shorter than what
    the delivery had left (the SDK schedules its first renewal from that deadline)."""
    seconds = PUSH_LEASE_S
    if metadata.visibility_deadline is not None:
        left = (metadata.visibility_deadline - datetime.now(UTC)).total_seconds()
        seconds = max(seconds, math.ceil(left))
    return min(seconds, MAX_LEASE_S)


async def confirm_push(
    client: QueueClient, metadata: MessageMetadata, headers: Mapping[str, str]
) -> None:
    """Ask the queue service whether it leased this delivery: extend the lease of its receipt
    handle, which only the holder of the live lease on a message of this project, topic and
    consumer group can do. UnauthorizedError when the service does not know it (a forged or
    stale delivery), UnavailableError when the service could not answer (the platform
    redelivers). Authenticated, like every follow-up call of the SDK, by the OIDC token the
    platform passes the invocation."""
    from vercel.headers import HeadersContext  # noqa: PLC0415 - the worker only
    from vercel.queue import (  # noqa: PLC0415
        BadRequestError as QueueBadRequestError,
    )
    from vercel.queue import (  # noqa: PLC0415
        MessageAlreadyProcessedError,
        MessageLockedError,
        MessageNotFoundError,
        QueueError,
    )

    try:
        with HeadersContext(dict(headers)).use():
            await client.extend_lease(metadata, _confirm_lease_s(metadata))
    except (
        MessageNotFoundError,
        MessageLockedError,  # not in flight, lease expired, another holder's handle
        MessageAlreadyProcessedError,
        QueueBadRequestError,  # a handle the service cannot even read
    ) as exc:
        get_logger().warning(
            "queue delivery refused: unknown to the queue service",
            extra={"error_class": type(exc).__name__},
        )
        raise UnauthorizedError(
            "the queue service does not know this delivery", code="unknown_delivery"
        ) from exc
    except QueueError as exc:
        get_logger().warning(
            "queue delivery not confirmed: queue service unavailable",
            extra={"error_class": type(exc).__name__},
        )
        raise UnavailableError(
            "the queue service could not confirm the delivery; retry", code="queue_unavailable"
        ) from exc


class LocalQueue:
    """The SDK's embedded queue service on a background event loop, usable from sync code.

    Deliveries go to every registered subscriber (ours: functions/jobs/worker.py, which
    `worker.local_queue()` makes sure is loaded) on that loop; the consumer runs in worker
    threads, so deliveries run concurrently as on Vercel.
    """

    def __init__(self, *, manual_clock: bool = False) -> None:
        self._manual_clock = manual_clock
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self.service: EmbeddedQueueService | None = None

    def __enter__(self) -> LocalQueue:
        from anyio.from_thread import start_blocking_portal  # noqa: PLC0415 - local stack only
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

    def publish(self, messages: Sequence[M]) -> list[M]:
        if self._portal is None or self.service is None:
            raise RuntimeError("the local queue is not running")
        client = self.service.get_async_client()
        return self._portal.call(_send_all, client, list(messages), None)

    def client(self) -> QueueClient:
        """A client of this embedded service (what confirms and settles deliveries locally)."""
        if self.service is None:
            raise RuntimeError("the local queue is not running")
        return self.service.get_async_client()

    def shift(self, seconds: float) -> None:
        """Advance the queue's clock (manual_clock only): retries and leases fall due."""
        if self.service is None:
            raise RuntimeError("the local queue is not running")
        self.service.server.shift(seconds)

    def pending(self) -> int:
        """Messages of our topic not yet acknowledged by our consumer group, delayed ones once
        they are due (a follow-up published for later is not work in flight)."""
        if self.service is None:
            return 0
        group = _group_name()
        now = self.service.server.now
        return sum(
            1
            for m in self.service.server.state.by_topic.get(TOPIC, [])
            if m.duplicate_of is None and not m.acknowledged_for(group) and m.available_at <= now
        )

    def delayed(self) -> int:
        """Messages of our topic published with a delay that has not passed yet."""
        if self.service is None:
            return 0
        now = self.service.server.now
        return sum(
            1
            for m in self.service.server.state.by_topic.get(TOPIC, [])
            if m.duplicate_of is None and m.available_at > now
        )

    def deliveries(self) -> int:
        """Deliveries made so far to our consumer group (all messages)."""
        if self.service is None:
            return 0
        group = _group_name()
        return sum(
            m.delivery_count_by_consumer.get(group, 0)
            for m in self.service.server.state.by_topic.get(TOPIC, [])
        )
