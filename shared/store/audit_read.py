"""Reads of the agency's audit log (`cao.audit_log`), newest first, keyset on (at, id).

Writes go through shared/store/audit.py (`record`); this module only reads.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import class_row

from shared.db import Connection


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]


def page(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    action: str | None,
    action_prefix: str | None,
    since: datetime | None,
    until: datetime | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[AuditRow]:
    conditions = [sql.SQL("agency_id = %(agency)s")]
    params: dict[str, object] = {"agency": agency_id, "limit": limit}
    if action is not None:
        conditions.append(sql.SQL("action = %(action)s"))
        params["action"] = action
    if action_prefix is not None:
        # starts_with: no LIKE metacharacters to escape.
        conditions.append(sql.SQL("starts_with(action, %(prefix)s)"))
        params["prefix"] = action_prefix
    if since is not None:
        conditions.append(sql.SQL("at >= %(since)s"))
        params["since"] = since
    if until is not None:
        conditions.append(sql.SQL("at < %(until)s"))
        params["until"] = until
    if after is not None:
        # `at <= t` first: an index range on audit_agency_time, not a filter.
        conditions.append(sql.SQL("at <= %(t)s AND (at < %(t)s OR id < %(id)s)"))
        params.update(t=after[0], id=after[1])
    cur = conn.cursor(row_factory=class_row(AuditRow))
    return cur.execute(
        sql.SQL(
            "SELECT id, at, actor, action, target, details FROM cao.audit_log WHERE {}"
            " ORDER BY at DESC, id DESC LIMIT %(limit)s"
        ).format(sql.SQL(" AND ").join(conditions)),
        params,
    ).fetchall()
