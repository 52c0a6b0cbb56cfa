"""Vercel function: the sync dispatcher (Vercel Cron, GET /api/cron/dispatch)."""

from functions.jobs.routes import cron_router
from shared.web import create_app

routers = (cron_router,)
app = create_app(*routers)
