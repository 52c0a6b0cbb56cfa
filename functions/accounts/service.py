"""Accounts and their sync health: status in words, lag per job, Cost Explorer spend.

`list_accounts` and `account_detail` do the I/O (one tenant transaction each); `summarize` and
`describe_status` are pure.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from functions.reads.models import accounts as models
from shared.db import Connection, tenant_tx
from shared.errors import NotFoundError, UnprocessableError
from shared.kit.months import month_began
from shared.kit.pages import decode_cursor, encode_cursor
from shared.kit.params import dec_str
from shared.store import accounts_read as store

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
    account: store.AccountRow,
    jobs: list[store.JobRow],
    cursor: datetime | None,
    spend: store.Spend | None,
    now: datetime,
) -> dict[str, object]:
    """The fields of an AccountSummary, from the account's rows."""
    label, action = describe_status(account.status)
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
    elif not successes:
        human = "Active: waiting for its first sync"
    else:
        human = "Active: in sync"
    return {
        "id": account.id,
        "aws_account_id": account.aws_account_id,
        "alias": account.alias,
        "status": account.status,
        "status_label": label,
        "human_status": human,
        "action": action,
        "status_message": account.status_message,
        "is_management": account.is_management,
        "regions": account.regions,
        "linked_at": account.linked_at,
        "verified_at": account.verified_at,
        "last_successful_sync_at": max(successes) if successes else None,
        "jobs": [
            models.JobHealth(
                kind=j.kind,
                state=j.state,
                next_run_at=j.next_run_at,
                last_success_at=j.last_success_at,
                last_error_class=j.last_error_class,
                last_error_at=j.last_error_at,
                consecutive_failures=j.consecutive_failures,
                lag_seconds=_lag(j, cursor, now),
            )
            for j in jobs
        ],
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
) -> models.AccountPage:
    after = None
    if cursor is not None:
        at, key = decode_cursor("accounts", cursor)
        try:
            after = (at, uuid.UUID(key))
        except ValueError:
            raise UnprocessableError(
                "cursor: not a cursor from this endpoint", code="invalid_request"
            ) from None
    with tenant_tx(conn, agency_id):
        rows = store.page_accounts(conn, agency_id, after, limit + 1)
        page, more = rows[:limit], len(rows) > limit
        ids = [a.id for a in page]
        jobs = store.jobs_of(conn, agency_id, ids)
        cursors = store.oldest_cursors(conn, agency_id, ids)
        spend = store.spend_since(conn, agency_id, ids, month_began(now))
    by_account: dict[uuid.UUID, list[store.JobRow]] = {}
    for job in jobs:
        by_account.setdefault(job.account_id, []).append(job)
    items = [
        models.AccountSummary.model_validate(
            summarize(a, by_account.get(a.id, []), cursors.get(a.id), spend.get(a.id), now)
        )
        for a in page
    ]
    next_cursor = (
        encode_cursor("accounts", page[-1].linked_at, str(page[-1].id)) if more and page else None
    )
    return models.AccountPage(items=items, next_cursor=next_cursor)


def account_detail(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, *, now: datetime
) -> models.AccountDetail:
    with tenant_tx(conn, agency_id):
        account = store.get_account(conn, agency_id, account_id)
        if account is None:
            raise NotFoundError("account not found")
        jobs = store.jobs_of(conn, agency_id, [account_id])
        cursor = store.oldest_cursors(conn, agency_id, [account_id]).get(account_id)
        spend = store.spend_since(conn, agency_id, [account_id], month_began(now))
        runs = store.recent_runs(conn, agency_id, account_id, RECENT_RUNS)
        members = store.discovered_count(conn, agency_id, account_id)
    fields = summarize(account, jobs, cursor, spend.get(account_id), now)
    return models.AccountDetail.model_validate(
        {
            **fields,
            "recent_runs": [
                models.SyncRun(
                    id=r.id,
                    kind=r.kind,
                    status=r.status,
                    started_at=r.started_at,
                    finished_at=r.finished_at,
                    api_calls=r.api_calls,
                    ce_requests=r.ce_requests,
                    ce_cost_usd=dec_str(r.ce_cost_usd),
                    months=[f"{m.year:04d}-{m.month:02d}" for m in r.months or []],
                    rows_written=r.rows_written,
                    error_class=r.error_class,
                )
                for r in runs
            ],
            "discovered_members": members,
        }
    )
