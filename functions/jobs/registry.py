"""The job kinds the sync worker runs, and who runs each: the one place to register a kind.

A handler runs one claimed job to its end:

    handler(conn, lease, ours, clock, *, run_id) -> None

`conn` is an autocommit connection outside any transaction; `lease` the job's lease
(`shared.store.jobs.Lease`); `ours` our own AWS client factory (to assume the account's role);
`clock` returns aware UTC datetimes; `run_id` the run record the consumer opened. The handler
reads in short transactions, calls AWS outside any transaction, and writes its results in a
transaction that starts with `jobs.fence(conn, lease)` and ends the job (`jobs.complete`,
`jobs.fail` or `jobs.pause`) and the run (`jobs.finish_run`). A classified failure is recorded
that way and the handler returns normally (the delivery is acknowledged); any exception is left
to the consumer: LeaseLostError closes the run as superseded, anything else is redelivered, and
at the last allowed delivery the job ends `failed`.

Handlers are named by import path and loaded on first use, so dispatching (which only needs
the kinds) never imports a sync module, and no sync module imports another.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from shared.aws import ClientFactory
    from shared.db import Connection
    from shared.store.jobs import Lease


class JobHandler(Protocol):
    def __call__(
        self,
        conn: Connection,
        lease: Lease,
        ours: ClientFactory,
        clock: Callable[[], datetime],
        *,
        run_id: uuid.UUID,
    ) -> None: ...


# kind -> "module:function" (or a handler itself, e.g. in tests). One line per kind.
HANDLERS: dict[str, str | JobHandler] = {
    "costs": "functions.sync_costs.sync:run",
    "cloudtrail": "functions.sync_cloudtrail.handler:run",
}


def kinds() -> tuple[str, ...]:
    """The kinds that have a handler: the only ones dispatched."""
    return tuple(HANDLERS)


def handler_for(kind: str) -> JobHandler | None:
    """The handler of `kind`, loaded on first use; None when no handler is registered."""
    entry = HANDLERS.get(kind)
    if entry is None or not isinstance(entry, str):
        return entry
    module, _, name = entry.partition(":")
    handler: JobHandler = getattr(importlib.import_module(module), name)
    return handler
