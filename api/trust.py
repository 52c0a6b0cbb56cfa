"""Vercel function: the public trust documents.

Routes: `/security` and `/subprocessors` (the readable page for a browser, else JSON),
`/api/security`, `/api/subprocessors`, `/.well-known/security.txt`; all but `/api/*` reach this
file through vercel.json rewrites.
"""

from functions.trust.routes import trust_router
from shared.web import create_app

routers = (trust_router,)
app = create_app(*routers)
