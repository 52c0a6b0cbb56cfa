"""Vercel function: the weekly trust probe of every linked account (Vercel Cron, GET;
`functions.onboard.routes.verify_cron_router`)."""

from functions.onboard.routes import verify_cron_router
from shared.web import create_app

routers = (verify_cron_router,)
app = create_app(*routers)
