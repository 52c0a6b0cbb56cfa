"""Vercel function: clients, the agency's grouping of its accounts."""

from functions.clients.routes import clients_router
from shared.web import create_app

routers = (clients_router,)
app = create_app(*routers)
