"""Routes: GET /api/access/{events,principals,new-principals,vendor} (api/access.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from functions.access import schemas
from functions.access import service as access
from shared.kit.http import (
    PRINTABLE,
    AccountIds,
    Cursor,
    Limit,
    Since,
    Until,
    documented,
    json_response,
)
from shared.kit.pages import DEFAULT_LIMIT, clamp_limit
from shared.kit.params import SafeText, check_window
from shared.store.access import EventFilter
from shared.web import CallerDep, Conn, Now

Principal = Annotated[
    SafeText | None,
    Query(
        max_length=2048,
        pattern=PRINTABLE,
        description="a principal ARN (arn:...), or a principal/session name",
    ),
]
ClientId = Annotated[
    uuid.UUID | None,
    Query(description="only this client's accounts (with account_id: those of them it holds)"),
]
EventName = Annotated[SafeText | None, Query(max_length=128, pattern=PRINTABLE)]
SourceIp = Annotated[
    SafeText | None,
    Query(max_length=256, pattern=PRINTABLE, description="an IP, or the AWS service name"),
]


def _event_filter(
    account_ids: list[uuid.UUID] | None,
    since: datetime | None,
    until: datetime | None,
    **more: Any,
) -> EventFilter:
    check_window(since, until)
    return EventFilter(account_ids=account_ids, since=since, until=until, **more)


access_router = APIRouter(tags=["access"])


@access_router.get(
    "/api/access/events", response_model=None, responses=documented(schemas.EventPage, 404)
)
def list_events(
    *,
    caller: CallerDep,
    conn: Conn,
    account_id: AccountIds = None,
    client_id: ClientId = None,
    principal: Principal = None,
    event_name: EventName = None,
    source_ip: SourceIp = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Access events, newest first. Stable under new events: pages continue where the previous
    one ended."""
    f = _event_filter(
        account_id,
        since,
        until,
        principal=principal,
        event_name=event_name,
        source_ip=source_ip,
    )
    return json_response(
        access.events_page(
            conn, caller.agency_id, f, limit=clamp_limit(limit), cursor=cursor, client_id=client_id
        )
    )


@access_router.get(
    "/api/access/principals", response_model=None, responses=documented(schemas.PrincipalPage, 404)
)
def list_principals(
    *,
    caller: CallerDep,
    conn: Conn,
    account_id: AccountIds = None,
    client_id: ClientId = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Per principal: first and last seen, event count, distinct source IPs; most recently
    active first."""
    f = _event_filter(account_id, since, until)
    return json_response(
        access.principals_page(
            conn, caller.agency_id, f, limit=clamp_limit(limit), cursor=cursor, client_id=client_id
        )
    )


@access_router.get(
    "/api/access/new-principals",
    response_model=None,
    responses=documented(schemas.PrincipalPage, 404),
)
def list_new_principals(
    *,
    caller: CallerDep,
    conn: Conn,
    now: Now,
    days: Annotated[
        int, Query(ge=1, le=access.MAX_NEW_PRINCIPAL_DAYS, description="the recent window")
    ] = 7,
    account_id: AccountIds = None,
    client_id: ClientId = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Principals first seen in the last `days` days (first among the events retention keeps)."""
    page = access.new_principals_page(
        conn,
        caller.agency_id,
        account_ids=account_id,
        days=days,
        now=now,
        limit=clamp_limit(limit),
        cursor=cursor,
        client_id=client_id,
    )
    return json_response(page)


@access_router.get(
    "/api/access/vendor", response_model=None, responses=documented(schemas.VendorPage, 404)
)
def list_vendor_sessions(
    *,
    caller: CallerDep,
    conn: Conn,
    account_id: AccountIds = None,
    client_id: ClientId = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The vendor-access ledger: every session of ours in each client account, latest first."""
    f = _event_filter(account_id, since, until)
    return json_response(
        access.vendor_page(
            conn, caller.agency_id, f, limit=clamp_limit(limit), cursor=cursor, client_id=client_id
        )
    )
