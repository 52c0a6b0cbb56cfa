"""Vercel function: webhooks from Polar (Standard Webhooks signatures)."""

from functions.billing.routes import webhooks_router
from shared.web import create_app

routers = (webhooks_router,)
app = create_app(*routers)
