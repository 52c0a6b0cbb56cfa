"""Vercel function: markdown runbooks, versioned, with conditional edits."""

from functions.runbooks.routes import runbooks_router
from shared.web import create_app

routers = (runbooks_router,)
app = create_app(*routers)
