"""Vercel function: billing state, Polar checkout and customer portal (admins)."""

from functions.billing.routes import billing_router
from shared.web import create_app

routers = (billing_router,)
app = create_app(*routers)
