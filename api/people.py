"""Vercel function: people who sign in with passkeys: enrolment and passkeys, sign-in and
sessions, users, invitations and recovery links (`functions.people.routes.people_router`)."""

from functions.people.routes import people_router
from shared.web import create_app

routers = (people_router,)
app = create_app(*routers)
