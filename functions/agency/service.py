"""API keys of an agency: create (shown once), list, revoke; and the operator's rescue key.

Admins manage keys. A key's plaintext exists only in the response that creates it; the store
keeps its SHA-256 and a short display prefix. Revoking the last live admin key is refused: an
agency would otherwise lock itself out (the operator command exists for lost keys, not for
this).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from shared import auth
from shared.auth import Caller
from shared.db import Connection, tenant_tx
from shared.errors import ConflictError, NotFoundError
from shared.store import agencies, audit, keys
from shared.store.keys import KeyRow

MAX_LIVE_KEYS = 50
OPERATOR_ACTOR = "operator"


@dataclass(frozen=True, repr=False)
class CreatedKey:
    row: KeyRow
    plaintext: str

    def __repr__(self) -> str:
        return f"CreatedKey(id={self.row.id})"


def _create(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    name: str,
    role: str,
    actor: str,
    created_by: uuid.UUID | None,
) -> CreatedKey:
    if keys.count_live(conn, agency_id) >= MAX_LIVE_KEYS:
        raise ConflictError(
            f"an agency can hold at most {MAX_LIVE_KEYS} live API keys: revoke unused ones first"
        )
    new = auth.generate_key()
    row = keys.insert(
        conn,
        agency_id,
        name=name,
        role=role,
        key_hash=new.key_hash,
        key_prefix=new.display_prefix,
        created_by=created_by,
    )
    audit.record(conn, agency_id, actor, "key.created", str(row.id), {"role": role, "name": name})
    return CreatedKey(row, new.plaintext)


def create_key(conn: Connection, caller: Caller, *, name: str, role: str) -> CreatedKey:
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        return _create(
            conn,
            caller.agency_id,
            name=name,
            role=role,
            actor=caller.actor,
            created_by=caller.key_id,
        )


def list_keys(conn: Connection, caller: Caller) -> list[KeyRow]:
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        return keys.list_keys(conn, caller.agency_id)


def revoke_key(conn: Connection, caller: Caller, key_id: uuid.UUID, now: datetime) -> KeyRow:
    """Revoke a key of the caller's agency (idempotent); 404 for any other agency's key."""
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        row = keys.get(conn, caller.agency_id, key_id)
        if row is None:
            raise NotFoundError("no such API key in this agency")
        if row.revoked_at is not None:
            return row
        if row.role == "admin" and keys.count_live(conn, caller.agency_id, "admin") <= 1:
            raise ConflictError(
                "this is the agency's last live admin key: create another admin key first"
            )
        keys.revoke(conn, caller.agency_id, key_id, now)
        audit.record(conn, caller.agency_id, caller.actor, "key.revoked", str(key_id), {})
        revoked = keys.get(conn, caller.agency_id, key_id)
    assert revoked is not None
    return revoked


def issue_operator_admin_key(conn: Connection, agency_id: uuid.UUID) -> CreatedKey:
    """A new admin key for an agency that lost its own (operator command; audited)."""
    with tenant_tx(conn, agency_id):
        if agencies.get(conn, agency_id) is None:
            raise NotFoundError(f"no agency {agency_id}")
        return _create(
            conn,
            agency_id,
            name="operator-issued admin key",
            role="admin",
            actor=OPERATOR_ACTOR,
            created_by=None,
        )
