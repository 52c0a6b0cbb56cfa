"""Data rights: an admin exports all of the agency's data (streamed JSON) or deletes the agency.

Export: the export is audited first (its own committed transaction), then every tenant table is
streamed from one read-only snapshot, row by row as Postgres renders it, in chunks of about
64 KiB, so memory stays flat whatever the agency's size.

Deletion: refused (409) while a paid subscription runs (Polar keeps charging a deleted agency
otherwise); else the agency row goes and every row of it with it (cascades), including its sync
jobs, so the dispatcher never selects it again and no AWS call is made for it. Idempotent: a
concurrent or repeated deletion finds nothing and succeeds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime

from shared.db import Connection, tenant_tx
from shared.errors import ConflictError, NotFoundError
from shared.logs import get_logger
from shared.store import audit
from shared.store import export as store

EXPORT_FORMAT = "cloudagencyops-export/1"
CHUNK_CHARS = 64 * 1024
# Billing states in which a subscription is still being charged. A subscription canceled at
# period end arrives from Polar as `canceled` (see functions/billing/webhooks.py).
PAID_STATES = frozenset({"active", "past_due"})


def start_export(conn: Connection, agency_id: uuid.UUID, actor: str) -> None:
    """Record the export in the audit log (committed before any data leaves)."""
    with tenant_tx(conn, agency_id):
        if store.lock_agency(conn, agency_id) is None:
            raise NotFoundError("agency not found")
        audit.record(conn, agency_id, actor, "agency.exported", str(agency_id))


def export_chunks(conn: Connection, agency_id: uuid.UUID, *, now: datetime) -> Iterator[bytes]:
    """The export document, `{"format", "agency_id", "exported_at", "tables": {name: [row]}}`,
    as UTF-8 chunks."""
    with store.consistent_reads(conn), tenant_tx(conn, agency_id):
        store.allow_long_reads(conn)
        head = {
            "format": EXPORT_FORMAT,
            "agency_id": str(agency_id),
            "exported_at": now.isoformat(),
        }
        buf = [json.dumps(head, default=str)[:-1], ', "tables": {']
        size = 0
        for t, (table, column) in enumerate(store.tenant_tables(conn)):
            buf.append(("," if t else "") + json.dumps(table) + ": [")
            for r, row in enumerate(store.stream_rows(conn, table, column, agency_id)):
                buf.append(("," if r else "") + row)
                size += len(row)
                if size >= CHUNK_CHARS:
                    yield "".join(buf).encode()
                    buf, size = [], 0
            buf.append("]")
        buf.append("}}\n")
        yield "".join(buf).encode()


def delete_agency(conn: Connection, agency_id: uuid.UUID) -> bool:
    """Delete the agency and everything of it. True when this call deleted it, False when it
    was already gone; 409 while a paid subscription is active."""
    with tenant_tx(conn, agency_id):
        standing = store.lock_agency(conn, agency_id)
        if standing is None:
            return False
        if standing.billing_status in PAID_STATES:
            raise ConflictError(
                "the agency has an active paid subscription: cancel it first (POST "
                "/api/billing/portal opens Polar's customer portal, where an admin cancels), "
                "then delete the agency; a subscription canceled at the end of its period no "
                "longer blocks deletion",
                code="subscription_active",
            )
        deleted = store.delete_agency(conn, agency_id)
    if deleted:
        # The audit log went with the agency: this log line is the record that it happened.
        get_logger().info("agency deleted", extra={"agency_id": str(agency_id)})
    return deleted
