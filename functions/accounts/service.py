"""The accounts of an agency: list and detail with sync health, edits, unlinking.

Views: `list_accounts` and `account_detail` do the I/O (one tenant transaction each);
`summarize` and `describe_status` are pure: the status in words, the lag per job, the Cost
Explorer requests spent this month.

Edits need no AWS call (alias and regions; unlinking deletes the account and all its synced
data), so these handlers stay light. Linking and verifying a role are onboarding's
(`functions.onboard.service`); "sync now" is the job system's
(`functions.jobs.service.request_sync`, called by the route).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from functions.onboard.schemas import AccountOut
from shared.auth import Caller
from shared.db import Connection, tenant_tx
from shared.errors import BadRequestError, NotFoundError
from shared.kit.months import month_began
from shared.kit.pages import decode_uuid_cursor, split_page
from shared.kit.params import dec_str
from shared.store import accounts, agency, audit
from shared.store import accounts as store
from shared.store.access import BEHIND_AFTER_S
from shared.store.accounts import AccountRow

from .schemas import (
    AccountDetail,
    AccountPage,
    AccountPatch,
    AccountSummary,
    JobHealth,
    SyncRun,
)

RECENT_RUNS = 20

# status -> (label, what to do). Never an AWS message: those can carry account data.
STATUS_TEXT: dict[str, tuple[str, str | None]] = {
    "active": ("Active", None),
    "needs_trust_update": (
        "Needs trust policy update",
        "Update the role's trust policy to the agency's current ExternalId (the onboarding "
        "material shows it), then verify the account.",
    ),
    "access_denied": (
        "Access revoked",
        "We could not assume the role: it was removed, or its trust policy or ExternalId "
        "changed. Reinstall the CloudFormation stack or fix the trust policy, then verify the "
        "account.",
    ),
    "paused": (
        "Paused",
        "Syncing is paused after repeated access denials. Fix the role, then verify the "
        "account to resume.",
    ),
    "cost_explorer_not_enabled": (
        "Cost Explorer not enabled",
        "Enable Cost Explorer in the AWS Billing console of this account (or of its "
        "management account). AWS prepares the data within 24 hours; we sync it then.",
    ),
    "unsafe_trust_policy": (
        "Unsafe trust policy",
        "The role can be assumed without the agency's ExternalId. Add the sts:ExternalId "
        "condition to its trust policy, then verify the account.",
    ),
    "unreachable": (
        "Unreachable",
        "AWS could not be reached for this account; we retry automatically.",
    ),
}


def describe_status(status: str) -> tuple[str, str | None]:
    return STATUS_TEXT.get(status, (status.replace("_", " ").capitalize(), None))


def _lag(job: store.JobRow, cursor: datetime | None, now: datetime) -> int | None:
    basis = cursor if job.kind == "cloudtrail" and cursor is not None else job.last_success_at
    if basis is None:
        return None
    return max(0, int((now - basis).total_seconds()))


def summarize(
    account: store.AccountSummaryRow,
    jobs: list[store.JobRow],
    cursor: datetime | None,
    spend: store.Spend | None,
    now: datetime,
) -> dict[str, Any]:
    """The fields of an AccountSummary, from the account's rows (the row's own fields are
    read from it by the model)."""
    label, action = describe_status(account.status)
    ct_lag = None if cursor is None else max(0, int((now - cursor).total_seconds()))
    cloudtrail_behind = ct_lag is not None and ct_lag > BEHIND_AFTER_S
    successes = [j.last_success_at for j in jobs if j.last_success_at is not None]
    failing = [j for j in jobs if j.consecutive_failures > 0 and j.last_error_class]
    if account.status != "active":
        human = f"{label}: {action}" if action else label
    elif failing:
        job = failing[0]
        human = (
            f"Active, but the last {job.kind} sync failed ({job.last_error_class}); "
            "it is retried automatically"
        )
    elif ct_lag is not None and cloudtrail_behind:
        human = (
            f"Active, but its CloudTrail events are {ct_lag // 3600} hours behind; "
            "the sync is catching up"
        )
    elif not successes:
        human = "Active: waiting for its first sync"
    else:
        human = "Active: in sync"
    return {
        **vars(account),
        "status_label": label,
        "human_status": human,
        "action": action,
        "last_successful_sync_at": max(successes) if successes else None,
        "jobs": [
            JobHealth.model_validate({**vars(j), "lag_seconds": _lag(j, cursor, now)}) for j in jobs
        ],
        "cloudtrail_lag_seconds": ct_lag,
        "cloudtrail_behind": cloudtrail_behind,
        "ce_requests_this_month": spend.ce_requests if spend else 0,
        "ce_cost_this_month_usd": dec_str(spend.ce_cost_usd) if spend else "0",
    }


def list_accounts(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    now: datetime,
    limit: int,
    cursor: str | None,
) -> AccountPage:
    after = None
    if cursor is not None:
        after = decode_uuid_cursor("accounts", cursor)
    with tenant_tx(conn, agency_id):
        rows = store.page_accounts(conn, agency_id, after, limit + 1)
        page, next_cursor = split_page(rows, limit, "accounts", lambda a: (a.linked_at, str(a.id)))
        ids = [a.id for a in page]
        jobs = store.jobs_of(conn, agency_id, ids)
        cursors = store.oldest_cursors(conn, agency_id, ids)
        spend = store.spend_since(conn, agency_id, ids, month_began(now))
    by_account: dict[uuid.UUID, list[store.JobRow]] = {}
    for job in jobs:
        by_account.setdefault(job.account_id, []).append(job)
    items = [
        AccountSummary.model_validate(
            summarize(a, by_account.get(a.id, []), cursors.get(a.id), spend.get(a.id), now)
        )
        for a in page
    ]
    return AccountPage(items=items, next_cursor=next_cursor)


def account_detail(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, *, now: datetime
) -> AccountDetail:
    with tenant_tx(conn, agency_id):
        account = store.get_account(conn, agency_id, account_id)
        if account is None:
            raise NotFoundError("account not found")
        jobs = store.jobs_of(conn, agency_id, [account_id])
        cursor = store.oldest_cursors(conn, agency_id, [account_id]).get(account_id)
        spend = store.spend_since(conn, agency_id, [account_id], month_began(now))
        runs = store.recent_runs(conn, agency_id, account_id, RECENT_RUNS)
        members = store.discovered_count(conn, agency_id, account_id)
    return AccountDetail.model_validate(
        {
            **summarize(account, jobs, cursor, spend.get(account_id), now),
            "recent_runs": [SyncRun.model_validate(r) for r in runs],
            "discovered_members": members,
        }
    )


# ---- edits ----------------------------------------------------------------------------------


def update_account(
    conn: Connection, caller: Caller, account_id: uuid.UUID, patch: AccountPatch
) -> AccountOut:
    """Change an account's alias and/or CloudTrail regions (admin), audited."""
    caller.require_admin()
    changes: dict[str, Any] = {name: getattr(patch, name) for name in patch.model_fields_set}
    if not changes:  # pragma: no cover - the model refuses an empty patch
        raise BadRequestError("nothing to change: send alias and/or regions")
    with tenant_tx(conn, caller.agency_id):
        if "regions" in changes and changes["regions"] is None:
            row_of_agency = agency.get(conn, caller.agency_id)
            changes["regions"] = list(row_of_agency.default_regions) if row_of_agency else None
        row = accounts.update(conn, caller.agency_id, account_id, **changes)
        if row is None:
            raise NotFoundError("no such account in this agency")
        audit.record(
            conn,
            caller.agency_id,
            caller.actor,
            "account.updated",
            str(account_id),
            {"fields": sorted(changes), "regions": row.regions},
        )
    return AccountOut.model_validate(row)


def unlink_account(conn: Connection, caller: Caller, account_id: uuid.UUID) -> AccountRow:
    """Delete the account and all its synced data (cascade), audited.

    Not idempotent in its answer: a second call finds nothing and answers 404 (the data is
    gone either way; nothing else changes).
    """
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        gone = accounts.delete(conn, caller.agency_id, account_id)
        if gone is None:
            raise NotFoundError("no such account in this agency (already unlinked?)")
        agency.purge_unused_external_ids(conn, caller.agency_id)
        audit.record(
            conn,
            caller.agency_id,
            caller.actor,
            "account.unlinked",
            str(account_id),
            {"aws_account_id": gone.aws_account_id, "role_arn": gone.role_arn},
        )
    return gone
