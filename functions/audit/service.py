"""The audit log as admins read it: filtered by action and time, newest first, keyset-paged."""

from __future__ import annotations

import uuid
from datetime import datetime

from functions.audit import schemas
from shared.db import Connection, tenant_tx
from shared.kit.pages import decode_int_cursor, split_page
from shared.kit.params import check_window
from shared.store import audit


def page(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> schemas.AuditPage:
    """`action` is an exact action ('runbook.deleted') or a prefix ending in '*' ('runbook.*')."""
    check_window(since, until)
    exact = prefix = None
    if action is not None:
        if action.endswith("*"):
            prefix = action[:-1]
        else:
            exact = action
    after = None
    if cursor is not None:
        after = decode_int_cursor("audit", cursor)
    with tenant_tx(conn, agency_id):
        rows = audit.page(
            conn,
            agency_id,
            action=exact,
            action_prefix=prefix,
            since=since,
            until=until,
            after=after,
            limit=limit + 1,
        )
    items, next_cursor = split_page(rows, limit, "audit", lambda r: (r.at, str(r.id)))
    return schemas.AuditPage(
        items=[schemas.AuditEntry.model_validate(r) for r in items],
        next_cursor=next_cursor,
    )
