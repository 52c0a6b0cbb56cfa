"""Routes: /api/notices[/{notice_id}[/read]] (api/notices.py). Any API key of the agency.

A read path: nothing here loads boto3 or botocore.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query

from shared.web import ERRORS, CallerDep, Conn

from . import rules, schemas, service

notices_router = APIRouter(tags=["notices"])
NoticeId = Annotated[uuid.UUID, Path(description="the notice's id")]


@notices_router.get("/api/notices", responses=ERRORS)
def list_notices(
    *,
    caller: CallerDep,
    conn: Conn,
    kind: Annotated[schemas.Kind | None, Query(description="only notices of this kind")] = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            description=f"page size (default {service.PAGE_DEFAULT}; above "
            f"{service.PAGE_MAX} clamped)",
        ),
    ] = service.PAGE_DEFAULT,
    cursor: Annotated[
        str | None,
        Query(pattern=rules.CURSOR_PATTERN, description="`next_cursor` of the previous page"),
    ] = None,
) -> schemas.NoticePage:
    """Incident and sub-processor change notices sent to the agency, newest first. Notices are
    not emailed in this version: poll this list (`unread` marks new and updated ones)."""
    return service.list_page(conn, caller.agency_id, kind=kind, limit=limit, cursor=cursor)


@notices_router.get("/api/notices/{notice_id}", responses=ERRORS)
def get_notice(notice_id: NoticeId, caller: CallerDep, conn: Conn) -> schemas.Notice:
    """A notice with its known facts, data categories, mitigation, contact and updates."""
    return service.get(conn, caller.agency_id, notice_id)


@notices_router.post("/api/notices/{notice_id}/read", responses=ERRORS)
def mark_notice_read(notice_id: NoticeId, caller: CallerDep, conn: Conn) -> schemas.NoticeSummary:
    """Mark the notice read for the whole agency (a later update makes it unread again)."""
    return service.mark_read(conn, caller.agency_id, caller.actor, notice_id)
