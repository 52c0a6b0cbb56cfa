"""HTTP routes of the caller's agency (served by api/agency.py):

    GET/PATCH /api/agency                    the agency and its settings (PATCH: admin)
    GET/POST  /api/agency/keys               list, create API keys (admin)
    DELETE    /api/agency/keys/{key_id}      revoke a key (admin)
    POST      /api/agency/external-id/rotate a new ExternalId (admin)
    GET       /api/agency/export             all of the agency's data, streamed JSON (admin)
    DELETE    /api/agency                    delete the agency and every row of it (admin)

Cold start: api/agency.py is a read function; nothing here loads botocore.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from shared.kit.http import errors
from shared.web import ERRORS, AdminDep, CallerDep, Conn, DepsDep, Now

from . import service
from .schemas import AgencyOut, KeyCreatedOut, KeyCreateIn, KeyOut, RotationOut, SettingsPatch

agency_router = APIRouter(tags=["agency"])

# ---- settings, keys, rotation ---------------------------------------------------------------


@agency_router.get("/api/agency", response_model=AgencyOut, responses=ERRORS)
def get_agency(caller: CallerDep, conn: Conn) -> AgencyOut:
    return service.read(conn, caller)


@agency_router.patch("/api/agency", response_model=AgencyOut, responses=ERRORS)
def patch_agency(body: SettingsPatch, caller: AdminDep, conn: Conn) -> AgencyOut:
    """Change settings (admin): name, contact_email, default_regions (for accounts linked from
    now on), cloudtrail_retention_days (1-365), cloudtrail_backfill_days (1-90)."""
    return service.update(conn, caller, body)


@agency_router.get("/api/agency/keys", response_model=list[KeyOut], responses=ERRORS)
def list_keys(caller: AdminDep, conn: Conn) -> list[KeyOut]:
    return service.list_keys(conn, caller)


@agency_router.post(
    "/api/agency/keys", status_code=201, response_model=KeyCreatedOut, responses=ERRORS
)
def create_key(body: KeyCreateIn, caller: AdminDep, conn: Conn) -> KeyCreatedOut:
    """Create an API key (admin). The key is in this response only; we keep its hash."""
    return service.create_key(conn, caller, name=body.name, role=body.role)


@agency_router.delete("/api/agency/keys/{key_id}", response_model=KeyOut, responses=ERRORS)
def revoke_key(key_id: uuid.UUID, caller: AdminDep, conn: Conn, now: Now) -> KeyOut:
    """Revoke a key (admin; idempotent). The agency's last live admin key cannot be revoked."""
    return service.revoke_key(conn, caller, key_id, now)


@agency_router.post("/api/agency/external-id/rotate", response_model=RotationOut, responses=ERRORS)
def rotate_external_id(caller: AdminDep, conn: Conn, now: Now) -> RotationOut:
    """A new ExternalId (admin). Linked accounts keep working with the value they were verified
    with until their trust policy has the new one and they verify again."""
    return service.rotate(conn, caller, now)


# ---- data rights: export, deletion ----------------------------------------------------------

_EXPORT_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "every row of the agency in every table, streamed: "
        '{"format", "agency_id", "exported_at", "tables": {table: [row, ...]}}',
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


@agency_router.get(
    "/api/agency/export", response_model=None, responses={**_EXPORT_RESPONSE, **errors(403)}
)
def export_agency(caller: AdminDep, conn: Conn, deps: DepsDep, now: Now) -> StreamingResponse:
    """Export all of the agency's data as JSON (admins; audited)."""
    tables = service.start_export(conn, caller.agency_id, caller.actor)
    # `conn` goes back to the pool when this returns; the pages are read on connections lent
    # one page at a time, so none is held while the client downloads.
    chunks = service.export_chunks(deps.connection, caller.agency_id, tables, now=now)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        chunks,
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="cloudagencyops-export-{stamp}.json"'
        },
    )


@agency_router.delete("/api/agency", status_code=204, responses=errors(403, 409))
def delete_agency(caller: AdminDep, conn: Conn) -> Response:
    """Delete the agency and every row of it (admins). Idempotent. Refused (409) while a paid
    subscription is active: cancel it in the billing portal first. The key used goes too:
    a later call with it answers 401."""
    service.delete_agency(conn, caller.agency_id)
    return Response(status_code=204)
