"""The job system's shapes: the queue message of one job, what a job handler receives, and the
response models of the routes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from shared.store import jobs

if TYPE_CHECKING:
    from shared.aws import ClientFactory
    from shared.db import Connection
    from shared.kit.clock import Clock
    from shared.pacing import Pacer


@dataclass(frozen=True)
class JobMessage:
    """The payload of one queue message: which job, and for which period.

    Its idempotency key is job + period, so a publish retried by the SDK, or repeated after a
    lost answer, is stored once."""

    job_id: uuid.UUID
    agency_id: uuid.UUID
    kind: str
    period: datetime
    delay_s: int = 0  # delivered no sooner than this after publishing (not in the payload)

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
    def for_job(cls, job: jobs.DueJob, delay_s: int = 0) -> JobMessage:
        return cls(job.job_id, job.agency_id, job.kind, job.due_at, delay_s)


@dataclass(frozen=True)
class JobContext:
    """What a job handler receives to run one claimed job to its end (functions/jobs/registry).

    `conn` is an autocommit connection outside any transaction; `lease` the job's lease;
    `clients` makes our own AWS client factory (to assume the account's role), `ours`, when
    the handler first needs it; `clock` returns aware UTC datetimes; `run_id` the run record
    the consumer opened; `pacer` the process's pacing of AWS calls per (AWS account, region).
    All of it comes from the composition root (shared.bootstrap) through the worker.
    """

    conn: Connection
    lease: jobs.Lease
    clients: Callable[[], ClientFactory]
    clock: Clock
    run_id: uuid.UUID
    pacer: Pacer

    @property
    def ours(self) -> ClientFactory:
        return self.clients()


class DispatchOut(BaseModel):
    published: dict[str, int]
    failed: int
