"""Routes: GET /api/agency/export, DELETE /api/agency, admins (served by api/agency.py)."""

from __future__ import annotations

import itertools
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from functions.reads import data
from shared.kit.http import errors
from shared.web import AdminDep, Conn, Now

data_router = APIRouter(tags=["agency"])

_EXPORT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "every row of the agency in every table, streamed: "
        '{"format", "agency_id", "exported_at", "tables": {table: [row, ...]}}',
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@data_router.get(
    "/api/agency/export", response_model=None, responses={**_EXPORT_RESPONSE, **errors(403)}
)
def export_agency(caller: AdminDep, conn: Conn, now: Now) -> StreamingResponse:
    """Export all of the agency's data as JSON (admins; audited)."""
    data.start_export(conn, caller.agency_id, caller.actor)
    chunks = data.export_chunks(conn, caller.agency_id, now=now)
    # The first chunk is produced here, so a failure before any byte is sent is still an
    # ordinary error response (afterwards the status line is gone and the JSON is cut short).
    first = next(chunks)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        itertools.chain([first], chunks),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="cloudagencyops-export-{stamp}.json"'
        },
    )


@data_router.delete("/api/agency", status_code=204, responses=errors(403, 409))
def delete_agency(caller: AdminDep, conn: Conn) -> Response:
    """Delete the agency and every row of it (admins). Idempotent. Refused (409) while a paid
    subscription is active: cancel it in the billing portal first. The key used goes too:
    a later call with it answers 401."""
    data.delete_agency(conn, caller.agency_id)
    return Response(status_code=204)
