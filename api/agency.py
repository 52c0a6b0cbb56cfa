"""Vercel function: the caller's agency: settings, API keys, ExternalId rotation; export and
deletion of all its data."""

from functions.onboard.routes.agency import agency_router
from functions.reads.routes import data_router
from shared.web import create_app

routers = (agency_router, data_router)
app = create_app(*routers)
