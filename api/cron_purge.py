"""Vercel function: the CloudTrail crons (GET /api/cron/purge daily, /api/cron/cloudtrail
hourly)."""

from functions.sync_cloudtrail.routes import dispatch_router, purge_router
from shared.web import create_app

routers = (purge_router, dispatch_router)
app = create_app(*routers)
