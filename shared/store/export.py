"""An agency's data as a whole: discovery of its tables, streamed export, and deletion.

The tenant tables are discovered from the catalogue (every table of schema `cao` the app role
can read that has an `agency_id` column, plus `agencies` itself), so a table added later is
exported with no change here. Rows are read as JSON text made by Postgres (`to_jsonb`), so
`numeric` amounts keep every digit and are never parsed into floats on the way out.

Deletion removes the agency row; every tenant table reaches it through ON DELETE CASCADE
(directly or through `accounts`), and `cao.erase_agency_traces()` clears what lives in the
cross-tenant tables the app role cannot touch (webhook delivery records, rate-limit buckets).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from psycopg import IsolationLevel, sql

from shared.db import Connection

EXPORT_STATEMENT_TIMEOUT_MS = 120_000

# Columns never exported: credential material and internal fencing tokens.
WITHHELD_COLUMNS = ("key_hash", "lease_token")


@contextmanager
def consistent_reads(conn: Connection) -> Iterator[None]:
    """Transactions begun inside are REPEATABLE READ and READ ONLY: an export reads one
    snapshot of every table, however long it streams."""
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        yield
    finally:
        conn.isolation_level = None
        conn.read_only = None


def allow_long_reads(conn: Connection) -> None:
    """Raise this transaction's statement timeout: an export streams at the client's pace."""
    conn.execute(
        "SELECT set_config('statement_timeout', %s, true)", (str(EXPORT_STATEMENT_TIMEOUT_MS),)
    )


def tenant_tables(conn: Connection) -> list[tuple[str, str]]:
    """(table, column naming the agency) for every table holding an agency's rows."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.oid"
        " WHERE n.nspname = 'cao' AND c.relkind IN ('r', 'p') AND a.attname = 'agency_id'"
        " AND NOT a.attisdropped AND has_table_privilege(c.oid, 'SELECT')"
        " ORDER BY c.relname"
    ).fetchall()
    return [("agencies", "id")] + [(r[0], "agency_id") for r in rows if r[0] != "agencies"]


def stream_rows(conn: Connection, table: str, column: str, agency_id: uuid.UUID) -> Iterator[str]:
    """Each of the agency's rows of `table` as one JSON object text, read in batches."""
    query = sql.SQL(
        "SELECT (to_jsonb(t) - %s::text[])::text FROM cao.{table} t WHERE t.{column} = %s"
    ).format(table=sql.Identifier(table), column=sql.Identifier(column))
    with conn.cursor() as cur:
        for (text,) in cur.stream(query, (list(WITHHELD_COLUMNS), agency_id), size=500):
            yield text


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
