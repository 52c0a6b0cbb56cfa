"""Vercel function: forecasts, budgets and spend anomalies (with what changed)."""

from functions.alerts.routes import alerts_router
from shared.web import create_app

routers = (alerts_router,)
app = create_app(*routers)
