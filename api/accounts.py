"""Vercel function: client accounts (`functions.accounts.routes.accounts_router`): linking a
client role, bulk linking discovered members, verifying (onboarding's use cases), and the
accounts themselves: list and detail with sync health, edit, unlink, "sync now"."""

from functions.accounts.routes import accounts_router
from shared.web import create_app

routers = (accounts_router,)
app = create_app(*routers)
