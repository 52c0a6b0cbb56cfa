"""Vercel function: public agency sign-up, rate-limited per source address
(`functions.onboard.routes.signup_router`)."""

from functions.onboard.routes import signup_router
from shared.web import create_app

routers = (signup_router,)
app = create_app(*routers)
