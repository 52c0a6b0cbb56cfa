"""The agency: creation (sign-up), settings, ExternalIds, API keys, and its data as a whole
(export, deletion).

`create` runs the SECURITY DEFINER function `cao.create_agency` (inside `system_tx`: before the
agency exists there is no tenant). Everything else runs inside `tenant_tx(conn, agency_id)` and
also filters on the agency id, so a bug in one of the two guards is not a leak.

ExternalIds. The value lives in `cao.external_ids.value` only. An agency has one current value
(`retired_at IS NULL`); rotation retires it and inserts the next. Accounts reference the value
they were last verified with (`accounts.external_id_id`), so a retired value is still read for
those accounts until they verify with the new one.

API keys: hashes and metadata only (the key itself is never stored). Authentication (hash ->
agency) is the SECURITY DEFINER function `cao.authenticate_key` used by `shared.auth`; the
functions here are the agency's own view: create, list, revoke.

Export and deletion. The tenant tables are discovered from the catalogue (every table of schema
`cao` the app role can read that has an `agency_id` column, plus `agencies` itself), so a table
added later is exported with no change here. Rows are read as JSON text made by Postgres
(`to_jsonb`), so `numeric` amounts keep every digit and are never parsed into floats on the way
out. Deletion removes the agency row; every tenant table reaches it through ON DELETE CASCADE
(directly or through `accounts`), and `cao.erase_agency_traces()` clears what lives in the
cross-tenant tables the app role cannot touch (webhook delivery records, rate-limit buckets).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from shared.db import Connection
from shared.kit.schemas import Row


class AgencyRow(Row):
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
    return AgencyRow.from_values(*row) if row else None


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
    return AgencyRow.from_values(*row) if row else None


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


_KEY_COLUMNS = "id, name, role, key_prefix, created_at, created_by, last_used_at, revoked_at"
MAX_KEYS = 500


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


def insert_key(
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
        f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_KEY_COLUMNS}",
        (agency_id, name, role, key_hash, key_prefix, created_by),
    ).fetchone()
    if row is None:  # pragma: no cover
        raise RuntimeError("insert_key returned nothing")
    return KeyRow(*row)


def list_keys(conn: Connection, agency_id: uuid.UUID) -> list[KeyRow]:
    """The agency's keys, live ones first, newest first (bounded)."""
    rows = conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM cao.api_keys WHERE agency_id = %s"  # noqa: S608 - constant
        " ORDER BY revoked_at IS NOT NULL, created_at DESC, id LIMIT %s",
        (agency_id, MAX_KEYS),
    ).fetchall()
    return [KeyRow(*r) for r in rows]


def get_key(conn: Connection, agency_id: uuid.UUID, key_id: uuid.UUID) -> KeyRow | None:
    row = conn.execute(
        f"SELECT {_KEY_COLUMNS} FROM cao.api_keys WHERE agency_id = %s AND id = %s",  # noqa: S608
        (agency_id, key_id),
    ).fetchone()
    return KeyRow(*row) if row else None


def revoke_key(conn: Connection, agency_id: uuid.UUID, key_id: uuid.UUID, now: datetime) -> None:
    """Revoke a live key (a revoked key keeps its first revocation time)."""
    conn.execute(
        "UPDATE cao.api_keys SET revoked_at = %s"
        " WHERE agency_id = %s AND id = %s AND revoked_at IS NULL",
        (now, agency_id, key_id),
    )


def count_live_keys(conn: Connection, agency_id: uuid.UUID, role: str | None = None) -> int:
    """Live (unrevoked) keys of the agency, of `role` when given. Locks them (FOR UPDATE) so two
    concurrent revocations cannot both see 'another admin key remains'."""
    rows = conn.execute(
        "SELECT id FROM cao.api_keys WHERE agency_id = %s AND revoked_at IS NULL"
        " AND (%s::text IS NULL OR role = %s::text) FOR UPDATE",
        (agency_id, role, role),
    ).fetchall()
    return len(rows)


# Columns never exported: credential material (API key, session, invitation and enrolment
# token hashes) and internal fencing tokens. Passkeys are exported: their public keys.
WITHHELD_COLUMNS = ("key_hash", "token_hash", "lease_token")


@dataclass(frozen=True)
class TenantTable:
    """A table holding an agency's rows: the column naming the agency and its primary key
    (the export reads it in keyset pages in that order)."""

    name: str
    agency_column: str
    key: tuple[str, ...]


def tenant_tables(conn: Connection) -> list[TenantTable]:
    """Every table holding an agency's rows (`agencies` first), with its primary key."""
    rows = conn.execute(
        "SELECT c.relname,"
        "  (SELECT array_agg(k.attname ORDER BY x.n) FROM pg_index i"
        "     CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS x(attnum, n)"
        "     JOIN pg_attribute k ON k.attrelid = c.oid AND k.attnum = x.attnum"
        "    WHERE i.indrelid = c.oid AND i.indisprimary)"
        " FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid"
        " WHERE n.nspname = 'cao' AND c.relkind IN ('r', 'p')"
        " AND ((a.attname = 'agency_id' AND c.relname <> 'agencies')"
        "      OR (a.attname = 'id' AND c.relname = 'agencies'))"
        " AND NOT a.attisdropped AND has_table_privilege(c.oid, 'SELECT')"
        " ORDER BY c.relname <> 'agencies', c.relname"
    ).fetchall()
    tables = []
    for name, key in rows:
        if not key:
            raise AssertionError(f"cao.{name} has no primary key: the export pages by it")
        tables.append(TenantTable(name, "id" if name == "agencies" else "agency_id", tuple(key)))
    return tables


def export_page(
    conn: Connection,
    table: TenantTable,
    agency_id: uuid.UUID,
    after: tuple[Any, ...] | None,
    limit: int,
) -> list[tuple[tuple[Any, ...], str]]:
    """Up to `limit` of the agency's rows of `table` after key `after` in key order, each as
    (its key, its JSON object text rendered by Postgres)."""
    key = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(k)) for k in table.key)
    after_clause = (
        sql.SQL(" AND ({key}) > ({values})").format(
            key=key, values=sql.SQL(", ").join(sql.Placeholder() * len(table.key))
        )
        if after is not None
        else sql.SQL("")
    )
    query = sql.SQL(
        "SELECT {key}, (to_jsonb(t) - %s::text[])::text FROM cao.{table} t"
        " WHERE t.{column} = %s{after} ORDER BY {key} LIMIT %s"
    ).format(
        key=key,
        table=sql.Identifier(table.name),
        column=sql.Identifier(table.agency_column),
        after=after_clause,
    )
    params: list[Any] = [list(WITHHELD_COLUMNS), agency_id, *(after or ()), limit]
    width = len(table.key)
    return [(tuple(row[:width]), row[width]) for row in conn.execute(query, params)]


@dataclass(frozen=True)
class AgencyStanding:
    billing_status: str


def lock_agency(conn: Connection, agency_id: uuid.UUID) -> AgencyStanding | None:
    """The agency's billing status with its row locked (a concurrent webhook or deletion waits);
    None when it is already gone."""
    row = conn.execute(
        "SELECT billing_status FROM cao.agencies WHERE id = %s FOR UPDATE", (agency_id,)
    ).fetchone()
    return None if row is None else AgencyStanding(row[0])


def delete_agency(conn: Connection, agency_id: uuid.UUID) -> bool:
    """Delete the agency and, by cascade, every row of it. False when it was already gone."""
    conn.execute("SELECT cao.erase_agency_traces()")
    cur = conn.execute("DELETE FROM cao.agencies WHERE id = %s", (agency_id,))
    return cur.rowcount > 0
