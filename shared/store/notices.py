"""Notices (`cao.notices`), their updates (`cao.notice_updates`) and who received them
(`cao.notice_deliveries`).

Two kinds of caller, two halves of this module:

- operators, on the owner role's connection (`python -m functions.notices.operator`): insert a
  notice, deliver it to agencies, append updates, change its status. The owner's `owner_all`
  policies let one transaction write one notice to many agencies.
- agencies, on the app role inside `tenant_tx`: list their deliveries, read a notice and its
  updates, mark a delivery read. Row-level security shows a notice only through a delivery of
  the current agency; every query here names the agency as well.

Functions take a connection already inside a transaction and never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql
from psycopg.rows import class_row

from shared.db import Connection

# ---- operator side (owner role) -------------------------------------------------------------


@dataclass(frozen=True)
class NoticeHead:
    """What an update needs to know of a notice, read with its row locked."""

    id: uuid.UUID
    kind: str
    status: str
    updates: int


def insert(
    conn: Connection,
    *,
    kind: str,
    title: str,
    known_facts: str,
    data_categories: Sequence[str],
    mitigation: str | None,
    contact: str,
    status: str,
    confirmed_at: datetime | None = None,
    effective_at: datetime | None = None,
    urgent_reason: str | None = None,
) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO cao.notices (kind, title, known_facts, data_categories, mitigation,"
        " contact, status, confirmed_at, effective_at, urgent_reason)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            kind,
            title,
            known_facts,
            list(data_categories),
            mitigation,
            contact,
            status,
            confirmed_at,
            effective_at,
            urgent_reason,
        ),
    ).fetchone()
    assert row is not None
    notice_id: uuid.UUID = row[0]
    return notice_id


def deliver_to_all(conn: Connection, notice_id: uuid.UUID) -> list[uuid.UUID]:
    """One delivery per existing agency; the agencies delivered to."""
    rows = conn.execute(
        "INSERT INTO cao.notice_deliveries (agency_id, notice_id)"
        " SELECT id, %s FROM cao.agencies ORDER BY id RETURNING agency_id",
        (notice_id,),
    ).fetchall()
    return [r[0] for r in rows]


def deliver_to(
    conn: Connection, notice_id: uuid.UUID, agency_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """One delivery per agency of `agency_ids` that exists; the agencies delivered to (the
    caller compares them with what it asked for)."""
    rows = conn.execute(
        "INSERT INTO cao.notice_deliveries (agency_id, notice_id)"
        " SELECT id, %s FROM cao.agencies WHERE id = ANY(%s) ORDER BY id RETURNING agency_id",
        (notice_id, list(agency_ids)),
    ).fetchall()
    return [r[0] for r in rows]


def lock(conn: Connection, notice_id: uuid.UUID) -> NoticeHead | None:
    row = conn.execute(
        "SELECT n.id, n.kind, n.status,"
        " (SELECT count(*) FROM cao.notice_updates u WHERE u.notice_id = n.id)::integer"
        " FROM cao.notices n WHERE n.id = %s FOR UPDATE",
        (notice_id,),
    ).fetchone()
    return None if row is None else NoticeHead(*row)


def add_update(conn: Connection, notice_id: uuid.UUID, text: str, status: str) -> None:
    """Append an update and move the notice's status and updated_at with it."""
    conn.execute(
        "INSERT INTO cao.notice_updates (notice_id, text) VALUES (%s, %s)", (notice_id, text)
    )
    conn.execute(
        "UPDATE cao.notices SET status = %s, updated_at = now() WHERE id = %s",
        (status, notice_id),
    )


def recipients(conn: Connection, notice_id: uuid.UUID) -> list[uuid.UUID]:
    rows = conn.execute(
        "SELECT agency_id FROM cao.notice_deliveries WHERE notice_id = %s ORDER BY agency_id",
        (notice_id,),
    ).fetchall()
    return [r[0] for r in rows]


# ---- agency side (app role, inside tenant_tx) ------------------------------------------------


@dataclass(frozen=True)
class NoticeRow:
    id: uuid.UUID
    kind: str
    title: str
    status: str
    known_facts: str
    data_categories: list[str]
    mitigation: str | None
    contact: str
    confirmed_at: datetime | None
    effective_at: datetime | None
    urgent_reason: str | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime
    read_at: datetime | None
    unread: bool


@dataclass(frozen=True)
class UpdateRow:
    at: datetime
    text: str


_SELECT = sql.SQL(
    "SELECT n.id, n.kind, n.title, n.status, n.known_facts, n.data_categories, n.mitigation,"
    " n.contact, n.confirmed_at, n.effective_at, n.urgent_reason, n.created_at, n.updated_at,"
    " d.delivered_at, d.read_at, (d.read_at IS NULL OR d.read_at < n.updated_at) AS unread"
    " FROM cao.notice_deliveries d JOIN cao.notices n ON n.id = d.notice_id"
)


def page(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    kind: str | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[NoticeRow]:
    """The agency's notices, newest delivery first, keyset on (delivered_at, notice_id)."""
    conditions = [sql.SQL("d.agency_id = %(agency)s")]
    params: dict[str, object] = {"agency": agency_id, "limit": limit}
    if kind is not None:
        conditions.append(sql.SQL("n.kind = %(kind)s"))
        params["kind"] = kind
    if after is not None:
        conditions.append(sql.SQL("(d.delivered_at, d.notice_id) < (%(at)s, %(id)s)"))
        params.update(at=after[0], id=after[1])
    cur = conn.cursor(row_factory=class_row(NoticeRow))
    return cur.execute(
        sql.SQL(
            "{} WHERE {} ORDER BY d.delivered_at DESC, d.notice_id DESC LIMIT %(limit)s"
        ).format(_SELECT, sql.SQL(" AND ").join(conditions)),
        params,
    ).fetchall()


def get(conn: Connection, agency_id: uuid.UUID, notice_id: uuid.UUID) -> NoticeRow | None:
    cur = conn.cursor(row_factory=class_row(NoticeRow))
    return cur.execute(
        sql.SQL("{} WHERE d.agency_id = %s AND d.notice_id = %s").format(_SELECT),
        (agency_id, notice_id),
    ).fetchone()


def updates(
    conn: Connection, agency_id: uuid.UUID, notice_id: uuid.UUID, limit: int
) -> list[UpdateRow]:
    """A delivered notice's updates, oldest first."""
    cur = conn.cursor(row_factory=class_row(UpdateRow))
    return cur.execute(
        "SELECT u.at, u.text FROM cao.notice_updates u"
        " JOIN cao.notice_deliveries d ON d.notice_id = u.notice_id AND d.agency_id = %s"
        " WHERE u.notice_id = %s ORDER BY u.at, u.id LIMIT %s",
        (agency_id, notice_id, limit),
    ).fetchall()


def mark_read(conn: Connection, agency_id: uuid.UUID, notice_id: uuid.UUID) -> bool | None:
    """Stamp the delivery read now. Whether it was unread before (None: no such delivery)."""
    row = conn.execute(
        "WITH before AS ("
        "  SELECT d.notice_id, (d.read_at IS NULL OR d.read_at < n.updated_at) AS unread"
        "    FROM cao.notice_deliveries d JOIN cao.notices n ON n.id = d.notice_id"
        "   WHERE d.agency_id = %(agency)s AND d.notice_id = %(notice)s FOR UPDATE OF d"
        ")"
        " UPDATE cao.notice_deliveries d SET read_at = now() FROM before"
        " WHERE d.agency_id = %(agency)s AND d.notice_id = before.notice_id"
        " RETURNING before.unread",
        {"agency": agency_id, "notice": notice_id},
    ).fetchone()
    return None if row is None else bool(row[0])
