"""Route: GET /api/audit, admins (served by api/audit.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from functions.audit import schemas
from functions.audit import service as audit
from shared.kit.http import Cursor, Limit, Since, Until, documented, json_response
from shared.kit.pages import DEFAULT_LIMIT, clamp_limit
from shared.web import AdminDep, Conn

audit_router = APIRouter(tags=["audit"])


@audit_router.get("/api/audit", response_model=None, responses=documented(schemas.AuditPage, 403))
def list_audit(
    *,
    caller: AdminDep,
    conn: Conn,
    action: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9_.:-]{1,64}\*?$",
            description="an action ('runbook.deleted') or a prefix ending in * ('runbook.*')",
        ),
    ] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The agency's audit log (admins), newest first."""
    page = audit.page(
        conn,
        caller.agency_id,
        action=action,
        since=since,
        until=until,
        limit=clamp_limit(limit),
        cursor=cursor,
    )
    return json_response(page)
