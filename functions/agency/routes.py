"""The agency: settings, API keys, ExternalId rotation (api/agency.py)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from fastapi import APIRouter

from functions.onboard import agency_settings, keys, rotation
from shared.web import ERRORS, AdminDep, CallerDep, Conn

if TYPE_CHECKING:
    pass


from functions.onboard.routes._common import (
    AccountOut,
    AgencyOut,
    KeyCreatedOut,
    KeyCreateIn,
    KeyOut,
    RotationOut,
    _now,
)

# ---- the agency: settings, keys, rotation ---------------------------------------------------

agency_router = APIRouter(tags=["agency"], responses=ERRORS)


@agency_router.get("/api/agency", response_model=AgencyOut)
def get_agency(caller: CallerDep, conn: Conn) -> AgencyOut:
    return AgencyOut.of(agency_settings.read(conn, caller))


@agency_router.patch("/api/agency", response_model=AgencyOut)
def patch_agency(body: agency_settings.SettingsPatch, caller: AdminDep, conn: Conn) -> AgencyOut:
    """Change settings (admin): name, contact_email, default_regions (for accounts linked from
    now on), cloudtrail_retention_days (1-365), cloudtrail_backfill_days (1-90)."""
    return AgencyOut.of(agency_settings.update(conn, caller, body))


@agency_router.get("/api/agency/keys", response_model=list[KeyOut])
def list_keys(caller: AdminDep, conn: Conn) -> list[KeyOut]:
    return [KeyOut.of(k) for k in keys.list_keys(conn, caller)]


@agency_router.post("/api/agency/keys", status_code=201, response_model=KeyCreatedOut)
def create_key(body: KeyCreateIn, caller: AdminDep, conn: Conn) -> KeyCreatedOut:
    """Create an API key (admin). The key is in this response only; we keep its hash."""
    created = keys.create_key(conn, caller, name=body.name, role=body.role)
    return KeyCreatedOut(key=KeyOut.of(created.row), api_key=created.plaintext)


@agency_router.delete("/api/agency/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: uuid.UUID, caller: AdminDep, conn: Conn) -> KeyOut:
    """Revoke a key (admin; idempotent). The agency's last live admin key cannot be revoked."""
    return KeyOut.of(keys.revoke_key(conn, caller, key_id, _now()))


@agency_router.post("/api/agency/external-id/rotate", response_model=RotationOut)
def rotate_external_id(caller: AdminDep, conn: Conn) -> RotationOut:
    """A new ExternalId (admin). Linked accounts keep working with the value they were verified
    with until their trust policy has the new one and they verify again."""
    result = rotation.rotate(conn, caller, _now())
    return RotationOut(
        external_id=result.external_id.value,
        accounts_needing_trust_update=[AccountOut.of(a) for a in result.needing_trust_update],
        next="update each listed account's trust policy (or its stack's ExternalId parameter) "
        "to the new value, then POST /api/accounts/{id}/verify",
    )
