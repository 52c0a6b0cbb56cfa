"""Vercel function: client accounts. Serves onboarding's link routes (link, bulk link,
discovered members, verify: `functions.onboard.routes.link_router`), the accounts' own routes
(list and detail with sync health, edit, unlink, "sync now":
`functions.accounts.routes.accounts_router`).

Keep `link_router` first in `routers`: it declares /api/accounts/discovered, which must be
matched before any /api/accounts/{account_id} route.
"""

from functions.accounts.routes import accounts_router
from functions.onboard.routes import link_router
from shared.web import create_app

routers = (link_router, accounts_router)
app = create_app(*routers)
