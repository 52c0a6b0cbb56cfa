"""The audit log: who did what to an agency's records, when; written by every capability, read
newest first with keyset pagination on (at, id) by GET /api/audit.

`record` is the one writer; every capability that changes something an agency must be able to
account for (keys, accounts, settings, ExternalId rotation, data deletion) calls it inside the
same transaction as the change, so an audited change and its audit row commit together.

Details are for humans reading the log later: ids, counts, names of fields changed. Never
secrets, ExternalIds, API keys or credentials: as a second net, `details` passes through
`redaction.scrub` (which masks values under credential-like keys and secret-looking strings)
before it is stored, and is bounded in size.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import kwargs_row
from psycopg.types.json import Jsonb

from shared import redaction
from shared.db import Connection
from shared.kit.schemas import Row

MAX_DETAILS_CHARS = 4000  # the column's CHECK is 8 kB of jsonb; keep well inside it
MAX_TARGET_CHARS = 200
MAX_ACTOR_CHARS = 100


class AuditRow(Row):
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]


def record(  # noqa: PLR0917 - called positionally, like the audit row reads
    conn: Connection,
    agency_id: uuid.UUID,
    actor: str,
    action: str,
    target: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one audit row for `agency_id` (inside the caller's tenant transaction)."""
    clean = redaction.scrub(dict(details or {}))
    if len(json.dumps(clean, default=str)) > MAX_DETAILS_CHARS:
        # An audit row that cannot be stored must not silently lose the action: keep the fact.
        clean = {"truncated": True, "keys": sorted(str(k) for k in clean)[:50]}
    conn.execute(
        "INSERT INTO cao.audit_log (agency_id, actor, action, target, details)"
        " VALUES (%s, %s, %s, %s, %s)",
        (
            agency_id,
            actor[:MAX_ACTOR_CHARS],
            action[:64],
            None if target is None else target[:MAX_TARGET_CHARS],
            Jsonb(json.loads(json.dumps(clean, default=str))),
        ),
    )


def list_recent(conn: Connection, agency_id: uuid.UUID, limit: int = 100) -> list[AuditRow]:
    """The agency's latest audit rows, newest first (limit clamped to 1..1000)."""
    rows = conn.execute(
        "SELECT id, at, actor, action, target, details FROM cao.audit_log"
        " WHERE agency_id = %s ORDER BY at DESC, id DESC LIMIT %s",
        (agency_id, max(1, min(limit, 1000))),
    ).fetchall()
    return [AuditRow.from_values(*r) for r in rows]


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
    cur = conn.cursor(row_factory=kwargs_row(AuditRow.model_construct))
    return cur.execute(
        sql.SQL(
            "SELECT id, at, actor, action, target, details FROM cao.audit_log WHERE {}"
            " ORDER BY at DESC, id DESC LIMIT %(limit)s"
        ).format(sql.SQL(" AND ").join(conditions)),
        params,
    ).fetchall()
