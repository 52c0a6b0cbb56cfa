"""Accounts: link, edit, unlink, verify, discovered members (api/accounts.py)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response

from functions.onboard import account_edits
from shared.db import tenant_tx
from shared.settings import get_settings
from shared.store import accounts
from shared.web import ERRORS, AdminDep, CallerDep, Conn

if TYPE_CHECKING:
    pass


from functions.onboard.routes._common import (
    AccountOut,
    BulkLinkIn,
    BulkLinkOut,
    BulkResultOut,
    DiscoveredOut,
    LinkIn,
    _first_sync,
    _now,
    _ours,
)

# ---- accounts: link, edit, unlink, verify, discovered ---------------------------------------

accounts_router = APIRouter(tags=["accounts"], responses=ERRORS)


# Declared before the /{account_id} routes so that "discovered" is never read as an id.
@accounts_router.get("/api/accounts/discovered", response_model=list[DiscoveredOut])
def list_discovered(caller: CallerDep, conn: Conn) -> list[DiscoveredOut]:
    """Members of organizations whose management account is linked (ID and name only)."""
    from functions.onboard import templates  # noqa: PLC0415

    with tenant_tx(conn, caller.agency_id):
        rows = accounts.list_discovered(conn, caller.agency_id)
    return [
        DiscoveredOut(
            aws_account_id=r.aws_account_id,
            name=r.name,
            management_account_id=r.management_id,
            management_aws_account_id=r.management_aws_account_id,
            role_arn=templates.role_arn(
                r.aws_account_id,
                templates.STACKSET_ROLE_NAME,
                r.management_role_arn.split(":", 2)[1],
            ),
            linked_account_id=r.linked_account_id,
            discovered_at=r.discovered_at,
        )
        for r in rows
    ]


@accounts_router.post(
    "/api/accounts/discovered/link",
    response_model=BulkLinkOut,
    responses={403: {"description": "admin keys only"}},
)
def link_discovered(
    caller: AdminDep, conn: Conn, request: Request, body: BulkLinkIn | None = None
) -> BulkLinkOut:
    """Link discovered members (admin) through the StackSet role name, up to 25 per call."""
    from functions.onboard import linking  # noqa: PLC0415 - loads botocore

    results, remaining = linking.link_discovered(
        conn,
        _ours(),
        agency_id=caller.agency_id,
        actor=caller.actor,
        aws_account_ids=body.aws_account_ids if body else None,
        our_account_id=get_settings().aws_account_id,
        now=_now(),
    )
    for r in results:
        if r.outcome == "linked" and r.account is not None:
            _first_sync(conn, caller.agency_id, r.account.id, request)
    return BulkLinkOut(
        results=[
            BulkResultOut(
                aws_account_id=r.aws_account_id,
                outcome=r.outcome,  # type: ignore[arg-type]
                account=AccountOut.of(r.account) if r.account else None,
                error=(
                    {"code": r.error_code, "message": r.message or ""} if r.error_code else None
                ),
            )
            for r in results
        ],
        remaining=remaining,
    )


@accounts_router.post(
    "/api/accounts",
    status_code=201,
    response_model=AccountOut,
    responses={
        200: {"description": "already linked: the existing link", "model": AccountOut},
        400: {"description": "malformed role ARN"},
        409: {"description": "that AWS account is linked through another role"},
        503: {"description": "AWS throttled or unreachable: retry; nothing was stored"},
    },
)
def link_account(
    body: LinkIn, caller: CallerDep, conn: Conn, request: Request, response: Response
) -> AccountOut:
    """Link a client account by its role ARN: assume, confirm the account, probe the trust
    policy, check Organizations and Cost Explorer, then record it. 201 when linked now, 200
    with the existing link when that role is already linked."""
    from functions.onboard import linking  # noqa: PLC0415 - loads botocore

    outcome = linking.link_account(
        conn,
        _ours(),
        agency_id=caller.agency_id,
        actor=caller.actor,
        role_arn=body.role_arn,
        alias=body.alias,
        regions=body.regions,
        our_account_id=get_settings().aws_account_id,
        now=_now(),
    )
    if outcome.created:
        _first_sync(conn, caller.agency_id, outcome.account.id, request)
    else:
        response.status_code = 200
    return AccountOut.of(outcome.account)


@accounts_router.patch("/api/accounts/{account_id}", response_model=AccountOut)
def patch_account(
    account_id: uuid.UUID, body: account_edits.AccountPatch, caller: AdminDep, conn: Conn
) -> AccountOut:
    """Change an account's alias and/or CloudTrail regions (admin)."""
    return AccountOut.of(account_edits.update_account(conn, caller, account_id, body))


@accounts_router.delete("/api/accounts/{account_id}", status_code=204)
def unlink_account(account_id: uuid.UUID, caller: AdminDep, conn: Conn) -> Response:
    """Unlink (admin): deletes the account and all its synced data; audited. A second call
    answers 404 (there is nothing left to delete)."""
    account_edits.unlink_account(conn, caller, account_id)
    return Response(status_code=204)


@accounts_router.post(
    "/api/accounts/{account_id}/verify",
    response_model=AccountOut,
    responses={503: {"description": "AWS throttled or unreachable: retry; nothing changed"}},
)
def verify_account(account_id: uuid.UUID, caller: CallerDep, conn: Conn) -> AccountOut:
    """Re-run every linking check for this account and record the outcome as its status."""
    from functions.onboard import verify  # noqa: PLC0415 - loads botocore

    row = verify.verify_account(
        conn,
        _ours(),
        agency_id=caller.agency_id,
        account_id=account_id,
        actor=caller.actor,
        our_account_id=get_settings().aws_account_id,
        now=_now(),
    )
    return AccountOut.of(row)
