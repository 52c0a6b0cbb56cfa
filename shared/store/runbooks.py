"""Runbooks (markdown per agency, optionally attached to one of its accounts) and their
previous versions.

An update saves the row as it was into `cao.runbook_versions` and bumps `version` in the same
transaction, under a row lock taken by `get(..., lock=True)`: two concurrent editors serialise
on the lock and the second one sees the bumped version (the service turns that into 409/412).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from psycopg import sql
from psycopg.rows import kwargs_row

from shared.db import Connection
from shared.kit.schemas import Row


class RunbookRow(Row):
    id: uuid.UUID
    account_id: uuid.UUID | None
    title: str
    body: str
    version: int
    created_at: datetime
    updated_at: datetime


class RunbookSummary(Row):
    id: uuid.UUID
    account_id: uuid.UUID | None
    title: str
    version: int
    body_chars: int
    created_at: datetime
    updated_at: datetime


class VersionSummary(Row):
    version: int
    account_id: uuid.UUID | None
    title: str
    body_chars: int
    saved_at: datetime


class VersionRow(Row):
    version: int
    account_id: uuid.UUID | None
    title: str
    body: str
    saved_at: datetime


_COLUMNS = sql.SQL("id, account_id, title, body, version, created_at, updated_at")


def insert(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    title: str,
    body: str,
    account_id: uuid.UUID | None,
) -> RunbookRow:
    cur = conn.cursor(row_factory=kwargs_row(RunbookRow.model_construct))
    row = cur.execute(
        sql.SQL(
            "INSERT INTO cao.runbooks (agency_id, account_id, title, body)"
            " VALUES (%s, %s, %s, %s) RETURNING {}"
        ).format(_COLUMNS),
        (agency_id, account_id, title, body),
    ).fetchone()
    assert row is not None
    return row


def get(
    conn: Connection, agency_id: uuid.UUID, runbook_id: uuid.UUID, *, lock: bool = False
) -> RunbookRow | None:
    cur = conn.cursor(row_factory=kwargs_row(RunbookRow.model_construct))
    return cur.execute(
        sql.SQL("SELECT {} FROM cao.runbooks WHERE agency_id = %s AND id = %s{}").format(
            _COLUMNS, sql.SQL(" FOR UPDATE" if lock else "")
        ),
        (agency_id, runbook_id),
    ).fetchone()


def page(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    account_id: uuid.UUID | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[RunbookSummary]:
    """Runbooks, most recently updated first (keyset on (updated_at, id))."""
    conditions = [sql.SQL("agency_id = %(agency)s")]
    params: dict[str, object] = {"agency": agency_id, "limit": limit}
    if account_id is not None:
        conditions.append(sql.SQL("account_id = %(account)s"))
        params["account"] = account_id
    if after is not None:
        conditions.append(sql.SQL("updated_at <= %(t)s AND (updated_at < %(t)s OR id > %(id)s)"))
        params.update(t=after[0], id=after[1])
    cur = conn.cursor(row_factory=kwargs_row(RunbookSummary.model_construct))
    return cur.execute(
        sql.SQL(
            "SELECT id, account_id, title, version, length(body) AS body_chars, created_at,"
            " updated_at FROM cao.runbooks WHERE {} ORDER BY updated_at DESC, id"
            " LIMIT %(limit)s"
        ).format(sql.SQL(" AND ").join(conditions)),
        params,
    ).fetchall()


def lock_and_count(conn: Connection, agency_id: uuid.UUID) -> int:
    """The agency's runbooks, counted under a transaction-scoped lock on the agency's runbook
    set, so that two concurrent creations cannot both take the last place."""
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('cao.runbooks:' || %s::text, 0))",
        (agency_id,),
    )
    row = conn.execute(
        "SELECT count(*) FROM cao.runbooks WHERE agency_id = %s", (agency_id,)
    ).fetchone()
    return int(row[0]) if row else 0


def save_version(conn: Connection, agency_id: uuid.UUID, current: RunbookRow, *, keep: int) -> None:
    """Keep `current` (the state being replaced or restored over) as a previous version, and
    only the newest `keep` previous versions of the runbook (call with the runbook locked)."""
    conn.execute(
        "DELETE FROM cao.runbook_versions WHERE agency_id = %s AND runbook_id = %s"
        " AND version <= %s",
        (agency_id, current.id, current.version - keep),
    )
    conn.execute(
        "INSERT INTO cao.runbook_versions (agency_id, runbook_id, version, account_id, title,"
        " body, saved_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            agency_id,
            current.id,
            current.version,
            current.account_id,
            current.title,
            current.body,
            current.updated_at,
        ),
    )


def update(
    conn: Connection,
    agency_id: uuid.UUID,
    runbook_id: uuid.UUID,
    *,
    title: str,
    body: str,
    account_id: uuid.UUID | None,
    version: int,
) -> RunbookRow | None:
    cur = conn.cursor(row_factory=kwargs_row(RunbookRow.model_construct))
    # updated_at strictly increases, so keyset pages and saved versions order by it.
    return cur.execute(
        sql.SQL(
            "UPDATE cao.runbooks SET title = %s, body = %s, account_id = %s, version = %s,"
            " updated_at = greatest(now(), updated_at + interval '1 microsecond')"
            " WHERE agency_id = %s AND id = %s RETURNING {}"
        ).format(_COLUMNS),
        (title, body, account_id, version, agency_id, runbook_id),
    ).fetchone()


def delete(conn: Connection, agency_id: uuid.UUID, runbook_id: uuid.UUID) -> bool:
    cur = conn.execute(
        "DELETE FROM cao.runbooks WHERE agency_id = %s AND id = %s", (agency_id, runbook_id)
    )
    return cur.rowcount > 0


def page_versions(
    conn: Connection,
    agency_id: uuid.UUID,
    runbook_id: uuid.UUID,
    *,
    before: int | None,
    limit: int,
) -> list[VersionSummary]:
    """Previous versions, newest first, below version `before` when given."""
    cur = conn.cursor(row_factory=kwargs_row(VersionSummary.model_construct))
    return cur.execute(
        "SELECT version, account_id, title, length(body) AS body_chars, saved_at"
        " FROM cao.runbook_versions WHERE agency_id = %s AND runbook_id = %s"
        " AND (%s::integer IS NULL OR version < %s) ORDER BY version DESC LIMIT %s",
        (agency_id, runbook_id, before, before, limit),
    ).fetchall()


def get_version(
    conn: Connection, agency_id: uuid.UUID, runbook_id: uuid.UUID, version: int
) -> VersionRow | None:
    cur = conn.cursor(row_factory=kwargs_row(VersionRow.model_construct))
    return cur.execute(
        "SELECT version, account_id, title, body, saved_at FROM cao.runbook_versions"
        " WHERE agency_id = %s AND runbook_id = %s AND version = %s",
        (agency_id, runbook_id, version),
    ).fetchone()
