"""Clients: an agency's grouping of its linked accounts (name, notes; an account belongs to at
most one client: `cao.client_accounts` is keyed by the account).

Callers run these inside `tenant_tx`. `scope_of` turns a client into the account filter the
cost reads, forecasts and budgets use: its linked accounts and their AWS account IDs (a
management account's rows bring its members, as the `account_id` filter of the cost reads does).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import kwargs_row

from shared.db import Connection
from shared.kit.schemas import Row

MAX_CLIENTS = 1000  # per agency


class ClientRow(Row):
    id: uuid.UUID
    name: str
    notes: str
    account_ids: list[uuid.UUID]
    created_at: datetime
    updated_at: datetime


_SELECT = (
    "SELECT c.id, c.name, c.notes, coalesce(array_agg(a.account_id ORDER BY a.account_id)"
    " FILTER (WHERE a.account_id IS NOT NULL), '{}') AS account_ids, c.created_at, c.updated_at"
    " FROM cao.clients c LEFT JOIN cao.client_accounts a ON a.client_id = c.id"
)


def list_all(conn: Connection, agency_id: uuid.UUID) -> list[ClientRow]:
    cur = conn.cursor(row_factory=kwargs_row(ClientRow.model_construct))
    return cur.execute(
        _SELECT + " WHERE c.agency_id = %s GROUP BY c.id ORDER BY c.name, c.id", (agency_id,)
    ).fetchall()


def get(
    conn: Connection, agency_id: uuid.UUID, client_id: uuid.UUID, *, lock: bool = False
) -> ClientRow | None:
    if lock:
        conn.execute(
            "SELECT 1 FROM cao.clients WHERE agency_id = %s AND id = %s FOR UPDATE",
            (agency_id, client_id),
        )
    cur = conn.cursor(row_factory=kwargs_row(ClientRow.model_construct))
    return cur.execute(
        _SELECT + " WHERE c.agency_id = %s AND c.id = %s GROUP BY c.id", (agency_id, client_id)
    ).fetchone()


def count(conn: Connection, agency_id: uuid.UUID) -> int:
    """Clients of the agency, under a per-agency transaction lock (the cap is checked safely)."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"cao.clients:{agency_id}",)
    )
    row = conn.execute("SELECT count(*) FROM cao.clients WHERE agency_id = %s", (agency_id,))
    found = row.fetchone()
    return int(found[0]) if found else 0


def name_taken(
    conn: Connection, agency_id: uuid.UUID, name: str, other_than: uuid.UUID | None = None
) -> bool:
    row = conn.execute(
        "SELECT 1 FROM cao.clients WHERE agency_id = %s AND name = %s AND id IS DISTINCT FROM %s",
        (agency_id, name, other_than),
    ).fetchone()
    return row is not None


def insert(conn: Connection, agency_id: uuid.UUID, name: str, notes: str) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO cao.clients (agency_id, name, notes) VALUES (%s, %s, %s) RETURNING id",
        (agency_id, name, notes),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def update(
    conn: Connection,
    agency_id: uuid.UUID,
    client_id: uuid.UUID,
    *,
    name: str | None,
    notes: str | None,
) -> None:
    conn.execute(
        "UPDATE cao.clients SET name = coalesce(%s, name), notes = coalesce(%s, notes),"
        " updated_at = now() WHERE agency_id = %s AND id = %s",
        (name, notes, agency_id, client_id),
    )


def delete(conn: Connection, agency_id: uuid.UUID, client_id: uuid.UUID) -> bool:
    """Delete the client (its account assignments and budgets go with it)."""
    cur = conn.execute(
        "DELETE FROM cao.clients WHERE agency_id = %s AND id = %s", (agency_id, client_id)
    )
    return cur.rowcount > 0


def assigned_elsewhere(
    conn: Connection, agency_id: uuid.UUID, client_id: uuid.UUID, account_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """Those of `account_ids` that belong to another client -> that client."""
    rows = conn.execute(
        "SELECT account_id, client_id FROM cao.client_accounts"
        " WHERE agency_id = %s AND account_id = ANY(%s) AND client_id <> %s",
        (agency_id, list(account_ids), client_id),
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def set_accounts(
    conn: Connection, agency_id: uuid.UUID, client_id: uuid.UUID, account_ids: Sequence[uuid.UUID]
) -> None:
    """Make `account_ids` exactly the client's accounts (none may belong to another client:
    the primary key refuses it)."""
    conn.execute(
        "DELETE FROM cao.client_accounts WHERE agency_id = %s AND client_id = %s"
        " AND NOT account_id = ANY(%s)",
        (agency_id, client_id, list(account_ids)),
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO cao.client_accounts (agency_id, client_id, account_id)"
            " VALUES (%s, %s, %s) ON CONFLICT (account_id) DO NOTHING",
            [(agency_id, client_id, a) for a in account_ids],
        )


@dataclass(frozen=True)
class Scope:
    """A client as an account filter: its linked accounts and their AWS account IDs."""

    account_ids: tuple[uuid.UUID, ...]
    aws_account_ids: tuple[str, ...]


def scope_of(conn: Connection, agency_id: uuid.UUID, client_id: uuid.UUID) -> Scope | None:
    """The client's accounts; None when the agency has no such client."""
    exists = conn.execute(
        "SELECT 1 FROM cao.clients WHERE agency_id = %s AND id = %s", (agency_id, client_id)
    ).fetchone()
    if exists is None:
        return None
    rows = conn.execute(
        "SELECT a.id, a.aws_account_id FROM cao.client_accounts c"
        " JOIN cao.accounts a ON a.agency_id = c.agency_id AND a.id = c.account_id"
        " WHERE c.agency_id = %s AND c.client_id = %s ORDER BY a.id",
        (agency_id, client_id),
    ).fetchall()
    return Scope(tuple(r[0] for r in rows), tuple(r[1] for r in rows))


def client_of_accounts(conn: Connection, agency_id: uuid.UUID) -> dict[uuid.UUID, uuid.UUID]:
    """Every assigned linked account -> its client."""
    rows = conn.execute(
        "SELECT account_id, client_id FROM cao.client_accounts WHERE agency_id = %s", (agency_id,)
    ).fetchall()
    return {r[0]: r[1] for r in rows}
