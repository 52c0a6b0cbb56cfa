"""Access governance over stored CloudTrail metadata: events, principals, new principals, and
the vendor-access ledger (our own sessions).

Each function is one tenant transaction. Account filters must name the agency's own accounts
(another agency's id is a 404, like everywhere else). Pages are keyset-paginated: the cursor is
the position of the last row returned, never an offset.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import datetime, timedelta

from functions.access import schemas
from shared.db import Connection, tenant_tx
from shared.errors import NotFoundError
from shared.kit.pages import CursorKind, decode_cursor, decode_int_cursor, split_page
from shared.store import access, accounts, clients
from shared.store.access import EventFilter

MAX_NEW_PRINCIPAL_DAYS = 90


def _check_accounts(
    conn: Connection, agency_id: uuid.UUID, account_ids: Sequence[uuid.UUID] | None
) -> dict[uuid.UUID, str]:
    if not account_ids:
        return {}
    found = accounts.aws_ids_of(conn, agency_id, account_ids)
    for account_id in account_ids:
        if account_id not in found:
            raise NotFoundError(f"account not found: {account_id}")
    return found


def _scope(
    conn: Connection,
    agency_id: uuid.UUID,
    account_ids: Sequence[uuid.UUID] | None,
    client_id: uuid.UUID | None,
) -> Sequence[uuid.UUID] | None:
    """The account filter: the given accounts (each the agency's, else 404), narrowed to the
    client's accounts when `client_id` is given (404 for another agency's client). None: every
    account; an empty tuple: none (a client with no account, or none of the given ones)."""
    _check_accounts(conn, agency_id, account_ids)
    if client_id is None:
        return account_ids
    scope = clients.scope_of(conn, agency_id, client_id)
    if scope is None:
        raise NotFoundError(f"client not found: {client_id}")
    if account_ids is None:
        return scope.account_ids
    return tuple(a for a in account_ids if a in scope.account_ids)


def _after_int(kind: CursorKind, cursor: str | None) -> tuple[datetime, int] | None:
    if cursor is None:
        return None
    return decode_int_cursor(kind, cursor)


def _after_text(kind: CursorKind, cursor: str | None) -> tuple[datetime, str] | None:
    return None if cursor is None else decode_cursor(kind, cursor)


def events_page(
    conn: Connection,
    agency_id: uuid.UUID,
    f: EventFilter,
    *,
    limit: int,
    cursor: str | None,
    client_id: uuid.UUID | None = None,
) -> schemas.EventPage:
    after = _after_int("events", cursor)
    with tenant_tx(conn, agency_id):
        ids = _scope(conn, agency_id, f.account_ids, client_id)
        rows = (
            []
            if ids == ()
            else access.page_events(conn, agency_id, replace(f, account_ids=ids), after, limit + 1)
        )
    page, next_cursor = split_page(rows, limit, "events", lambda r: (r.event_time, str(r.id)))
    return schemas.EventPage(
        items=[schemas.AccessEvent.model_validate(r) for r in page],
        next_cursor=next_cursor,
    )


def principals_page(
    conn: Connection,
    agency_id: uuid.UUID,
    f: EventFilter,
    *,
    limit: int,
    cursor: str | None,
    client_id: uuid.UUID | None = None,
) -> schemas.PrincipalPage:
    after = _after_text("principals", cursor)
    with tenant_tx(conn, agency_id):
        ids = _scope(conn, agency_id, f.account_ids, client_id)
        rows = (
            []
            if ids == ()
            else access.page_principals(
                conn, agency_id, replace(f, account_ids=ids), after, limit + 1
            )
        )
    page, next_cursor = split_page(rows, limit, "principals", lambda r: (r.last_seen, r.principal))
    return schemas.PrincipalPage(
        items=[schemas.PrincipalSummary.model_validate(r) for r in page],
        next_cursor=next_cursor,
    )


def new_principals_page(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    account_ids: Sequence[uuid.UUID] | None,
    days: int,
    now: datetime,
    limit: int,
    cursor: str | None,
    client_id: uuid.UUID | None = None,
) -> schemas.PrincipalPage:
    """Principals first seen within the last `days` days (of what retention keeps)."""
    after = _after_text("new_principals", cursor)
    cutoff = now - timedelta(days=days)
    with tenant_tx(conn, agency_id):
        ids = _scope(conn, agency_id, account_ids, client_id)
        rows = (
            []
            if ids == ()
            else access.page_new_principals(
                conn, agency_id, account_ids=ids, cutoff=cutoff, after=after, limit=limit + 1
            )
        )
    page, next_cursor = split_page(
        rows, limit, "new_principals", lambda r: (r.first_seen, r.principal)
    )
    return schemas.PrincipalPage(
        items=[schemas.PrincipalSummary.model_validate(r) for r in page],
        next_cursor=next_cursor,
    )


def vendor_page(
    conn: Connection,
    agency_id: uuid.UUID,
    f: EventFilter,
    *,
    limit: int,
    cursor: str | None,
    client_id: uuid.UUID | None = None,
) -> schemas.VendorPage:
    after = _after_text("vendor", cursor)
    with tenant_tx(conn, agency_id):
        ids = _scope(conn, agency_id, f.account_ids, client_id)
        rows = (
            []
            if ids == ()
            else access.page_vendor_sessions(
                conn, agency_id, replace(f, account_ids=ids), after, limit + 1
            )
        )
        labels = accounts.labels(conn, agency_id)
    page, next_cursor = split_page(rows, limit, "vendor", lambda r: (r.last_event, r.key))
    items = []
    for r in page:
        label = labels.get(r.aws_account_id)
        items.append(
            schemas.VendorSession.model_validate(
                {**asdict(r), "alias": label.name if label else None}
            )
        )
    return schemas.VendorPage(items=items, next_cursor=next_cursor)
