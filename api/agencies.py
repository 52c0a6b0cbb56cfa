"""Vercel function: public agency sign-up (rate-limited per source address)."""

from functions.onboard.routes.signup import signup_router
from shared.web import create_app

routers = (signup_router,)
app = create_app(*routers)
