"""HTTP routes of the read API. Each route parses its input, calls one service, and returns.

Routers (and the api file that serves each), one module each so that a function loads only
its own routes (cold start):
    costs_router      GET /api/costs (JSON, or CSV on Accept: text/csv)      api/costs.py
    access_router     GET /api/access/{events,principals,new-principals,vendor}  api/access.py
    runbooks_router   /api/runbooks[/{runbook_id}[/versions[/{version}]]]    api/runbooks.py
    audit_router      GET /api/audit (admins)                                 api/audit.py

`from functions.reads.routes import costs_router` imports only routes/costs.py (the names are
resolved lazily). Page sizes: `limit` defaults to 100 and is clamped to 500. Lists are
keyset-paginated: pass a page's `next_cursor` as `cursor` to get the next one. Another agency's
ids answer 404.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from functions.reads.routes.access import access_router
    from functions.reads.routes.audit import audit_router
    from functions.reads.routes.costs import costs_router
    from functions.reads.routes.runbooks import runbooks_router

__all__ = [
    "access_router",
    "audit_router",
    "costs_router",
    "runbooks_router",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = importlib.import_module(f"{__name__}.{name.removesuffix('_router')}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
