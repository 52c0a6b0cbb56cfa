"""Notices: publication and updates by operators, reading by agencies.

Publishing is one transaction on the owner role's connection: the notice, one delivery per
affected agency, and one `notice.published` row in each of those agencies' audit logs (actor
`operator`) commit together or not at all. An update appends a fact, optionally resolves an
incident, and is audited in every recipient's log the same way (`notice.updated`).

Agencies read through the app role inside `tenant_tx`: row-level security shows a notice only
when a delivery of the current agency exists, so another agency's notice is a 404, exactly like
one that does not exist. This version sends no email: notices are read through the API.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime

from shared.db import Connection, system_tx, tenant_tx
from shared.errors import ConflictError, NotFoundError
from shared.kit.pages import split_page
from shared.store import audit
from shared.store import notices as store

from . import rules, schemas

OPERATOR = "operator"
PAGE_DEFAULT = 50
PAGE_MAX = 200


@dataclass(frozen=True)
class Published:
    notice_id: uuid.UUID
    agencies: int


@dataclass(frozen=True)
class Updated:
    notice_id: uuid.UUID
    status: str
    agencies: int


# ---- operators (owner connection) -----------------------------------------------------------


def publish_incident(
    conn: Connection, draft: rules.IncidentDraft, agency_ids: tuple[uuid.UUID, ...] | None
) -> Published:
    """Publish an incident notice to `agency_ids`, or to every agency when None."""
    with system_tx(conn):
        notice_id = store.insert(
            conn,
            kind="incident",
            title=draft.title,
            known_facts=draft.known_facts,
            data_categories=draft.data_categories,
            mitigation=draft.mitigation,
            contact=draft.contact,
            status="open",
            confirmed_at=draft.confirmed_at,
        )
        delivered = _deliver(conn, notice_id, agency_ids)
        details = {"kind": "incident", "title": draft.title, "status": "open"}
        for agency_id in delivered:
            audit.record(conn, agency_id, OPERATOR, "notice.published", str(notice_id), details)
    return Published(notice_id, len(delivered))


def publish_subprocessor_change(conn: Connection, draft: rules.ChangeDraft) -> Published:
    """Publish a sub-processor change to every agency (it concerns them all)."""
    with system_tx(conn):
        notice_id = store.insert(
            conn,
            kind="subprocessor_change",
            title=draft.title,
            known_facts=draft.known_facts,
            data_categories=draft.data_categories,
            mitigation=None,
            contact=draft.contact,
            status="scheduled",
            effective_at=draft.effective_at,
            urgent_reason=draft.urgent_reason,
        )
        delivered = _deliver(conn, notice_id, None)
        details = {
            "kind": "subprocessor_change",
            "title": draft.title,
            "effective_at": draft.effective_at.isoformat(),
            "urgent_reason": draft.urgent_reason,
        }
        for agency_id in delivered:
            audit.record(conn, agency_id, OPERATOR, "notice.published", str(notice_id), details)
    return Published(notice_id, len(delivered))


def _deliver(
    conn: Connection, notice_id: uuid.UUID, agency_ids: tuple[uuid.UUID, ...] | None
) -> list[uuid.UUID]:
    if agency_ids is None:
        delivered = store.deliver_to_all(conn, notice_id)
    else:
        delivered = store.deliver_to(conn, notice_id, agency_ids)
        missing = sorted(set(agency_ids) - set(delivered), key=str)
        if missing:
            # Raising rolls back the whole publication: nothing half-sent.
            raise NotFoundError(
                "no such agency: " + ", ".join(str(m) for m in missing[:10]) + "; nothing sent"
            )
    if not delivered:
        raise NotFoundError("there are no agencies to notify; nothing sent")
    return delivered


def update(conn: Connection, notice_id: uuid.UUID, text: str, *, resolve: bool) -> Updated:
    """Append `text` to a notice (and resolve an incident), audited for every recipient."""
    with system_tx(conn):
        head = store.lock(conn, notice_id)
        if head is None:
            raise NotFoundError(f"no such notice: {notice_id}")
        if resolve and head.kind != "incident":
            raise ConflictError("only incidents are resolved; this is a sub-processor change")
        if resolve and head.status == "resolved":
            raise ConflictError("this incident is already resolved")
        if head.updates >= rules.MAX_UPDATES:
            raise ConflictError(
                f"this notice already has {rules.MAX_UPDATES} updates; publish a new notice"
            )
        status = "resolved" if resolve else head.status
        store.add_update(conn, notice_id, text, status)
        agencies = store.recipients(conn, notice_id)
        details = {"kind": head.kind, "status": status, "resolved": resolve}
        for agency_id in agencies:
            audit.record(conn, agency_id, OPERATOR, "notice.updated", str(notice_id), details)
    return Updated(notice_id, status, len(agencies))


# ---- agencies (app connection, tenant transactions) -----------------------------------------


def _position(row: store.NoticeRow) -> tuple[datetime, str]:
    """Where a page ends (the cursor's position): its last row's (delivered_at, notice id)."""
    return row.delivered_at, str(row.id)


def list_page(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    kind: schemas.Kind | None,
    limit: int,
    cursor: str | None,
) -> schemas.NoticePage:
    after = None if cursor is None else rules.decode_cursor(cursor)
    limit = max(1, min(limit, PAGE_MAX))
    with tenant_tx(conn, agency_id):
        rows = store.page(conn, agency_id, kind=kind, after=after, limit=limit + 1)
    page, next_cursor = split_page(rows, limit, "notices", _position)
    return schemas.NoticePage(
        items=[schemas.NoticeSummary.model_validate(r) for r in page], next_cursor=next_cursor
    )


def get(conn: Connection, agency_id: uuid.UUID, notice_id: uuid.UUID) -> schemas.Notice:
    with tenant_tx(conn, agency_id):
        row = store.get(conn, agency_id, notice_id)
        if row is None:
            raise NotFoundError("notice not found")
        updates = store.updates(conn, agency_id, notice_id, rules.MAX_UPDATES)
    return schemas.Notice.model_validate({**asdict(row), "updates": updates})


def mark_read(
    conn: Connection, agency_id: uuid.UUID, actor: str, notice_id: uuid.UUID
) -> schemas.NoticeSummary:
    """Mark a delivered notice read for the agency. The first read of each version of it (new
    updates make it unread again) is audited: an acknowledgement the agency can point to."""
    with tenant_tx(conn, agency_id):
        was_unread = store.mark_read(conn, agency_id, notice_id)
        if was_unread is None:
            raise NotFoundError("notice not found")
        if was_unread:
            audit.record(conn, agency_id, actor, "notice.read", str(notice_id))
        row = store.get(conn, agency_id, notice_id)
    assert row is not None
    return schemas.NoticeSummary.model_validate(row)
