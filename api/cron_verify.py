"""Vercel function: the weekly trust probe of every linked account (Vercel Cron, GET)."""

from functions.onboard.routes.cron import verify_cron_router
from shared.web import create_app

routers = (verify_cron_router,)
app = create_app(*routers)
