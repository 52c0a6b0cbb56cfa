"""Vercel function: the caller's agency: settings, API keys, ExternalId rotation; export and
deletion of all its data (`functions.agency.routes.agency_router`)."""

from functions.agency.routes import agency_router
from shared.web import create_app

routers = (agency_router,)
app = create_app(*routers)
