"""Vercel function: the public trust documents (subprocessors, security, security.txt)."""

from functions.trust.routes import trust_router
from shared.web import create_app

routers = (trust_router,)
app = create_app(*routers)
