"""Vercel function: the agency's audit log (admins)."""

from functions.audit.routes import audit_router
from shared.web import create_app

routers = (audit_router,)
app = create_app(*routers)
