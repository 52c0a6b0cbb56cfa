"""HTTP routes of the CloudTrail capability. Served by:

    api/cron_purge.py   purge_router      GET /api/cron/purge       (Vercel Cron, daily)
                        dispatch_router   GET /api/cron/cloudtrail  (Vercel Cron, hourly)

Both are machine endpoints behind the cron bearer (`shared.cron`): 401 and no work without it.
The hourly route publishes the due 'cloudtrail' jobs through the shared dispatcher
(functions/sync_costs/dispatch.py: the job model's one fan-out); the worker runs them.

Cold start: neither route loads botocore; the dispatcher loads the queue SDK only to publish.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from functions.sync_cloudtrail import retention
from functions.sync_costs import dispatch
from shared.cron import CronDep
from shared.web import Conn

CRON_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "missing or wrong cron bearer"},
    503: {"description": "CRON_SECRET is not configured"},
}
KIND = "cloudtrail"


def _now() -> datetime:
    return datetime.now(UTC)


purge_router = APIRouter(tags=["cron"])


class PurgeOut(BaseModel):
    deleted: int
    agencies: int
    batches: int
    more: bool


@purge_router.get(
    "/api/cron/purge",
    responses=CRON_RESPONSES,
    summary="Delete access events older than each agency's retention (Vercel Cron, daily)",
)
def purge_expired(_: CronDep, conn: Conn) -> PurgeOut:
    outcome = retention.purge(conn, now=_now())
    return PurgeOut(
        deleted=outcome.total,
        agencies=len(outcome.deleted),
        batches=outcome.batches,
        more=outcome.more,
    )


dispatch_router = APIRouter(tags=["cron"])


class DispatchOut(BaseModel):
    published: int
    failed: int


@dispatch_router.get(
    "/api/cron/cloudtrail",
    responses=CRON_RESPONSES,
    summary="Publish the due CloudTrail sync jobs of entitled agencies (Vercel Cron, hourly)",
)
def dispatch_cloudtrail(_: CronDep, conn: Conn, request: Request) -> DispatchOut:
    report = dispatch.dispatch(conn, dispatch.publisher_for(request.headers), _now(), (KIND,))
    return DispatchOut(published=report.published.get(KIND, 0), failed=report.failed)
