"""Vercel function: the CloudTrail retention purge (Vercel Cron, GET /api/cron/purge daily)."""

from functions.sync_cloudtrail.routes import purge_router
from shared.web import create_app

routers = (purge_router,)
app = create_app(*routers)
