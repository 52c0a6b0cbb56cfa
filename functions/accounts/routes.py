"""HTTP routes of the accounts (served by api/accounts.py, after onboarding's link routes):

    GET    /api/accounts                 list with status in words and sync health
    GET    /api/accounts/{account_id}    one account, with its recent sync runs
    PATCH  /api/accounts/{account_id}    alias and/or regions (admin)
    DELETE /api/accounts/{account_id}    unlink (admin)
    POST   /api/accounts/{account_id}/sync   sync now (the job system queues its jobs)

Cold start: api/accounts.py is a read function; nothing here loads botocore.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from functions.jobs import service as jobs
from shared.kit.http import Cursor, Limit, documented, json_response
from shared.kit.pages import DEFAULT_LIMIT, clamp_limit
from shared.web import ERRORS, AdminDep, CallerDep, Conn, Now, PublisherDep

from . import service
from .schemas import AccountDetail, AccountOut, AccountPage, AccountPatch, SyncNowOut

accounts_router = APIRouter(tags=["accounts"])


# PATCH and DELETE come first: for a method no route has (PUT /api/accounts/{id}), Starlette
# answers 405 naming the methods of the first route whose path matched.


@accounts_router.patch("/api/accounts/{account_id}", response_model=AccountOut, responses=ERRORS)
def patch_account(
    account_id: uuid.UUID, body: AccountPatch, caller: AdminDep, conn: Conn
) -> AccountOut:
    """Change an account's alias and/or CloudTrail regions (admin)."""
    return service.update_account(conn, caller, account_id, body)


@accounts_router.delete("/api/accounts/{account_id}", status_code=204, responses=ERRORS)
def unlink_account(account_id: uuid.UUID, caller: AdminDep, conn: Conn) -> Response:
    """Unlink (admin): deletes the account and all its synced data; audited. A second call
    answers 404 (there is nothing left to delete)."""
    service.unlink_account(conn, caller, account_id)
    return Response(status_code=204)


@accounts_router.get("/api/accounts", response_model=None, responses=documented(AccountPage))
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
        service.list_accounts(
            conn, caller.agency_id, now=now, limit=clamp_limit(limit), cursor=cursor
        )
    )


@accounts_router.get(
    "/api/accounts/{account_id}",
    response_model=None,
    responses=documented(AccountDetail, 404),
)
def get_account(account_id: uuid.UUID, caller: CallerDep, conn: Conn, now: Now) -> Response:
    """One account: its status, sync health, and recent sync runs."""
    return json_response(service.account_detail(conn, caller.agency_id, account_id, now=now))


@accounts_router.post(
    "/api/accounts/{account_id}/sync",
    status_code=202,
    responses={
        **ERRORS,
        402: {"description": "the agency's subscription does not allow syncing"},
        409: {"description": "the account is paused: verify it again first"},
        429: {"description": "too many syncs of this account; see Retry-After"},
        503: {"description": "the queue is unavailable; retry later"},
    },
    summary="Sync this account now (costs and any other registered job kind)",
)
def sync_now(
    account_id: uuid.UUID, caller: CallerDep, conn: Conn, publisher: PublisherDep, now: Now
) -> SyncNowOut:
    result = jobs.request_sync(conn, caller.agency_id, account_id, now, publisher=publisher)
    return SyncNowOut(queued=result.queued, in_progress=result.in_progress)
