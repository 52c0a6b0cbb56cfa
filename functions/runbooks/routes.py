"""Routes: /api/runbooks[/{runbook_id}[/versions[/{version}]]] (api/runbooks.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response

from functions.runbooks import schemas
from functions.runbooks import service as runbooks
from shared.kit.http import Cursor, Limit, errors
from shared.kit.pages import DEFAULT_LIMIT, clamp_limit
from shared.web import CallerDep, Conn

runbooks_router = APIRouter(tags=["runbooks"])
RunbookId = Annotated[uuid.UUID, Path()]
IfMatch = Annotated[
    str | None,
    Header(max_length=200, description='the ETag of GET, e.g. "v3" (or `*`)'),
]
_ETAG_HEADER = {
    "ETag": {"description": 'the version, as "v<version>"', "schema": {"type": "string"}}
}


@runbooks_router.get("/api/runbooks", responses=errors(404))
def list_runbooks(
    *,
    caller: CallerDep,
    conn: Conn,
    account_id: Annotated[uuid.UUID | None, Query(description="only this account's")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> schemas.RunbookPage:
    """Runbooks (without their bodies), most recently updated first."""
    return runbooks.list_page(
        conn, caller.agency_id, account_id=account_id, limit=clamp_limit(limit), cursor=cursor
    )


@runbooks_router.post(
    "/api/runbooks",
    status_code=201,
    responses={201: {"headers": _ETAG_HEADER}, **errors(404, 413)},
)
def create_runbook(
    body: schemas.RunbookCreate, caller: CallerDep, conn: Conn, response: Response
) -> schemas.Runbook:
    """Create a markdown runbook (body up to 65536 characters), optionally attached to one of
    the agency's accounts."""
    created = runbooks.create(conn, caller.agency_id, caller.actor, body)
    response.headers["ETag"] = runbooks.etag(created.version)
    response.headers["Location"] = f"/api/runbooks/{created.id}"
    return created


@runbooks_router.get(
    "/api/runbooks/{runbook_id}", responses={200: {"headers": _ETAG_HEADER}, **errors(404)}
)
def get_runbook(
    runbook_id: RunbookId, caller: CallerDep, conn: Conn, response: Response
) -> schemas.Runbook:
    found = runbooks.get(conn, caller.agency_id, runbook_id)
    response.headers["ETag"] = runbooks.etag(found.version)
    return found


@runbooks_router.patch(
    "/api/runbooks/{runbook_id}",
    responses={200: {"headers": _ETAG_HEADER}, **errors(404, 409, 412, 413, 428)},
)
def update_runbook(
    *,
    runbook_id: RunbookId,
    body: schemas.RunbookPatch,
    caller: CallerDep,
    conn: Conn,
    response: Response,
    if_match: IfMatch = None,
) -> schemas.Runbook:
    """Change title, body and/or account (null detaches). Conditional: send If-Match with the
    ETag you read, or the `version` you edited; the previous version is kept."""
    updated = runbooks.update(
        conn, caller.agency_id, caller.actor, runbook_id, body, if_match=if_match
    )
    response.headers["ETag"] = runbooks.etag(updated.version)
    return updated


@runbooks_router.delete("/api/runbooks/{runbook_id}", status_code=204, responses=errors(404, 412))
def delete_runbook(
    runbook_id: RunbookId, caller: CallerDep, conn: Conn, if_match: IfMatch = None
) -> Response:
    """Delete a runbook and its versions (If-Match optional, checked when sent); audited."""
    runbooks.delete(conn, caller.agency_id, caller.actor, runbook_id, if_match=if_match)
    return Response(status_code=204)


@runbooks_router.get("/api/runbooks/{runbook_id}/versions", responses=errors(404))
def list_runbook_versions(
    *,
    runbook_id: RunbookId,
    caller: CallerDep,
    conn: Conn,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> schemas.RunbookVersionPage:
    """Previous versions, newest first."""
    return runbooks.versions_page(
        conn, caller.agency_id, runbook_id, limit=clamp_limit(limit), cursor=cursor
    )


@runbooks_router.get("/api/runbooks/{runbook_id}/versions/{version}", responses=errors(404))
def get_runbook_version(
    runbook_id: RunbookId,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    caller: CallerDep,
    conn: Conn,
) -> schemas.RunbookVersion:
    return runbooks.get_version(conn, caller.agency_id, runbook_id, version)
