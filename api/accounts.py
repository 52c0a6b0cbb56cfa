"""Vercel function: client accounts. Serves onboarding's link routes (link, bulk link,
discovered members, verify: `functions.onboard.routes.link_router`), the accounts' own routes
(list and detail with sync health, edit, unlink: `functions.accounts.routes.accounts_router`)
and "sync now" (`functions.sync_costs.routes.sync_router`).

Keep `link_router` first in `routers`: it declares /api/accounts/discovered, which must be
matched before any /api/accounts/{account_id} route.
"""

from functions.accounts.routes import accounts_router
from functions.onboard.routes import link_router
from functions.sync_costs.routes import sync_router
from shared.web import create_app

routers = (link_router, accounts_router, sync_router)
app = create_app(*routers)
