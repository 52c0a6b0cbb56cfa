"""The composition root: the one module that decides which dependencies the product runs with.

    settings   every environment variable (shared.settings), read from os.environ in production
    clock      aware UTC datetimes (shared.kit.clock.utc_now)
    database   `connection()`: a connection from the instance's small bounded pool on the app
               role's URL, opened on first use (shared.db.open_pool); `connect()`: a connection
               of its own, outside the pool
    aws        our own clients (user cao-service) on one botocore session per process
    publisher  the sync queue: Vercel Queues authenticated by the request's OIDC token, or the
               embedded queue of `make demo` and the tests (shared.queue)
    queue      the queue service client that confirms and settles push deliveries (Vercel
               Queues, or an embedded queue's client in tests)
    pacer      the LookupEvents token buckets shared by every sync of this process

Routes receive a `Deps` through the FastAPI dependency `shared.web.DepsDep`; jobs receive what
they need in the JobContext the worker builds from it (functions/jobs). Nothing else keeps
process-wide wiring: the local stack and the tests install their own `Deps` here, with `use`,
and production builds one from os.environ on first use.

Nothing connects or imports botocore or the queue SDK when this module is imported: the
database, the botocore session and the publisher are made when first asked for, so the read
functions' cold start stays free of them.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from shared import db
from shared.errors import DatabaseUnavailableError
from shared.kit.clock import Clock, utc_now
from shared.pacing import Pacer
from shared.queue import Publisher, VercelPublisher, vercel_queue_client
from shared.settings import Secret, Settings

if TYPE_CHECKING:
    import botocore.session
    from psycopg_pool import ConnectionPool
    from vercel.queue import QueueClient

    from shared.aws import ClientFactory

PublisherFor = Callable[[Mapping[str, str] | None], Publisher[Any]]
QueueClientFor = Callable[[], "QueueClient"]


class BotocoreSession:
    """One botocore session, created on first use (botocore is imported only then).

    Sessions are not thread-safe: clients are created from it under `lock` (shared.aws).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._session: botocore.session.Session | None = None

    def get(self) -> botocore.session.Session:
        with self.lock:
            if self._session is None:
                import botocore.session  # noqa: PLC0415 - only where AWS is called

                self._session = botocore.session.get_session()
            return self._session


def vercel_publisher(headers: Mapping[str, str] | None) -> Publisher[Any]:
    """Vercel Queues, authenticated with the OIDC token Vercel puts in the request headers."""
    return VercelPublisher(None if headers is None else headers.get("x-vercel-oidc-token"))


class Database:
    """The instance's connection pools, one per database URL, each opened on first use, and
    the admission of requests to them.

    `size` and `wait_s` bound every pool made here (shared.db: POOL_SIZE, POOL_WAIT_S).

    Requests are admitted on the event loop (`admitted`) before any thread asks the pool for a
    connection: at most `size` requests per loop hold or await a connection at once, and the
    others wait as coroutines, without a thread. Waiting in the pool itself would park a
    threadpool worker per waiting request, and a request that holds a connection needs a
    worker again for its next step (the key check, the route): under a burst every worker ends
    up waiting for a connection that no one can give back, until the waits time out."""

    def __init__(self, *, size: int = db.POOL_SIZE, wait_s: float = db.POOL_WAIT_S) -> None:
        self.size = size
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._pools: dict[str, ConnectionPool[db.Connection]] = {}
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._gates = weakref.WeakKeyDictionary()

    @asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """A turn at the pool for the block; DatabaseUnavailableError (503, Retry-After) when
        none comes within `wait_s`."""
        loop = asyncio.get_running_loop()
        with self._lock:
            gate = self._gates.get(loop)
            if gate is None:
                gate = self._gates[loop] = asyncio.Semaphore(self.size)
        try:
            await asyncio.wait_for(gate.acquire(), self.wait_s)
        except TimeoutError:
            raise DatabaseUnavailableError(
                "no database connection is available; retry shortly",
                retry_after=db.RETRY_AFTER_S,
            ) from None
        try:
            yield
        finally:
            gate.release()

    def pool(self, url: Secret) -> ConnectionPool[db.Connection]:
        with self._lock:
            key = url.reveal()
            pool = self._pools.get(key)
            if pool is None:
                pool = self._pools[key] = db.open_pool(url, size=self.size, wait_s=self.wait_s)
            return pool

    def close(self) -> None:
        """Close every pool (tests, the local stack at exit); a later `pool` opens a new one."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


@dataclass(frozen=True)
class Deps:
    """What the product runs with; see the module docstring."""

    settings: Settings
    clock: Clock = utc_now
    publisher_for: PublisherFor = vercel_publisher
    queue_client: QueueClientFor = vercel_queue_client
    pacer: Pacer = field(default_factory=Pacer)
    botocore: BotocoreSession = field(default_factory=BotocoreSession)
    database: Database = field(default_factory=Database)

    def connection(self) -> AbstractContextManager[db.Connection]:
        """A connection as the app role from the instance's pool for the block (a bounded wait,
        then DatabaseUnavailableError: 503 with Retry-After; shared.db)."""
        return db.pooled(self.database.pool(self.settings.database_url))

    def connect(self) -> db.Connection:
        """An autocommit connection as the app role outside the pool (retried, bounded)."""
        return db.connect(self.settings.database_url)

    def our_clients(self) -> ClientFactory:
        """AWS clients as our own IAM user cao-service (its only permission: sts:AssumeRole)."""
        from shared import aws  # noqa: PLC0415 - botocore only where AWS is called

        return aws.our_clients(self.settings, self.botocore)

    def publisher(self, headers: Mapping[str, str] | None = None) -> Publisher[Any]:
        return self.publisher_for(headers)

    def but(self, **changes: Any) -> Deps:
        """A copy with some dependencies replaced (tests: another clock, other settings)."""
        return replace(self, **changes)


def production() -> Deps:
    """The dependencies of a deployed function: everything from os.environ."""
    return Deps(settings=Settings())


_lock = threading.Lock()
_current: Deps | None = None


def current() -> Deps:
    """The process's dependencies: the installed ones, else production's (built once)."""
    global _current  # noqa: PLW0603 - the composition root is the one holder of wiring
    with _lock:
        if _current is None:
            _current = production()
        return _current


@contextmanager
def use(deps: Deps) -> Iterator[Deps]:
    """Run the product with `deps` inside the block (the local stack, tests, benchmarks)."""
    global _current  # noqa: PLW0603
    with _lock:
        previous, _current = _current, deps
    try:
        yield deps
    finally:
        with _lock:
            _current = previous
