"""HTTP routes of the job system. Served by:

    api/cron.py         cron_router     GET /api/cron/dispatch (Vercel Cron, bearer CRON_SECRET)
    api/sync_worker.py  worker_router   POST /api/sync_worker (Vercel Queues push deliveries,
                                        to the triggered function's own path; private: the
                                        function has a queue trigger; confirmed with the queue
                                        service before any work, functions/jobs/worker.py)

"Sync now" (POST /api/accounts/{account_id}/sync) is an accounts route calling
`service.request_sync`. The worker module (the queue SDK's subscriber, the registry of job
handlers, botocore) is imported only inside the delivery route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from functions.jobs import service
from functions.jobs.schemas import DispatchOut
from shared.cron import CronDep
from shared.web import Conn, DepsDep, PublisherDep

# ---- cron -----------------------------------------------------------------------------------

cron_router = APIRouter(tags=["cron"])


@cron_router.get(
    "/api/cron/dispatch",
    responses={
        401: {"description": "missing or wrong cron bearer"},
        503: {"description": "CRON_SECRET is not configured"},
    },
    summary="Publish one sync message per due job of entitled agencies (Vercel Cron)",
)
def dispatch_due(
    _: CronDep,
    conn: Conn,
    publisher: PublisherDep,
    kind: Annotated[
        str | None,
        Query(max_length=32, description="only this job kind (default: every kind)"),
    ] = None,
) -> DispatchOut:
    kinds = service.dispatch_kinds(kind)
    report = service.dispatch(conn, publisher, kinds)
    return DispatchOut(published=report.published, failed=report.failed)


# ---- queue consumer -------------------------------------------------------------------------

worker_router = APIRouter()


@worker_router.post("/api/sync_worker", include_in_schema=False, status_code=204)
async def deliver(request: Request, deps: DepsDep) -> Response:
    """One Vercel Queues push delivery: confirmed with the queue service, then the SDK runs our
    subscriber and settles the message (400 malformed, 401 unknown to the queue service, 503
    not done: the queue redelivers)."""
    from functions.jobs import worker  # noqa: PLC0415 - registers the subscriber; worker only

    await worker.accept_push(await request.body(), request.headers, deps.queue_client())
    return Response(status_code=204)
