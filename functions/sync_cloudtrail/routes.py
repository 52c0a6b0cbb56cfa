"""HTTP routes of the CloudTrail capability. Served by:

    api/cron_purge.py   purge_router      GET /api/cron/purge       (Vercel Cron, daily)

A machine endpoint behind the cron bearer (`shared.cron`): 401 and no work without it. The
hourly CloudTrail syncs are published by the shared dispatcher (GET /api/cron/dispatch, hourly,
functions/jobs): each job carries its own next run, so one hourly dispatch serves both
the daily cost jobs and the hourly CloudTrail jobs.

Cold start: the route does not load botocore.
"""

from __future__ import annotations

from fastapi import APIRouter

from functions.sync_cloudtrail import retention
from functions.sync_cloudtrail.schemas import PurgeOut
from shared.cron import CronDep
from shared.web import Conn

CRON_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "missing or wrong cron bearer"},
    503: {"description": "CRON_SECRET is not configured"},
}


purge_router = APIRouter(tags=["cron"])


@purge_router.get(
    "/api/cron/purge",
    responses=CRON_RESPONSES,
    summary="Delete access events older than each agency's retention (Vercel Cron, daily)",
)
def purge_expired(_: CronDep, conn: Conn) -> PurgeOut:
    outcome = retention.purge(conn)
    return PurgeOut(
        deleted=outcome.total,
        agencies=len(outcome.deleted),
        batches=outcome.batches,
        more=outcome.more,
    )
