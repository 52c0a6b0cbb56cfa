"""Fan-out: due jobs become queue messages, one per (account, kind) job.

`dispatch` (the cron's work) takes the due jobs of entitled agencies through
`cao.dispatch_due_jobs`, which marks them queued under FOR UPDATE SKIP LOCKED: two dispatchers
running at once never take the same job, and a run moments later finds them queued. Then,
outside the transaction, it publishes one message per job. A message carries the job id, its
agency, its kind and its period (when the job fell due); its idempotency key is job + period,
so a publish retried by the SDK, or repeated after a lost answer, is stored once.

`enqueue_first_sync` (after a link) and `request_sync` (the agency's "sync now") make an
account's jobs due now and publish them the same way.

Publishing goes through a `Publisher` (functions/sync_costs/queue.py: Vercel Queues, or the
SDK's embedded queue locally); this module imports no queue SDK, so the read API that serves
"sync now" loads nothing heavy until a request needs it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from functions.sync_costs import registry
from shared.db import Connection, system_tx, tenant_tx
from shared.errors import (
    ConflictError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitedError,
    UnavailableError,
)
from shared.logs import get_logger
from shared.store import jobs, rate_limits

MAX_PER_KIND = 5000  # per dispatcher run; the rest is still due at the next run
SYNC_NOW_WINDOW_S = 3600
SYNC_NOW_LIMIT = 4  # per account per hour: each sync costs the client Cost Explorer requests


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobMessage:
    """The payload of one queue message: which job, and for which period."""

    job_id: uuid.UUID
    agency_id: uuid.UUID
    kind: str
    period: datetime

    def payload(self) -> dict[str, str]:
        return {
            "job_id": str(self.job_id),
            "agency_id": str(self.agency_id),
            "kind": self.kind,
            "period": self.period.astimezone(UTC).isoformat(),
        }

    @property
    def idempotency_key(self) -> str:
        return f"{self.kind}-{self.job_id}-{int(self.period.timestamp())}"

    @classmethod
    def from_payload(cls, payload: Any) -> JobMessage:
        """Parse a received payload; ValueError when it is not one of ours."""
        if not isinstance(payload, Mapping) or set(payload) != {
            "job_id",
            "agency_id",
            "kind",
            "period",
        }:
            raise ValueError("not a sync job message")
        if not all(isinstance(v, str) and len(v) <= 64 for v in payload.values()):
            raise ValueError("not a sync job message")
        if payload["kind"] not in jobs.ALL_KINDS:
            raise ValueError("unknown job kind")
        period = datetime.fromisoformat(payload["period"])
        if period.tzinfo is None:
            raise ValueError("a period without a timezone")
        return cls(
            uuid.UUID(payload["job_id"]), uuid.UUID(payload["agency_id"]), payload["kind"], period
        )

    @classmethod
    def for_job(cls, job: jobs.DueJob) -> JobMessage:
        return cls(job.job_id, job.agency_id, job.kind, job.due_at)


class Publisher(Protocol):
    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        """Send every message; returns those that could not be sent."""
        ...


@dataclass
class DispatchReport:
    published: dict[str, int] = field(default_factory=dict)
    failed: int = 0


def dispatch(
    conn: Connection,
    publisher: Publisher,
    now: datetime,
    kinds: Iterable[str] | None = None,
    *,
    limit: int = MAX_PER_KIND,
) -> DispatchReport:
    """Publish one message per due job of entitled agencies, for each kind with a handler."""
    report = DispatchReport()
    for kind in kinds if kinds is not None else registry.kinds():
        with system_tx(conn):
            due = jobs.dispatch_due(conn, kind, now, limit)
        failed = publisher.publish([JobMessage.for_job(j) for j in due]) if due else []
        _unqueue(conn, failed)
        report.published[kind] = len(due) - len(failed)
        report.failed += len(failed)
    get_logger().info(
        "dispatched sync jobs", extra={"published": report.published, "failed": report.failed}
    )
    return report


def enqueue_first_sync(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    *,
    publisher: Publisher | None = None,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> int:
    """After an account was linked (and that transaction committed): create its sync jobs and
    publish them now. Returns the messages published.

    Never fails the link: when the agency may not sync yet, or the queue cannot be reached,
    the jobs stay due and the next dispatcher run takes them.
    """
    now = now or utcnow()
    with tenant_tx(conn, agency_id):
        jobs.ensure_jobs(conn, agency_id, account_id, due_at=now)
        if not jobs.is_entitled(conn, agency_id, now):
            return 0
        due = jobs.request_now(conn, agency_id, account_id, now, _registered())
    if not due:
        return 0
    try:
        failed = publisher_for(headers, publisher).publish([JobMessage.for_job(j) for j in due])
    except Exception as exc:  # noqa: BLE001 - the link succeeded; the dispatcher catches up
        get_logger().warning("first sync not published", extra={"error_class": type(exc).__name__})
        failed = [JobMessage.for_job(j) for j in due]
    _unqueue(conn, failed)
    return len(due) - len(failed)


@dataclass(frozen=True)
class SyncRequest:
    """What "sync now" did: kinds queued now, and kinds already on their way."""

    queued: list[str]
    in_progress: list[str]


def request_sync(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    now: datetime,
    *,
    publisher: Publisher | None = None,
    headers: Mapping[str, str] | None = None,
) -> SyncRequest:
    """The agency asks for a sync of one account now (rate-limited per account)."""
    with tenant_tx(conn, agency_id):
        status = jobs.account_status(conn, agency_id, account_id)
    if status is None:
        raise NotFoundError("no such account")
    # Counted only once the account is known to be the caller's: another agency cannot use up
    # this account's budget by guessing its id.
    with system_tx(conn):
        wait = rate_limits.hit(
            conn, f"sync-now:{account_id}", now, SYNC_NOW_WINDOW_S, SYNC_NOW_LIMIT
        )
    if wait:
        raise RateLimitedError(
            f"at most {SYNC_NOW_LIMIT} syncs per account per hour; retry later",
            retry_after=wait,
        )
    if status in {"paused", "unsafe_trust_policy"}:
        raise ConflictError(
            "this account is not syncing (paused or unsafe trust policy): verify it again first"
        )
    kinds = _registered()
    with tenant_tx(conn, agency_id):
        if not jobs.is_entitled(conn, agency_id, now):
            raise PaymentRequiredError("syncing needs an active subscription or trial")
        jobs.ensure_jobs(conn, agency_id, account_id, kinds, due_at=now)
        due = jobs.request_now(conn, agency_id, account_id, now, kinds)
    failed = publisher_for(headers, publisher).publish([JobMessage.for_job(j) for j in due])
    if failed:
        _unqueue(conn, failed)
        raise UnavailableError("the sync queue is unavailable; retry later")
    queued = sorted(j.kind for j in due)
    return SyncRequest(queued, sorted(set(kinds) - set(queued)))


def _registered() -> list[str]:
    return [k for k in registry.kinds() if k in jobs.JOB_KINDS]


def publisher_for(
    headers: Mapping[str, str] | None = None, publisher: Publisher | None = None
) -> Publisher:
    """`publisher`, else the process default: the local queue when one is installed, else
    Vercel Queues authenticated with the OIDC token in the request's `headers`."""
    if publisher is not None:
        return publisher
    from functions.sync_costs import queue  # noqa: PLC0415 - the queue SDK only to publish

    return queue.default_publisher(headers)


def _unqueue(conn: Connection, failed: Sequence[JobMessage]) -> None:
    """Jobs whose message was not sent go back to idle, so the next run takes them at once."""
    by_agency: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for message in failed:
        by_agency[message.agency_id].append(message.job_id)
    for agency_id, job_ids in by_agency.items():
        with tenant_tx(conn, agency_id):
            jobs.unqueue(conn, agency_id, job_ids)
