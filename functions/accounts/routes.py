"""HTTP routes of the accounts (api/accounts.py serves them all):

    GET    /api/accounts/discovered      members of linked organizations (onboarding's)
    POST   /api/accounts/discovered/link bulk link through the StackSet role (admin; onboarding's)
    POST   /api/accounts                 link a client role (admin; onboarding's)
    POST   /api/accounts/{account_id}/verify   every linking check again (rate-limited;
                                               onboarding's)
    GET    /api/accounts                 list with status in words and sync health
    GET    /api/accounts/{account_id}    one account, with its recent sync runs
    PATCH  /api/accounts/{account_id}    alias and/or regions (admin)
    DELETE /api/accounts/{account_id}    unlink (admin)
    POST   /api/accounts/{account_id}/sync   sync now (the job system queues its jobs)

Who may do what follows the price: linking adds an account the agency pays for and whose
client pays a Cost Explorer request per link, so it needs an admin key (one account or a bulk
of discovered members alike); verifying costs one Cost Explorer request, like a sync, so any
key may ask, within the same kind of per-account rate limit as sync-now.

Linking and verifying are onboarding's use cases (functions/onboard/service.py: they call AWS and
import botocore inside the call); the rest is this domain's. Cold start: api/accounts.py is a
read function; nothing here loads botocore at import.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response

from functions.jobs import service as jobs
from functions.onboard import service as onboarding
from functions.onboard.schemas import AccountOut, BulkLinkIn, BulkLinkOut, DiscoveredOut, LinkIn
from shared.kit.http import Cursor, Limit, documented, json_response
from shared.kit.pages import DEFAULT_LIMIT, clamp_limit
from shared.web import ERRORS, AdminDep, CallerDep, Conn, DepsDep, Now, PublisherDep

from . import service
from .schemas import AccountDetail, AccountPage, AccountPatch, SyncNowOut

accounts_router = APIRouter(tags=["accounts"])


# ---- linking (onboarding's use cases): discovered members, bulk link, link, verify -----------


# Declared before the /{account_id} routes so that "discovered" is never read as an id.
@accounts_router.get(
    "/api/accounts/discovered", response_model=list[DiscoveredOut], responses=ERRORS
)
def list_discovered(caller: CallerDep, conn: Conn) -> list[DiscoveredOut]:
    """Members of organizations whose management account is linked (ID and name only)."""
    return onboarding.discovered(conn, caller)


@accounts_router.post(
    "/api/accounts/discovered/link",
    response_model=BulkLinkOut,
    responses={**ERRORS, 403: {"description": "admin keys only"}},
)
def link_discovered(
    *,
    caller: AdminDep,
    conn: Conn,
    deps: DepsDep,
    publisher: PublisherDep,
    now: Now,
    body: BulkLinkIn | None = None,
) -> BulkLinkOut:
    """Link discovered members (admin) through the StackSet role name, up to 25 per call."""
    return onboarding.link_discovered(
        conn,
        caller,
        body.aws_account_ids if body else None,
        deps=deps,
        publisher=publisher,
        now=now,
    )


@accounts_router.post(
    "/api/accounts",
    status_code=201,
    response_model=AccountOut,
    responses={
        **ERRORS,
        200: {"description": "already linked: the existing link", "model": AccountOut},
        400: {"description": "malformed role ARN"},
        403: {"description": "admin keys only"},
        409: {"description": "that AWS account is linked through another role"},
        503: {"description": "AWS throttled or unreachable: retry; nothing was stored"},
    },
)
def link_account(
    *,
    body: LinkIn,
    caller: AdminDep,
    conn: Conn,
    deps: DepsDep,
    publisher: PublisherDep,
    response: Response,
    now: Now,
) -> AccountOut:
    """Link a client account by its role ARN (admin): assume, confirm the account, probe the
    trust policy, check Organizations and Cost Explorer, then record it. 201 when linked now, 200
    with the existing link when that role is already linked."""
    account, created = onboarding.link(conn, caller, body, deps=deps, publisher=publisher, now=now)
    if not created:
        response.status_code = 200
    return account


@accounts_router.post(
    "/api/accounts/{account_id}/verify",
    response_model=AccountOut,
    responses={
        **ERRORS,
        429: {"description": "too many verifications of this account; see Retry-After"},
        503: {"description": "AWS throttled or unreachable: retry; nothing changed"},
    },
)
def verify_account(
    account_id: uuid.UUID, caller: CallerDep, conn: Conn, deps: DepsDep, now: Now
) -> AccountOut:
    """Re-run every linking check for this account and record the outcome as its status (any
    key; each costs the client one Cost Explorer request, so at most 4 per account per hour)."""
    return onboarding.verify_account(conn, caller, account_id, deps=deps, now=now)


# ---- the account: edit, unlink, views, sync now ----------------------------------------------

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
