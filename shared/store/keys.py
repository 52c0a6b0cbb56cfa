"""API keys of an agency: hashes and metadata only (the key itself is never stored).

Authentication (hash -> agency) is the SECURITY DEFINER function `cao.authenticate_key` used by
`shared.auth`; this module is the agency's own view: create, list, revoke. Every function runs
inside `tenant_tx(conn, agency_id)` and filters on the agency id as well.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.db import Connection

_COLUMNS = "id, name, role, key_prefix, created_at, created_by, last_used_at, revoked_at"
MAX_LIST = 500


@dataclass(frozen=True)
class KeyRow:
    id: uuid.UUID
    name: str
    role: str
    key_prefix: str
    created_at: datetime
    created_by: uuid.UUID | None
    last_used_at: datetime | None
    revoked_at: datetime | None


def insert(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    name: str,
    role: str,
    key_hash: bytes,
    key_prefix: str,
    created_by: uuid.UUID | None,
) -> KeyRow:
    row = conn.execute(
        "INSERT INTO cao.api_keys (agency_id, name, role, key_hash, key_prefix, created_by)"  # noqa: S608 - constant columns
        f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (agency_id, name, role, key_hash, key_prefix, created_by),
    ).fetchone()
    if row is None:  # pragma: no cover
        raise RuntimeError("insert returned nothing")
    return KeyRow(*row)


def list_keys(conn: Connection, agency_id: uuid.UUID) -> list[KeyRow]:
    """The agency's keys, live ones first, newest first (bounded)."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM cao.api_keys WHERE agency_id = %s"  # noqa: S608 - constant
        " ORDER BY revoked_at IS NOT NULL, created_at DESC, id LIMIT %s",
        (agency_id, MAX_LIST),
    ).fetchall()
    return [KeyRow(*r) for r in rows]


def get(conn: Connection, agency_id: uuid.UUID, key_id: uuid.UUID) -> KeyRow | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM cao.api_keys WHERE agency_id = %s AND id = %s",  # noqa: S608
        (agency_id, key_id),
    ).fetchone()
    return KeyRow(*row) if row else None


def revoke(conn: Connection, agency_id: uuid.UUID, key_id: uuid.UUID, now: datetime) -> None:
    """Revoke a live key (a revoked key keeps its first revocation time)."""
    conn.execute(
        "UPDATE cao.api_keys SET revoked_at = %s"
        " WHERE agency_id = %s AND id = %s AND revoked_at IS NULL",
        (now, agency_id, key_id),
    )


def count_live(conn: Connection, agency_id: uuid.UUID, role: str | None = None) -> int:
    """Live (unrevoked) keys of the agency, of `role` when given. Locks them (FOR UPDATE) so two
    concurrent revocations cannot both see 'another admin key remains'."""
    rows = conn.execute(
        "SELECT id FROM cao.api_keys WHERE agency_id = %s AND revoked_at IS NULL"
        " AND (%s::text IS NULL OR role = %s::text) FOR UPDATE",
        (agency_id, role, role),
    ).fetchall()
    return len(rows)
