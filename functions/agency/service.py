"""The caller's agency: its settings, its API keys, ExternalId rotation, and its data rights
(export, deletion).

Settings: name, contact, default regions for new accounts, CloudTrail retention and backfill
(the request model refuses billing fields). Every change is audited with field names only.

API keys: admins create (shown once), list and revoke them. A key's plaintext exists only in
the response that creates it; the store keeps its SHA-256 and a short display prefix (the
issuing itself, shared with the operator's rescue key, is `functions.onboard.service.issue_key`).
Revoking the last live admin key is refused: an agency would otherwise lock itself out (the
operator command exists for lost keys, not for this).

Rotation: a new current ExternalId, without breaking every sync at once. Rotation retires the
current value and makes a fresh one current. Accounts keep the reference to the value they were
last verified with (`accounts.external_id_id`), and syncs assume roles with that value, so
nothing stops working. Each account shows `needs_trust_update` until its trust policy carries
the new value and it verifies with it (POST /api/accounts/{id}/verify, or the weekly probe),
which moves its reference to the current value. Retired values that no account references any
more are deleted, so old secrets do not linger.

Export: the export is audited first (its own committed transaction), then every tenant table is
read in keyset pages (EXPORT_PAGE_ROWS rows in primary-key order, each page one short
transaction on a connection checked out for that page only), rendered by Postgres and sent in
chunks of about 64 KiB. No connection or transaction is held while the client reads, so a slow
download never pins the instance's pool or another agency's requests, and memory stays flat
whatever the agency's size. Each page is one statement's snapshot: a row changed while the
export runs appears as it was when its page was read (one written behind the cursor appears in
the next export).

Deletion: refused (409) while a paid subscription runs (Polar keeps charging a deleted agency
otherwise); else the agency row goes and every row of it with it (cascades), including its sync
jobs, so the dispatcher never selects it again and no AWS call is made for it. Idempotent: a
concurrent or repeated deletion finds nothing and succeeds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from functions.onboard import externalid
from functions.onboard.schemas import AccountOut
from functions.onboard.service import issue_key
from shared.auth import Caller
from shared.db import Connection, is_unique_violation, tenant_tx
from shared.errors import BadRequestError, ConflictError, NotFoundError
from shared.logs import get_logger
from shared.store import accounts, agency, audit
from shared.store import agency as store

from .schemas import AgencyOut, KeyCreatedOut, KeyOut, RotationOut, SettingsPatch

_ATTEMPTS = 3  # a unique-constraint collision of 256-bit random values means a broken RNG
EXPORT_FORMAT = "cloudagencyops-export/1"
CHUNK_CHARS = 64 * 1024
EXPORT_PAGE_ROWS = 1000
# Billing states in which a subscription is still being charged. A subscription canceled at
# period end arrives from Polar as `canceled` (see functions/billing/subscription.py).
PAID_STATES = frozenset({"active", "past_due"})


# ---- settings -------------------------------------------------------------------------------


def read(conn: Connection, caller: Caller) -> AgencyOut:
    with tenant_tx(conn, caller.agency_id):
        row = agency.get(conn, caller.agency_id)
    if row is None:
        raise NotFoundError("the agency no longer exists")
    return AgencyOut.model_validate(row)


def update(conn: Connection, caller: Caller, patch: SettingsPatch) -> AgencyOut:
    caller.require_admin()
    changes = patch.changes()
    if not changes:
        raise BadRequestError(
            "nothing to change: send one or more of name, contact_email, default_regions, "
            "cloudtrail_retention_days, cloudtrail_backfill_days"
        )
    with tenant_tx(conn, caller.agency_id):
        row = agency.update_settings(conn, caller.agency_id, changes)
        if row is None:
            raise NotFoundError("the agency no longer exists")
        # Field names only: the values (an email) need not be copied into the log.
        audit.record(
            conn, caller.agency_id, caller.actor, "agency.settings_changed", None,
            {"fields": sorted(changes)},
        )  # fmt: skip
    return AgencyOut.model_validate(row)


# ---- API keys -------------------------------------------------------------------------------


def create_key(conn: Connection, caller: Caller, *, name: str, role: str) -> KeyCreatedOut:
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        created = issue_key(
            conn,
            caller.agency_id,
            name=name,
            role=role,
            actor=caller.actor,
            created_by=caller.key_id,
        )
    return KeyCreatedOut(key=KeyOut.model_validate(created.row), api_key=created.plaintext)


def list_keys(conn: Connection, caller: Caller) -> list[KeyOut]:
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        rows = agency.list_keys(conn, caller.agency_id)
    return [KeyOut.model_validate(k) for k in rows]


def revoke_key(conn: Connection, caller: Caller, key_id: uuid.UUID, now: datetime) -> KeyOut:
    """Revoke a key of the caller's agency (idempotent); 404 for any other agency's key."""
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        row = agency.get_key(conn, caller.agency_id, key_id)
        if row is None:
            raise NotFoundError("no such API key in this agency")
        if row.revoked_at is not None:
            return KeyOut.model_validate(row)
        if row.role == "admin" and agency.count_live_keys(conn, caller.agency_id, "admin") <= 1:
            raise ConflictError(
                "this is the agency's last live admin key: create another admin key first"
            )
        agency.revoke_key(conn, caller.agency_id, key_id, now)
        audit.record(conn, caller.agency_id, caller.actor, "key.revoked", str(key_id), {})
        revoked = agency.get_key(conn, caller.agency_id, key_id)
    assert revoked is not None
    return KeyOut.model_validate(revoked)


# ---- ExternalId rotation --------------------------------------------------------------------


def rotate(conn: Connection, caller: Caller, now: datetime) -> RotationOut:
    caller.require_admin()
    for attempt in range(_ATTEMPTS):
        try:
            with tenant_tx(conn, caller.agency_id):
                current = agency.rotate_external_id(
                    conn, caller.agency_id, externalid.generate(), now
                )
                agency.purge_unused_external_ids(conn, caller.agency_id)
                pending = accounts.list_needing_trust_update(conn, caller.agency_id)
                audit.record(
                    conn,
                    caller.agency_id,
                    caller.actor,
                    "external_id.rotated",
                    str(current.id),
                    {"accounts_needing_trust_update": len(pending)},
                )
        except Exception as exc:
            if not is_unique_violation(exc) or attempt == _ATTEMPTS - 1:
                raise
            continue
        return RotationOut(
            external_id=current.value,
            accounts_needing_trust_update=[AccountOut.model_validate(a) for a in pending],
            next="update each listed account's trust policy (or its stack's ExternalId "
            "parameter) to the new value, then POST /api/accounts/{id}/verify",
        )
    raise AssertionError("unreachable")


# ---- export ---------------------------------------------------------------------------------


def start_export(conn: Connection, agency_id: uuid.UUID, actor: str) -> list[store.TenantTable]:
    """Record the export in the audit log (committed before any data leaves); the tables to
    export."""
    with tenant_tx(conn, agency_id):
        if store.lock_agency(conn, agency_id) is None:
            raise NotFoundError("agency not found")
        audit.record(conn, agency_id, actor, "agency.exported", str(agency_id))
    with tenant_tx(conn, agency_id):
        return store.tenant_tables(conn)


def export_chunks(
    connection: Callable[[], AbstractContextManager[Connection]],
    agency_id: uuid.UUID,
    tables: Sequence[store.TenantTable],
    *,
    now: datetime,
) -> Iterator[bytes]:
    """The export document, `{"format", "agency_id", "exported_at", "tables": {name: [row]}}`,
    as UTF-8 chunks; `connection()` lends a connection for one page at a time."""
    head = {"format": EXPORT_FORMAT, "agency_id": str(agency_id), "exported_at": now.isoformat()}
    buf = [json.dumps(head, default=str)[:-1], ', "tables": {']
    size = 0
    for t, table in enumerate(tables):
        buf.append(("," if t else "") + json.dumps(table.name) + ": [")
        after: tuple[Any, ...] | None = None
        first = True
        while True:
            with connection() as conn, tenant_tx(conn, agency_id):
                page = store.export_page(conn, table, agency_id, after, EXPORT_PAGE_ROWS)
            # The connection is back in the pool before anything is handed to the client.
            for key, row in page:
                buf.append(("" if first else ",") + row)
                first = False
                size += len(row)
                after = key
                if size >= CHUNK_CHARS:
                    yield "".join(buf).encode()
                    buf, size = [], 0
            if len(page) < EXPORT_PAGE_ROWS:
                break
        buf.append("]")
    buf.append("}}\n")
    yield "".join(buf).encode()


# ---- deletion -------------------------------------------------------------------------------


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
