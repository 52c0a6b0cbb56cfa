"""Vercel Queues transport: the sync topic, its publishers, and the local embedded queue.

What travels is any `Outgoing` message (a JSON payload and an idempotency key); the job
system's payload type (functions/jobs/schemas.py `JobMessage`) is one. The consumer side, the
`@subscribe` subscriber of TOPIC for CONSUMER_GROUP, lives in functions/jobs/worker.py.

On Vercel, publishers authenticate with the function's OIDC token (`VercelPublisher`). Locally
and in tests, `LocalQueue` runs the SDK's embedded queue service, which delivers the same
messages to the same subscriber (whichever module registered it must have been imported).

Which publisher runs is the composition root's choice (`shared.bootstrap`). Importing this
module is cheap: the queue SDK itself is imported only when something is published or the local
queue starts, so the functions that serve "sync now" keep a light cold start.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Protocol, TypeVar

import anyio

from shared.logs import get_logger

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal
    from vercel.queue import QueueClient
    from vercel.queue._internal.embedded import EmbeddedQueueService

TOPIC = "cao-sync-jobs"
# Vercel names a function's consumer group after its entry point (sanitised by the SDK).
CONSUMER_GROUP = "api/sync_worker.py"
SEND_CONCURRENCY = 16
RETENTION_S = 24 * 3600


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
