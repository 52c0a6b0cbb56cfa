"""Vercel function: onboarding material (policies, CloudFormation templates, quick-create link;
`functions.onboard.routes.onboarding_router`)."""

from functions.onboard.routes import onboarding_router
from shared.web import create_app

routers = (onboarding_router,)
app = create_app(*routers)
