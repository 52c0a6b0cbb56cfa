"""Vercel function: access governance (events, principals, new principals, vendor ledger)."""

from functions.access.routes import access_router
from shared.web import create_app

routers = (access_router,)
app = create_app(*routers)
