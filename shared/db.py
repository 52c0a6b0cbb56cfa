"""Postgres connections fit for Neon's pooled URL, and tenant-scoped transactions.

Behind PgBouncer in transaction mode nothing may live in the session: connections are
autocommit, every unit of work is an explicit transaction, the tenant is set with
`set_config('app.agency_id', ..., true)` (local to the transaction), and server-side prepared
statements are off (`prepare_threshold=None`). Neon computes scale to zero and restart, so
connecting has a timeout and transient failures are retried with jittered backoff.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pg_errors

from shared.errors import DatabaseUnavailableError
from shared.settings import Secret

CONNECT_TIMEOUT_S = 10
CONNECT_ATTEMPTS = 4
STATEMENT_TIMEOUT_MS = 15_000

Connection = psycopg.Connection


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
                url.reveal(),
                autocommit=True,
                prepare_threshold=None,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name=application_name,
            )
        except psycopg.OperationalError:
            if attempt == attempts:
                # The driver's message can carry the host and user: none of it goes further.
                raise DatabaseUnavailableError("the database is unreachable; retry later") from None
            sleep(random.uniform(0, delay))  # noqa: S311 - jitter, not cryptography
            delay *= 2
    raise AssertionError("unreachable")


@contextmanager
def tenant_tx(conn: Connection, agency_id: uuid.UUID | str) -> Iterator[Connection]:
    """A transaction in which row-level security shows only `agency_id`'s rows."""
    with conn.transaction():
        conn.execute(
            "SELECT set_config('app.agency_id', %s, true),"
            " set_config('statement_timeout', %s, true)",
            (str(agency_id), str(STATEMENT_TIMEOUT_MS)),
        )
        yield conn


@contextmanager
def system_tx(conn: Connection) -> Iterator[Connection]:
    """A transaction with no tenant: it sees no tenant rows, only SECURITY DEFINER functions."""
    with conn.transaction():
        conn.execute(
            "SELECT set_config('statement_timeout', %s, true)", (str(STATEMENT_TIMEOUT_MS),)
        )
        yield conn


def is_unique_violation(exc: BaseException) -> bool:
    return isinstance(exc, pg_errors.UniqueViolation)
