"""Vercel function: client accounts (link, edit, unlink, verify, discovered members; list and
detail with sync health).

Keep `accounts_router` first in `routers`: it declares /api/accounts/discovered, which must be
matched before any /api/accounts/{account_id} route.
"""

from functions.jobs.routes import sync_router
from functions.onboard.routes.accounts import accounts_router
from functions.reads.routes import accounts_router as account_reads_router
from shared.web import create_app

routers = (accounts_router, account_reads_router, sync_router)
app = create_app(*routers)
