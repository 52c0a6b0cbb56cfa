"""The job kinds the sync worker runs, and who runs each: the one place to register a handler.

A handler runs one claimed job to its end:

    handler(ctx: JobContext) -> None

(`functions.jobs.schemas.JobContext`: conn, lease, ours, clock, run_id, pacer). `ctx.conn` is
an autocommit connection outside any transaction. The handler reads in short transactions,
calls AWS outside any transaction, and writes its results in a transaction that starts with
`jobs.fence(conn, lease)` and ends the job (`jobs.complete`, `jobs.fail` or `jobs.pause`) and
the run (`jobs.finish_run`). A classified failure is recorded that way and the handler returns
normally (the delivery is acknowledged); any exception is left to the consumer: LeaseLostError
closes the run as superseded, anything else is redelivered, and at the last allowed delivery
the job ends `failed`.

The kinds themselves are the vocabulary of `shared.store.jobs.JOB_KINDS` (what the dispatcher
publishes); every one of them has a handler here (tests/jobs/test_registry.py checks it).

Only the worker imports this module: the handlers load botocore, which the dispatcher's and
"sync now"'s functions must not load at cold start. No sync module imports another.
"""

from __future__ import annotations

from collections.abc import Callable

from functions.alerts import service as alerts
from functions.jobs.schemas import JobContext
from functions.sync_cloudtrail import service as cloudtrail
from functions.sync_costs import service as costs

JobHandler = Callable[[JobContext], None]


def costs_then_alerts(ctx: JobContext) -> None:
    """The costs job: the sync, then the evaluation of what it snapshotted (budgets and
    anomalies: functions/alerts), never on a read request."""
    started = ctx.clock()
    costs.run(ctx)
    lease = ctx.lease
    alerts.after_cost_sync(
        ctx.conn, lease.agency_id, lease.account_id, since=started, now=ctx.clock()
    )


# kind -> its handler. One line per kind of shared.store.jobs.JOB_KINDS.
HANDLERS: dict[str, JobHandler] = {
    "costs": costs_then_alerts,
    "cloudtrail": cloudtrail.run,
}


def handler_for(kind: str) -> JobHandler | None:
    """The handler of `kind`; None when no handler is registered."""
    return HANDLERS.get(kind)
