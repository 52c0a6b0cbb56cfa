"""Verification: every linking check again for one account, and the weekly trust probe.

`verify_account` (POST /api/accounts/{id}/verify) re-runs the checks of `linking` and records
the outcome as the account's status. It costs the client a Cost Explorer request, so it is
rate-limited per account (VERIFY_LIMIT per hour, counted before any AWS call):

    access_denied            neither the current nor the account's previous ExternalId works
    unsafe_trust_policy      the role lets us in without the ExternalId (syncs stop: the
                             dispatcher skips such accounts)
    needs_trust_update       only the ExternalId from before a rotation works (syncs go on)
    cost_explorer_not_enabled
    active

When the current ExternalId works, the account's `external_id_id` moves to it. When the role
is reachable and safe, sync jobs paused after an AccessDenied resume (`shared.store.jobs.resume`).
Throttling or a network failure answers a retryable 503 and changes nothing.

`run_weekly_probe` (GET /api/cron/verify, Vercel Cron) runs only the cheap part for every due
account (the assume with its ExternalId, and the trust-policy probe: STS calls, no Cost
Explorer charge): an account found open is flagged `unsafe_trust_policy`, one that refuses us
`access_denied`, one AWS would not answer `unreachable`. Accounts come from the SECURITY DEFINER
function `cao.accounts_due_trust_probe` (ids only: entitled agencies, not paused, not verified
in the last 6 days, stalest first); each is then read and written inside its own agency's
tenant transaction. AWS calls run in a small thread pool, never inside a transaction; the one
database connection is used from this thread only. A time budget keeps the run inside the
function's maxDuration; whatever is left is due first next time.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.aws import ClientFactory
from shared.db import Connection, system_tx, tenant_tx
from shared.errors import (
    AccessDeniedError,
    AwsUnreachableError,
    NotFoundError,
    RateLimitedError,
    ThrottledError,
)
from shared.logs import get_logger
from shared.store import accounts, agency, audit, jobs, rate_limits
from shared.store.accounts import AccountRow
from shared.store.agency import ExternalIdRow

from . import linking

PROBE_ACTOR = "system:trust-probe"
VERIFY_WINDOW_S = 3600
VERIFY_LIMIT = 4  # per account per window, as for sync-now: each costs a Cost Explorer request
# (applied by the database, in cao.rate_limit_hit; tests/test_schema_privileges.py holds them
# equal)
# Weekly cron, a day of slack. Applied by cao.accounts_due_trust_probe on the database's clock
# (schema.sql); here for the record and the tests.
PROBE_INTERVAL = timedelta(days=6)
PROBE_LIMIT = 1000
PROBE_WORKERS = 8
PROBE_BUDGET_S = 20.0  # of the function's 30 s maxDuration
_FAILED = frozenset({"access_denied", "unreachable", "unsafe_trust_policy", "needs_trust_update"})


@dataclass(frozen=True)
class _Target:
    agency_id: uuid.UUID
    account: AccountRow
    arn: linking.RoleArn
    candidates: list[ExternalIdRow]  # current first, then the account's previous value


def _load(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, our_account_id: str
) -> _Target | None:
    with tenant_tx(conn, agency_id):
        account = accounts.get(conn, agency_id, account_id)
        current = agency.current_external_id(conn, agency_id)
        previous = None
        if account is not None and current is not None and account.external_id_id != current.id:
            previous = agency.external_id(conn, agency_id, account.external_id_id)
    if account is None or current is None:
        return None
    arn = linking.parse_role_arn(account.role_arn, our_account_id)
    return _Target(agency_id, account, arn, [current] + ([previous] if previous else []))


def _join(*parts: str | None) -> str | None:
    text = " ".join(p for p in parts if p)
    return text or None


def verify_account(
    conn: Connection,
    ours: ClientFactory,
    *,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    actor: str,
    our_account_id: str,
    now: datetime,
) -> AccountRow:
    target = _load(conn, agency_id, account_id, our_account_id)
    if target is None:
        raise NotFoundError("no such account in this agency")
    # Counted once the account is known to be the caller's (another agency cannot spend this
    # account's budget by guessing its id), and before any AWS call: each verification costs
    # the client a Cost Explorer request.
    with system_tx(conn):
        wait = rate_limits.hit(conn, f"verify:{account_id}")
    if wait:
        raise RateLimitedError(
            f"at most {VERIFY_LIMIT} verifications per account per hour (each costs the client "
            "a Cost Explorer request); retry later",
            retry_after=wait,
        )
    current = target.candidates[0]
    result: linking.CheckResult | None = None
    try:
        result = linking.run_checks(
            ours,
            target.arn,
            target.candidates,
            agency_id=agency_id,
            purpose="verify",
            our_account_id=our_account_id,
            today=now.date(),
        )
        status = "active"
        message: str | None = None
        if not result.cost_explorer_enabled:
            status, message = "cost_explorer_not_enabled", linking.COST_EXPLORER_NOT_ENABLED
        if result.external_id.id != current.id:
            status, message = "needs_trust_update", _join(linking.NEEDS_TRUST_UPDATE, message)
    except AccessDeniedError:
        status, message = "access_denied", linking.assume_denied_message(our_account_id)
    except linking.UnsafeTrustPolicyError as exc:
        status, message = "unsafe_trust_policy", exc.message
    except (ThrottledError, AwsUnreachableError) as exc:
        raise linking.retryable(exc) from None

    with tenant_tx(conn, agency_id):
        if result is None:
            accounts.set_status(
                conn,
                agency_id,
                account_id,
                status=status,
                message=message,
                denied=status == "access_denied",
            )
        else:
            accounts.set_status(
                conn,
                agency_id,
                account_id,
                status=status,
                message=message,
                verified_at=now,
                external_id_id=result.external_id.id,
                is_management=result.organization.is_management,
            )
            if result.organization.is_management:
                accounts.replace_discovered(
                    conn, agency_id, account_id, result.organization.members, now
                )
            agency.purge_unused_external_ids(conn, agency_id)
            # Reachable and safe again: sync jobs paused after AccessDenied become due now.
            jobs.resume(conn, agency_id, account_id, now)
        audit.record(
            conn,
            agency_id,
            actor,
            "account.verified",
            str(account_id),
            {"status": status, "previous_status": target.account.status},
        )
        row = accounts.get(conn, agency_id, account_id)
    if row is None:  # unlinked meanwhile
        raise NotFoundError("no such account in this agency")
    return row


# ---- the weekly probe -----------------------------------------------------------------------


@dataclass(frozen=True)
class _ProbeOutcome:
    status: str  # "ok" or a flag status
    external_id: ExternalIdRow | None = None


@dataclass
class ProbeSummary:
    due: int = 0
    probed: int = 0
    ok: int = 0
    flagged: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # not reached within the time budget: due first next run


def _probe(
    ours: ClientFactory, target: _Target, deadline: float, clock: Callable[[], float]
) -> _ProbeOutcome | None:
    """AWS only (runs in a worker thread): None when the time budget is spent."""
    if clock() > deadline:
        return None
    try:
        _factory, used = linking.assume_first(
            ours, target.arn, target.candidates, target.agency_id, "verify"
        )
        del _factory  # the probe needs only to know that it worked
        if linking.trust_policy_is_open(ours, target.arn, target.agency_id):
            return _ProbeOutcome("unsafe_trust_policy")
    except AccessDeniedError:
        return _ProbeOutcome("access_denied")
    except (ThrottledError, AwsUnreachableError):
        return _ProbeOutcome("unreachable")
    return _ProbeOutcome("ok", used)


def _record_probe(
    conn: Connection, target: _Target, outcome: _ProbeOutcome, our_account_id: str, now: datetime
) -> str:
    """Write one probe outcome; returns the status recorded."""
    agency_id, account = target.agency_id, target.account
    with tenant_tx(conn, agency_id):
        fresh = accounts.get_for_update(conn, agency_id, account.id)
        if fresh is None:  # unlinked while we probed
            return "gone"
        if outcome.status == "ok":
            assert outcome.external_id is not None
            on_current = outcome.external_id.id == target.candidates[0].id
            if not on_current:
                status, message = "needs_trust_update", linking.NEEDS_TRUST_UPDATE
            elif fresh.status in _FAILED:
                status, message = "active", None
            else:  # active, or cost_explorer_not_enabled: the probe does not ask CE
                status, message = fresh.status, fresh.status_message
            accounts.set_status(
                conn,
                agency_id,
                account.id,
                status=status,
                message=message,
                verified_at=now,
                external_id_id=outcome.external_id.id,
            )
            agency.purge_unused_external_ids(conn, agency_id)
            jobs.resume(conn, agency_id, account.id, now)
        else:
            status = outcome.status
            message = {
                "access_denied": linking.assume_denied_message(our_account_id),
                "unsafe_trust_policy": linking.unsafe_trust_message(our_account_id),
                "unreachable": linking.UNREACHABLE,
            }[status]
            accounts.set_status(
                conn,
                agency_id,
                account.id,
                status=status,
                message=message,
                denied=status == "access_denied",
            )
        if status != fresh.status:
            audit.record(
                conn,
                agency_id,
                PROBE_ACTOR,
                "account.status_changed",
                str(account.id),
                {"status": status, "previous_status": fresh.status},
            )
    return status


def run_weekly_probe(
    conn: Connection,
    ours: ClientFactory,
    now: datetime,
    *,
    our_account_id: str,
    limit: int = PROBE_LIMIT,
    budget_s: float = PROBE_BUDGET_S,
    workers: int = PROBE_WORKERS,
    clock: Callable[[], float] = time.monotonic,
) -> ProbeSummary:
    deadline = clock() + budget_s
    with system_tx(conn):
        due = accounts.due_for_trust_probe(conn, limit)
    targets = [t for t in (_load(conn, a, c, our_account_id) for a, c in due) if t is not None]
    summary = ProbeSummary(due=len(due))
    flagged: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(lambda t: _probe(ours, t, deadline, clock), targets))
    for target, outcome in zip(targets, outcomes, strict=True):
        if outcome is None:
            summary.skipped += 1
            continue
        summary.probed += 1
        status = _record_probe(conn, target, outcome, our_account_id, now)
        if outcome.status == "ok":
            summary.ok += 1
        else:
            flagged[status] += 1
    summary.flagged = dict(flagged)
    get_logger().info(
        "trust probe finished",
        extra={
            "due": summary.due,
            "probed": summary.probed,
            "ok": summary.ok,
            "flagged": summary.flagged,
            "skipped": summary.skipped,
        },
    )
    return summary
