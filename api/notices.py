"""Vercel function: incident and sub-processor change notices sent to the agency."""

from functions.notices.routes import notices_router
from shared.web import create_app

routers = (notices_router,)
app = create_app(*routers)
