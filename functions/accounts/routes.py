"""Routes: GET /api/accounts and /api/accounts/{account_id} (served by api/accounts.py)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from functions.reads import accounts
from functions.reads.models import accounts as models
from shared.kit.http import Cursor, Limit, documented, json_response
from shared.kit.pages import DEFAULT_LIMIT, clamp_limit
from shared.web import CallerDep, Conn, Now

accounts_router = APIRouter(tags=["accounts"])


@accounts_router.get("/api/accounts", response_model=None, responses=documented(models.AccountPage))
def list_accounts(
    *,
    caller: CallerDep,
    conn: Conn,
    now: Now,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Linked accounts with status in words, sync health per job, and Cost Explorer requests
    spent this month."""
    return json_response(
        accounts.list_accounts(
            conn, caller.agency_id, now=now, limit=clamp_limit(limit), cursor=cursor
        )
    )


@accounts_router.get(
    "/api/accounts/{account_id}",
    response_model=None,
    responses=documented(models.AccountDetail, 404),
)
def get_account(account_id: uuid.UUID, caller: CallerDep, conn: Conn, now: Now) -> Response:
    """One account: its status, sync health, and recent sync runs."""
    return json_response(accounts.account_detail(conn, caller.agency_id, account_id, now=now))
