"""Vercel function: onboarding material (policies, CloudFormation templates, quick-create link)."""

from functions.onboard.routes.onboarding import onboarding_router
from shared.web import create_app

routers = (onboarding_router,)
app = create_app(*routers)
