"""The sync job model: jobs, leases, runs, and the sync status of accounts.

One row of `cao.sync_jobs` per (account, kind): 'costs' (functions/sync_costs), 'cloudtrail'
(functions/sync_cloudtrail), 'verify'; dispatched, consumed and run by functions/jobs. Its life:

    idle/failed --dispatch_due--> queued --claim--> running --complete--> idle (next_run_at later)
                                                            --fail------> idle or failed
                                                            --pause-----> paused (until resume)
                                                            --release---> queued (redelivery)

Delivery through the queue is at least once, so a job carries a lease in Postgres: `claim`
takes it (`cao.claim_job`: FOR UPDATE SKIP LOCKED, a fresh token, an expiry) in one short
transaction; the worker then calls AWS outside any transaction; and it writes its results in
another transaction that starts with `fence`, which locks the job row and checks the token. A
worker whose lease expired and was reclaimed by another delivery finds a different token there
and raises LeaseLostError before writing anything; and while a worker holds the row lock no
claimer can take the job (claim skips locked rows), so its own writes cannot interleave with a
new lease. No lock is held across an AWS call.

Runs (`cao.sync_runs`) are the per-attempt record an agency reads: status, calls, Cost Explorer
requests and what they cost the client ($0.01 each), months, rows written, error class.

Every function takes a connection already inside a transaction: `tenant_tx(conn, agency_id)`
for everything but `dispatch_due` and `claim` (SECURITY DEFINER functions, cross-tenant by
nature, fine in `system_tx`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from psycopg import sql
from psycopg.rows import class_row

from shared.db import Connection
from shared.errors import LeaseLostError

# The job kind vocabulary. JOB_KINDS: the kinds a linked account gets a job for, which the
# dispatcher publishes and the worker runs (functions/jobs/registry.py has a handler for each).
# 'verify' (the periodic trust probe) is created and run by whoever runs it.
JOB_KINDS: tuple[str, ...] = ("costs", "cloudtrail")
ALL_KINDS: frozenset[str] = frozenset({*JOB_KINDS, "verify"})

CE_REQUEST_USD = Decimal("0.01")  # what AWS charges the client per GetCostAndUsage request
MAX_ERROR_CLASS = 64
PAUSE_AFTER_DENIALS = 3
MAX_STATUS_MESSAGE = 1000

RUN_STATUSES = frozenset({"running", "succeeded", "partial", "failed", "superseded", "abandoned"})

ACCESS_DENIED_MESSAGE = (
    "AWS refused to let us assume the role: it was removed, or its trust policy or ExternalId "
    "changed. Check the CloudAgencyOps stack in this account. Syncing pauses after "
    f"{PAUSE_AFTER_DENIALS} refusals in a row."
)
PAUSED_MESSAGE = (
    f"Paused after {PAUSE_AFTER_DENIALS} refused role assumptions in a row: we stopped calling "
    "this account. Restore the role, then verify the account again to resume syncing."
)
COST_EXPLORER_MESSAGE = (
    "Cost Explorer is not enabled in this AWS account. Sign in to the AWS Billing and Cost "
    "Management console as the account owner and open Cost Explorer once to enable it (it "
    "cannot be enabled through the API); data appears within 24 hours. We retry daily."
)


@dataclass(frozen=True)
class Lease:
    """A claimed job: only the holder of `token` may write the job's results."""

    job_id: uuid.UUID
    token: uuid.UUID
    agency_id: uuid.UUID
    account_id: uuid.UUID
    kind: str
    deliveries: int


@dataclass(frozen=True)
class DueJob:
    """A job picked for publishing: `due_at` is the period the message is for."""

    job_id: uuid.UUID
    agency_id: uuid.UUID
    account_id: uuid.UUID
    kind: str
    due_at: datetime


@dataclass(frozen=True)
class JobState:
    """Where a job stands, for a consumer that could not claim it."""

    state: str
    next_run_at: datetime
    lease_expires_at: datetime | None
    consecutive_failures: int


@dataclass(frozen=True)
class SyncTarget:
    """What a sync needs to reach an account. `external_id` lives in memory only: it is kept
    out of repr, never logged and never written anywhere."""

    account_id: uuid.UUID
    aws_account_id: str
    role_arn: str
    is_management: bool
    status: str
    external_id: str = field(repr=False)


# ---- jobs ------------------------------------------------------------------------------------


def ensure_jobs(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    kinds: Iterable[str] = JOB_KINDS,
    *,
    due_at: datetime | None = None,
) -> None:
    """Create the account's jobs that do not exist yet (due at `due_at`, default now)."""
    wanted = list(dict.fromkeys(kinds))
    _check_kinds(wanted)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO cao.sync_jobs (agency_id, account_id, kind, next_run_at)"
            " VALUES (%s, %s, %s, coalesce(%s, now()))"
            " ON CONFLICT (account_id, kind) DO NOTHING",
            [(agency_id, account_id, kind, due_at) for kind in wanted],
        )


def request_now(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    now: datetime,
    kinds: Iterable[str] = JOB_KINDS,
) -> list[DueJob]:
    """Make the account's jobs due now and mark them queued; returns those to publish.

    A job already queued (within the hour) or running under a live lease is left alone: the
    delivery on its way does the work; one waiting for a delayed follow-up runs now. Paused
    jobs stay paused (they resume on verification).
    """
    wanted = list(dict.fromkeys(kinds))
    _check_kinds(wanted)
    rows = conn.execute(
        "UPDATE cao.sync_jobs SET next_run_at = least(next_run_at, %(now)s),"
        " state = 'queued', requested_at = %(now)s"
        " WHERE agency_id = %(agency)s AND account_id = %(account)s AND kind = ANY(%(kinds)s)"
        "   AND (state IN ('idle', 'failed')"
        "        OR (state = 'queued' AND coalesce(requested_at, next_run_at)"
        "            <= %(now)s - interval '1 hour')"
        # Waiting for a delayed follow-up (queue_follow_up): it runs now instead.
        "        OR (state = 'queued' AND requested_at > %(now)s)"
        "        OR (state = 'running' AND lease_expires_at <= %(now)s))"
        " RETURNING id, agency_id, account_id, kind, next_run_at",
        {"now": now, "agency": agency_id, "account": account_id, "kinds": wanted},
    ).fetchall()
    return [DueJob(*row) for row in rows]


def queue_follow_up(
    conn: Connection, agency_id: uuid.UUID, job_id: uuid.UUID, before: datetime
) -> DueJob | None:
    """Mark the job queued for its next run if that falls before `before` (and nobody holds
    it); returns it to publish, with a delay, now. The dispatcher takes it up again only if it
    stays unclaimed for an hour after it fell due (requested_at is set to that time)."""
    row = conn.execute(
        "UPDATE cao.sync_jobs SET state = 'queued', requested_at = next_run_at"
        " WHERE agency_id = %s AND id = %s AND state IN ('idle', 'failed')"
        "   AND lease_token IS NULL AND next_run_at < %s"
        " RETURNING id, agency_id, account_id, kind, next_run_at",
        (agency_id, job_id, before),
    ).fetchone()
    return None if row is None else DueJob(*row)


def unqueue(conn: Connection, agency_id: uuid.UUID, job_ids: Sequence[uuid.UUID]) -> None:
    """Undo `request_now` for jobs whose message could not be published."""
    conn.execute(
        "UPDATE cao.sync_jobs SET state = 'idle'"
        " WHERE agency_id = %s AND id = ANY(%s) AND state = 'queued'",
        (agency_id, list(job_ids)),
    )


def dispatch_due(conn: Connection, kind: str, limit: int) -> list[DueJob]:
    """Due jobs of `kind` of entitled agencies, marked queued (cao.dispatch_due_jobs), as of
    the database's clock: "due" is not the caller's to decide."""
    _check_kinds([kind])
    rows = conn.execute(
        "SELECT job_id, agency_id, account_id, kind, due_at FROM cao.dispatch_due_jobs(%s, %s)",
        (kind, limit),
    ).fetchall()
    return [DueJob(*row) for row in rows]


def claim(conn: Connection, job_id: uuid.UUID, now: datetime, lease_seconds: int) -> Lease | None:
    """Take the job's lease, or None: held by a live delivery, gone, not due, or paused."""
    row = conn.execute(
        "SELECT lease_token, agency_id, account_id, kind, deliveries"
        " FROM cao.claim_job(%s, %s, %s)",
        (job_id, now, lease_seconds),
    ).fetchone()
    if row is None:
        return None
    token, agency_id, account_id, kind, deliveries = row
    return Lease(job_id, token, agency_id, account_id, kind, deliveries)


def job_state(conn: Connection, agency_id: uuid.UUID, job_id: uuid.UUID) -> JobState | None:
    """The job's state, lease expiry and due time (tenant-scoped); None when it is gone."""
    cur = conn.cursor(row_factory=class_row(JobState))
    return cur.execute(
        "SELECT state, next_run_at, lease_expires_at, consecutive_failures FROM cao.sync_jobs"
        " WHERE agency_id = %s AND id = %s",
        (agency_id, job_id),
    ).fetchone()


def fence(conn: Connection, lease: Lease) -> None:
    """Lock the job row if `lease` still holds it; LeaseLostError otherwise.

    Call it first in the transaction that writes a sync's results: the row lock keeps any
    claimer away until that transaction ends, so nothing a stale worker would write lands.
    """
    row = conn.execute(
        "SELECT 1 FROM cao.sync_jobs"
        " WHERE agency_id = %s AND id = %s AND lease_token = %s FOR UPDATE",
        (lease.agency_id, lease.job_id, lease.token),
    ).fetchone()
    if row is None:
        raise LeaseLostError("the job's lease was taken over by another delivery")


def complete(
    conn: Connection, lease: Lease, next_run_at: datetime, *, now: datetime | None = None
) -> None:
    """The job succeeded: release the lease and schedule the next run."""
    _finish_job(
        conn,
        lease,
        "state = 'idle', next_run_at = %(next)s, last_success_at = coalesce(%(now)s, now()),"
        " last_error_class = NULL, last_error_at = NULL, consecutive_failures = 0",
        {"next": next_run_at, "now": now},
    )


def fail(
    conn: Connection,
    lease: Lease,
    error_class: str,
    retry_at: datetime,
    terminal: bool,
    *,
    now: datetime | None = None,
) -> None:
    """The job failed (classified and recorded): release the lease, retry at `retry_at`.

    `terminal` leaves it in the visible 'failed' state (its deliveries are used up); the
    dispatcher still picks it up again at `retry_at`.
    """
    _finish_job(
        conn,
        lease,
        "state = %(state)s, next_run_at = %(retry)s, last_error_class = %(error)s,"
        " last_error_at = coalesce(%(now)s, now()),"
        " consecutive_failures = consecutive_failures + 1",
        {
            "state": "failed" if terminal else "idle",
            "retry": retry_at,
            "error": error_class[:MAX_ERROR_CLASS],
            "now": now,
        },
    )


def pause(conn: Connection, lease: Lease, error_class: str, *, now: datetime | None = None) -> None:
    """Stop the job until `resume` (the account must be verified again)."""
    _finish_job(
        conn,
        lease,
        "state = 'paused', last_error_class = %(error)s, last_error_at = coalesce(%(now)s, now()),"
        " consecutive_failures = consecutive_failures + 1",
        {"error": error_class[:MAX_ERROR_CLASS], "now": now},
    )


def renew(conn: Connection, lease: Lease, now: datetime, lease_seconds: int) -> bool:
    """Extend a live worker's lease to `now + lease_seconds` (the heartbeat). False when the
    lease is no longer ours: the job was taken over (or settled) and the worker should stop."""
    cur = conn.execute(
        "UPDATE cao.sync_jobs SET lease_expires_at = greatest(lease_expires_at, %s)"
        " WHERE agency_id = %s AND id = %s AND lease_token = %s AND state = 'running'",
        (now + timedelta(seconds=lease_seconds), lease.agency_id, lease.job_id, lease.token),
    )
    return cur.rowcount == 1


def release(conn: Connection, lease: Lease) -> bool:
    """Give the lease back after an unexpected error so that a redelivery can claim the job at
    once; it stays queued. False when the lease was no longer ours."""
    cur = conn.execute(
        "UPDATE cao.sync_jobs SET lease_token = NULL, lease_expires_at = NULL, state = 'queued'"
        " WHERE agency_id = %s AND id = %s AND lease_token = %s",
        (lease.agency_id, lease.job_id, lease.token),
    )
    return cur.rowcount == 1


def resume(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, now: datetime) -> int:
    """After the account was verified again: its paused jobs become due now. Returns how many.

    Also clears the account's denial count; onboarding sets the account's status itself.
    """
    conn.execute(
        "UPDATE cao.accounts SET consecutive_denials = 0 WHERE agency_id = %s AND id = %s",
        (agency_id, account_id),
    )
    cur = conn.execute(
        "UPDATE cao.sync_jobs SET state = 'idle', next_run_at = %s, consecutive_failures = 0,"
        " lease_token = NULL, lease_expires_at = NULL"
        " WHERE agency_id = %s AND account_id = %s AND state = 'paused'",
        (now, agency_id, account_id),
    )
    return cur.rowcount


def advance_idle(
    conn: Connection,
    agency_id: uuid.UUID,
    account_ids: Sequence[uuid.UUID],
    *,
    kind: str,
    next_run_at: datetime,
    now: datetime,
) -> int:
    """Mark other accounts' idle jobs of `kind` done until `next_run_at` (their work was done
    through another account, e.g. members synced through their payer). Leased jobs are left
    alone: their own worker decides."""
    if not account_ids:
        return 0
    cur = conn.execute(
        "UPDATE cao.sync_jobs SET next_run_at = greatest(next_run_at, %s), last_success_at = %s"
        " WHERE agency_id = %s AND account_id = ANY(%s) AND kind = %s"
        "   AND state IN ('idle', 'failed') AND lease_token IS NULL",
        (next_run_at, now, agency_id, list(account_ids), kind),
    )
    return cur.rowcount


def _finish_job(
    conn: Connection, lease: Lease, assignments: str, params: dict[str, object]
) -> None:
    # `assignments` are constant fragments of this module; every value is a parameter.
    query = sql.SQL(
        "UPDATE cao.sync_jobs SET lease_token = NULL, lease_expires_at = NULL, deliveries = 0, {}"
        " WHERE agency_id = %(agency)s AND id = %(job)s AND lease_token = %(token)s"
    ).format(sql.SQL(assignments))
    cur = conn.execute(
        query, {**params, "agency": lease.agency_id, "job": lease.job_id, "token": lease.token}
    )
    if cur.rowcount != 1:
        raise LeaseLostError("the job's lease was taken over by another delivery")


def _check_kinds(kinds: Iterable[str]) -> None:
    unknown = set(kinds) - ALL_KINDS
    if unknown:
        raise ValueError(f"unknown job kind(s): {', '.join(sorted(unknown))}")


# ---- runs ------------------------------------------------------------------------------------


def abandon_runs(conn: Connection, lease: Lease, now: datetime) -> int:
    """Close as 'abandoned' the job's runs still 'running': whoever holds `lease` now claimed
    the job, so their deliveries died without settling (a killed worker, a lease that expired
    unrenewed). Returns how many."""
    cur = conn.execute(
        "UPDATE cao.sync_runs SET status = 'abandoned', finished_at = %s"
        " WHERE agency_id = %s AND account_id = %s AND kind = %s AND status = 'running'",
        (now, lease.agency_id, lease.account_id, lease.kind),
    )
    return cur.rowcount


def start_run(conn: Connection, lease: Lease, now: datetime) -> uuid.UUID:
    """Record that a delivery started working on the job."""
    row = conn.execute(
        "INSERT INTO cao.sync_runs (agency_id, account_id, kind, started_at)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (lease.agency_id, lease.account_id, lease.kind, now),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def finish_run(
    conn: Connection,
    agency_id: uuid.UUID,
    run_id: uuid.UUID,
    status: str,
    *,
    now: datetime,
    api_calls: int = 0,
    ce_requests: int = 0,
    months: Sequence[date] = (),
    rows_written: int = 0,
    error_class: str | None = None,
) -> None:
    """Close a run with what it did; its Cost Explorer cost is requests x $0.01."""
    if status not in RUN_STATUSES - {"running"}:
        raise ValueError(f"not a final run status: {status}")
    conn.execute(
        "UPDATE cao.sync_runs SET status = %s, finished_at = %s, api_calls = %s,"
        " ce_requests = %s, ce_cost_usd = %s, months = %s, rows_written = %s, error_class = %s"
        " WHERE agency_id = %s AND id = %s AND status = 'running'",
        (
            status,
            now,
            api_calls,
            ce_requests,
            CE_REQUEST_USD * ce_requests,
            sorted(months) or None,
            rows_written,
            error_class[:MAX_ERROR_CLASS] if error_class else None,
            agency_id,
            run_id,
        ),
    )


# ---- account sync status -----------------------------------------------------------------------


def sync_target(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> SyncTarget | None:
    """The account and the ExternalId it was verified with (for the assume-role call only)."""
    row = conn.execute(
        "SELECT a.id, a.aws_account_id, a.role_arn, a.is_management, a.status, e.value"
        " FROM cao.accounts a JOIN cao.external_ids e"
        "   ON e.id = a.external_id_id AND e.agency_id = a.agency_id"
        " WHERE a.agency_id = %s AND a.id = %s",
        (agency_id, account_id),
    ).fetchone()
    if row is None:
        return None
    return SyncTarget(row[0], row[1], row[2], row[3], row[4], external_id=row[5])


def note_access_denied(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> bool:
    """Count a refused assume-role; the account shows `access_denied`, then `paused` after
    PAUSE_AFTER_DENIALS in a row. True when this refusal paused it."""
    row = conn.execute(
        "UPDATE cao.accounts SET consecutive_denials = consecutive_denials + 1,"
        " status = CASE WHEN consecutive_denials + 1 >= %(limit)s THEN 'paused'"
        "               ELSE 'access_denied' END,"
        " status_message = CASE WHEN consecutive_denials + 1 >= %(limit)s THEN %(paused)s"
        "                       ELSE %(denied)s END"
        " WHERE agency_id = %(agency)s AND id = %(account)s"
        "   AND status NOT IN ('paused', 'unsafe_trust_policy')"
        " RETURNING status",
        {
            "limit": PAUSE_AFTER_DENIALS,
            "paused": PAUSED_MESSAGE,
            "denied": ACCESS_DENIED_MESSAGE,
            "agency": agency_id,
            "account": account_id,
        },
    ).fetchone()
    return row is not None and row[0] == "paused"


def note_access_ok(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> None:
    """The role let us in: the denial streak ends and an `access_denied` mark is lifted."""
    conn.execute(
        "UPDATE cao.accounts SET consecutive_denials = 0,"
        " status = CASE WHEN status = 'access_denied' THEN 'active' ELSE status END,"
        " status_message = CASE WHEN status = 'access_denied' THEN NULL ELSE status_message END"
        " WHERE agency_id = %s AND id = %s",
        (agency_id, account_id),
    )


def note_cost_explorer(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, enabled: bool
) -> None:
    """Mark (or, once it answers, unmark) the account as having Cost Explorer disabled."""
    if enabled:
        conn.execute(
            "UPDATE cao.accounts SET status = 'active', status_message = NULL"
            " WHERE agency_id = %s AND id = %s AND status = 'cost_explorer_not_enabled'",
            (agency_id, account_id),
        )
        return
    conn.execute(
        "UPDATE cao.accounts SET status = 'cost_explorer_not_enabled', status_message = %s"
        " WHERE agency_id = %s AND id = %s AND status IN ('active', 'access_denied')",
        (COST_EXPLORER_MESSAGE[:MAX_STATUS_MESSAGE], agency_id, account_id),
    )


def linked_accounts_by_aws_id(
    conn: Connection, agency_id: uuid.UUID, aws_account_ids: Iterable[str]
) -> dict[str, uuid.UUID]:
    """This agency's linked accounts (not management accounts) among `aws_account_ids`."""
    ids = sorted(set(aws_account_ids))
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT aws_account_id, id FROM cao.accounts"
        " WHERE agency_id = %s AND aws_account_id = ANY(%s) AND NOT is_management",
        (agency_id, ids),
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def account_status(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID) -> str | None:
    """The account's status, or None when this agency has no such account."""
    row = conn.execute(
        "SELECT status FROM cao.accounts WHERE agency_id = %s AND id = %s",
        (agency_id, account_id),
    ).fetchone()
    return None if row is None else str(row[0])


def is_entitled(conn: Connection, agency_id: uuid.UUID, now: datetime) -> bool:
    """Whether the agency's billing state lets it sync now (cao.is_entitled)."""
    row = conn.execute(
        "SELECT cao.is_entitled(a, %s) FROM cao.agencies a WHERE a.id = %s", (now, agency_id)
    ).fetchone()
    return bool(row and row[0])
