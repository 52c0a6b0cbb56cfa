"""Postgres connections fit for Neon's pooled URL, and tenant-scoped transactions.

Behind PgBouncer in transaction mode nothing may live in the session: connections are
autocommit, every unit of work is an explicit transaction, the tenant is set with
`set_config('app.agency_id', ..., true)` (local to the transaction), and server-side prepared
statements are off (`prepare_threshold=None`). Neon computes scale to zero and restart, so
connecting has a timeout and transient failures are retried with jittered backoff.

A function instance keeps a small bounded pool (`open_pool`, psycopg_pool; Vercel reuses
instances and may run several requests in one): at most POOL_SIZE connections, opened on
demand, checked on checkout (an instance frozen between invocations may hold dead sockets) and
reset on return (`reset_connection`: whatever a caller changed on the connection object goes
back to the defaults above). A caller waits at most POOL_WAIT_S for one, whether the pool is
busy or the database is slow to answer (each connect attempt is bounded by CONNECT_TIMEOUT_S and
retried with the pool's jittered backoff inside that wait); then `pooled` raises
DatabaseUnavailableError, a 503 with Retry-After, well before the platform's own 30 s timeout.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, LiteralString

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg.rows import tuple_row

from shared.errors import DatabaseUnavailableError
from shared.settings import Secret

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

# Issue 12's budget: a dead or hung database answers our 503 within ~12 s, not the platform's
# 504 at 30 s. Neon wakes a suspended compute in a few hundred ms, so 3 s per attempt is ample.
CONNECT_TIMEOUT_S = 3
CONNECT_ATTEMPTS = 3
# The per-instance pool: see the README ("Database connections") for the sizing against Neon's
# pooler. POOL_WAIT_S bounds the wait for a connection, connecting included.
POOL_SIZE = 4
POOL_WAIT_S = 10.0
POOL_MAX_IDLE_S = 60.0
RETRY_AFTER_S = 2
STATEMENT_TIMEOUT_MS = 15_000

Connection = psycopg.Connection

_CONNECTION_KWARGS: dict[str, Any] = {
    "autocommit": True,
    "prepare_threshold": None,
    "connect_timeout": CONNECT_TIMEOUT_S,
}


def connect(
    url: Secret,
    *,
    attempts: int = CONNECT_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    application_name: str = "cloudagencyops",
) -> Connection:
    """An autocommit connection; transient connect failures retried with full jitter."""
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            return psycopg.connect(
                url.reveal(), **_CONNECTION_KWARGS, application_name=application_name
            )
        except psycopg.OperationalError:
            if attempt == attempts:
                # The driver's message can carry the host and user: none of it goes further.
                raise DatabaseUnavailableError("the database is unreachable; retry later") from None
            sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not cryptography
            delay *= 2
    raise AssertionError("unreachable")


def open_pool(
    url: Secret,
    *,
    size: int = POOL_SIZE,
    wait_s: float = POOL_WAIT_S,
    application_name: str = "cloudagencyops",
) -> ConnectionPool[Connection]:
    """The instance's pool, open: no connection is made until one is asked for."""
    from psycopg_pool import ConnectionPool  # noqa: PLC0415 - only once a connection is wanted

    # The pool logs failed connects with the driver's message (host, user): we log only our own
    # line when a caller gives up (shared.web), as for every database error.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    pool: ConnectionPool[Connection] = ConnectionPool(
        url.reveal(),
        kwargs={**_CONNECTION_KWARGS, "application_name": application_name},
        min_size=0,
        max_size=size,
        timeout=wait_s,
        # A connect that keeps failing is given up with the caller's wait; the next caller
        # starts afresh rather than queueing behind a long reconnect loop.
        reconnect_timeout=wait_s,
        max_idle=POOL_MAX_IDLE_S,
        check=check_if_idle,
        reset=reset_connection,
        name="cao",
        num_workers=2,
        open=False,
    )
    pool.open(wait=False)
    return pool


# When each pooled connection was last given back (wall clock: it keeps counting while a frozen
# instance sleeps, which is when a socket dies unseen).
_RETURNED_AT: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()
CHECK_AFTER_IDLE_S = 2.0


def check_if_idle(conn: Connection) -> None:
    """The pool's check on checkout, skipped for a connection given back less than
    CHECK_AFTER_IDLE_S ago: a busy instance saves a round trip per request, and a connection
    that sat idle (or through a freeze) is still checked before it is used."""
    from psycopg_pool import ConnectionPool  # noqa: PLC0415

    returned = _RETURNED_AT.get(conn)
    if returned is not None and time.time() - returned < CHECK_AFTER_IDLE_S:
        return
    ConnectionPool.check_connection(conn)


def reset_connection(conn: Connection) -> None:
    """Put a returned connection back to the defaults every caller may assume (PgBouncer in
    transaction mode keeps no session state, so the client side is all there is to reset)."""
    _CARRIED.pop(conn, None)  # (the request finished it: shared.web.get_conn)
    _RETURNED_AT[conn] = time.time()
    conn.autocommit = True
    conn.isolation_level = None
    conn.read_only = None
    conn.deferrable = None
    conn.prepare_threshold = None
    conn.row_factory = tuple_row


@contextmanager
def pooled(pool: ConnectionPool[Connection]) -> Iterator[Connection]:
    """A connection from `pool` for the block; DatabaseUnavailableError (503, Retry-After) when
    none comes within the pool's wait."""
    from psycopg_pool import PoolTimeout  # noqa: PLC0415

    try:
        conn = pool.getconn()
    except PoolTimeout:
        # Busy, or the database does not answer: either way the caller should come back soon.
        raise DatabaseUnavailableError(
            "no database connection is available; retry shortly", retry_after=RETRY_AFTER_S
        ) from None
    try:
        yield conn
    finally:
        pool.putconn(conn)


# A read request's authentication leaves its transaction open, the tenant set, for the request's
# first tenant block: begin, authenticate-and-set-tenant, the query, commit (4 round trips, not
# 8). Whatever else comes first (a system transaction, the end of the request) finishes it.
_CARRIED: weakref.WeakKeyDictionary[Connection, tuple[str, AbstractContextManager[Any]]] = (
    weakref.WeakKeyDictionary()
)


def carry(conn: Connection, tx: AbstractContextManager[Any], agency_id: uuid.UUID | str) -> None:
    """Leave `tx` (entered, with `agency_id` set as the tenant and the statement timeout) open
    for the next `tenant_tx` of the same agency on `conn`."""
    finish_carried(conn, None)
    _CARRIED[conn] = (str(agency_id), tx)


def begin_carried(
    conn: Connection, query: LiteralString, params: tuple[Any, ...]
) -> tuple[Any, ...] | None:
    """Begin a transaction and run `query` (one row or none; its first column `agency_id`):
    when it returns a row, the same statement sets that agency as the tenant and the statement
    timeout, and the transaction is carried to the request's first `tenant_tx` (`carry`);
    when it returns none, the transaction ends here."""
    tx = conn.transaction()
    tx.__enter__()
    try:
        statement = sql.SQL(
            "SELECT q.*, set_config('app.agency_id', q.agency_id::text, true),"
            " set_config('statement_timeout', %s, true) FROM ({}) q"
        ).format(sql.SQL(query))
        row = conn.execute(statement, (str(STATEMENT_TIMEOUT_MS), *params)).fetchone()
    except BaseException as exc:
        tx.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if row is None:
        tx.__exit__(None, None, None)
        return None
    carry(conn, tx, row[0])
    return tuple(row[:-2])


def finish_carried(conn: Connection, exc: BaseException | None) -> None:
    """Commit (or, after `exc`, roll back) the transaction `carry` left open on `conn`, if any."""
    carried = _CARRIED.pop(conn, None)
    if carried is not None:
        tx = carried[1]
        if exc is None:
            tx.__exit__(None, None, None)
        else:
            tx.__exit__(type(exc), exc, exc.__traceback__)


@contextmanager
def request_connection(source: AbstractContextManager[Connection]) -> Iterator[Connection]:
    """A request's connection from `source`: the transaction its authentication carried
    (`carry`) is finished when the request ends, committed, or rolled back if it failed."""
    with source as conn:
        try:
            yield conn
        except BaseException as exc:
            finish_carried(conn, exc)
            raise
        finish_carried(conn, None)


@contextmanager
def tenant_tx(conn: Connection, agency_id: uuid.UUID | str) -> Iterator[Connection]:
    """A transaction in which row-level security shows only `agency_id`'s rows."""
    carried = _CARRIED.pop(conn, None)
    if carried is not None:
        if carried[0] == str(agency_id):
            # The request's authentication transaction, already scoped to this agency.
            tx = carried[1]
            try:
                yield conn
            except BaseException as exc:
                tx.__exit__(type(exc), exc, exc.__traceback__)
                raise
            tx.__exit__(None, None, None)
            return
        carried[1].__exit__(None, None, None)
    with conn.transaction():
        conn.execute(
            "SELECT set_config('app.agency_id', %s, true),"
            " set_config('statement_timeout', %s, true)",
            (str(agency_id), str(STATEMENT_TIMEOUT_MS)),
        )
        yield conn


def enter_tenant(conn: Connection, agency_id: uuid.UUID) -> None:
    """Set the tenant inside an open transaction: sign-up creates the agency (through a
    SECURITY DEFINER function) and then writes its first rows as that tenant, atomically."""
    conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(agency_id),))


@contextmanager
def system_tx(conn: Connection) -> Iterator[Connection]:
    """A transaction with no tenant: it sees no tenant rows, only SECURITY DEFINER functions."""
    finish_carried(conn, None)
    with conn.transaction():
        conn.execute(
            "SELECT set_config('statement_timeout', %s, true)", (str(STATEMENT_TIMEOUT_MS),)
        )
        yield conn


def is_unique_violation(exc: BaseException) -> bool:
    return isinstance(exc, pg_errors.UniqueViolation)
