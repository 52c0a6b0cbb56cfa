"""Vercel function: costs per account, service or month (JSON, or CSV on Accept: text/csv)."""

from functions.costs.routes import costs_router
from shared.web import create_app

routers = (costs_router,)
app = create_app(*routers)
