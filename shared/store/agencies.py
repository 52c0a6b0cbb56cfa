"""Agencies: creation (sign-up), settings, and their ExternalIds.

`create` runs the SECURITY DEFINER function `cao.create_agency` (inside `system_tx`: before the
agency exists there is no tenant). Everything else runs inside `tenant_tx(conn, agency_id)` and
also filters on the agency id, so a bug in one of the two guards is not a leak.

The ExternalId value lives in `cao.external_ids.value` only. An agency has one current value
(`retired_at IS NULL`); rotation retires it and inserts the next. Accounts reference the value
they were last verified with (`accounts.external_id_id`), so a retired value is still read for
those accounts until they verify with the new one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from shared.db import Connection


@dataclass(frozen=True)
class AgencyRow:
    id: uuid.UUID
    name: str
    contact_email: str
    created_at: datetime
    default_regions: list[str]
    cloudtrail_retention_days: int
    cloudtrail_backfill_days: int
    billing_status: str
    plan: str
    trial_ends_at: datetime


@dataclass(frozen=True, repr=False)
class ExternalIdRow:
    """One ExternalId of an agency. The repr hides the value (it is sensitive configuration)."""

    id: uuid.UUID
    value: str
    created_at: datetime
    retired_at: datetime | None

    def __repr__(self) -> str:
        return f"ExternalIdRow(id={self.id}, retired_at={self.retired_at})"


_AGENCY_COLUMNS = (
    "id, name, contact_email, created_at, default_regions, cloudtrail_retention_days,"
    " cloudtrail_backfill_days, billing_status, plan, trial_ends_at"
)
# The only columns settings may change. Billing columns are written by webhooks only.
SETTINGS_COLUMNS = frozenset(
    {
        "name",
        "contact_email",
        "default_regions",
        "cloudtrail_retention_days",
        "cloudtrail_backfill_days",
    }
)


def create(
    conn: Connection,
    *,
    name: str,
    contact_email: str,
    external_id: str,
    key_hash: bytes,
    key_prefix: str,
) -> tuple[uuid.UUID, uuid.UUID]:
    """Create an agency with its first ExternalId and admin key: (agency_id, key_id)."""
    row = conn.execute(
        "SELECT agency_id, key_id FROM cao.create_agency(%s, %s, %s, %s, %s)",
        (name, contact_email, external_id, key_hash, key_prefix),
    ).fetchone()
    if row is None:  # pragma: no cover - the function always returns a row or raises
        raise RuntimeError("cao.create_agency returned nothing")
    return row[0], row[1]


def get(conn: Connection, agency_id: uuid.UUID) -> AgencyRow | None:
    row = conn.execute(
        f"SELECT {_AGENCY_COLUMNS} FROM cao.agencies WHERE id = %s",  # noqa: S608 - constant
        (agency_id,),
    ).fetchone()
    return AgencyRow(*row) if row else None


def update_settings(
    conn: Connection, agency_id: uuid.UUID, changes: Mapping[str, Any]
) -> AgencyRow | None:
    """Apply `changes` (settings columns only) and return the agency; None if it is not there."""
    unknown = set(changes) - SETTINGS_COLUMNS
    if unknown:
        raise ValueError(f"not settings columns: {sorted(unknown)}")
    if not changes:
        return get(conn, agency_id)
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in changes
    )
    query = sql.SQL("UPDATE cao.agencies SET {} WHERE id = %(agency_id)s RETURNING {}").format(
        assignments, sql.SQL(_AGENCY_COLUMNS)
    )
    row = conn.execute(query, {**changes, "agency_id": agency_id}).fetchone()
    return AgencyRow(*row) if row else None


def current_external_id(conn: Connection, agency_id: uuid.UUID) -> ExternalIdRow | None:
    row = conn.execute(
        "SELECT id, value, created_at, retired_at FROM cao.external_ids"
        " WHERE agency_id = %s AND retired_at IS NULL",
        (agency_id,),
    ).fetchone()
    return ExternalIdRow(*row) if row else None


def external_id(
    conn: Connection, agency_id: uuid.UUID, external_id_id: uuid.UUID
) -> ExternalIdRow | None:
    """One ExternalId of the agency by its id, current or retired."""
    row = conn.execute(
        "SELECT id, value, created_at, retired_at FROM cao.external_ids"
        " WHERE agency_id = %s AND id = %s",
        (agency_id, external_id_id),
    ).fetchone()
    return ExternalIdRow(*row) if row else None


def rotate_external_id(
    conn: Connection, agency_id: uuid.UUID, new_value: str, now: datetime
) -> ExternalIdRow:
    """Retire the current ExternalId and make `new_value` current (one transaction: caller's)."""
    conn.execute(
        "UPDATE cao.external_ids SET retired_at = %s WHERE agency_id = %s AND retired_at IS NULL",
        (now, agency_id),
    )
    row = conn.execute(
        "INSERT INTO cao.external_ids (agency_id, value, created_at) VALUES (%s, %s, %s)"
        " RETURNING id, value, created_at, retired_at",
        (agency_id, new_value, now),
    ).fetchone()
    if row is None:  # pragma: no cover
        raise RuntimeError("insert returned nothing")
    return ExternalIdRow(*row)


def purge_unused_external_ids(conn: Connection, agency_id: uuid.UUID) -> int:
    """Delete retired ExternalIds that no account references any more; returns how many."""
    cur = conn.execute(
        "DELETE FROM cao.external_ids e WHERE e.agency_id = %s AND e.retired_at IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM cao.accounts a"
        "                 WHERE a.agency_id = e.agency_id AND a.external_id_id = e.id)",
        (agency_id,),
    )
    return cur.rowcount
