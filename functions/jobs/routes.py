"""HTTP routes of the job system. Served by:

    api/cron.py         cron_router     GET /api/cron/dispatch (Vercel Cron, bearer CRON_SECRET)
    api/accounts.py     sync_router     POST /api/accounts/{account_id}/sync ("sync now")
    api/sync_worker.py  worker_router   POST /api/sync_worker (Vercel Queues push deliveries;
                                        private: the function has a queue trigger)

Cold start: `sync_router` is served beside the read views of api/accounts.py, so this module
loads neither the queue SDK nor botocore (nor the registry of job handlers, which loads
botocore); handlers import them when they need them.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from functions.jobs import service
from functions.jobs.schemas import DispatchOut, SyncNowOut
from shared.cron import CronDep
from shared.web import ERRORS, CallerDep, Conn, Now, PublisherDep

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
    now: Now,
    kind: Annotated[
        str | None,
        Query(max_length=32, description="only this job kind (default: every kind)"),
    ] = None,
) -> DispatchOut:
    kinds = service.dispatch_kinds(kind)
    report = service.dispatch(conn, publisher, now, kinds)
    return DispatchOut(published=report.published, failed=report.failed)


# ---- sync now -------------------------------------------------------------------------------

sync_router = APIRouter(tags=["accounts"])


@sync_router.post(
    "/api/accounts/{account_id}/sync",
    status_code=202,
    responses={
        **ERRORS,
        402: {"description": "the agency's subscription does not allow syncing"},
        409: {"description": "the account is paused: verify it again first"},
        429: {"description": "too many syncs of this account; see Retry-After"},
        503: {"description": "the queue is unavailable; retry later"},
    },
    summary="Sync this account now (costs and any other registered job kind)",
)
def sync_now(
    account_id: uuid.UUID, caller: CallerDep, conn: Conn, publisher: PublisherDep, now: Now
) -> SyncNowOut:
    result = service.request_sync(conn, caller.agency_id, account_id, now, publisher=publisher)
    return SyncNowOut(queued=result.queued, in_progress=result.in_progress)


# ---- queue consumer -------------------------------------------------------------------------

worker_router = APIRouter()


@worker_router.post("/api/sync_worker", include_in_schema=False, status_code=204)
async def deliver(request: Request) -> Response:
    """One Vercel Queues push delivery: the SDK runs our subscriber and settles the message."""
    from functions.jobs import worker  # noqa: PLC0415 - registers the subscriber; worker only

    await worker.accept_push(await request.body(), request.headers)
    return Response(status_code=204)
