"""Models of /api/accounts."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class JobHealth(BaseModel):
    kind: str = Field(description="costs, cloudtrail or verify")
    state: str
    next_run_at: datetime
    last_success_at: datetime | None
    last_error_class: str | None
    last_error_at: datetime | None
    consecutive_failures: int
    lag_seconds: int | None = Field(
        description="how far behind now the synced data is (CloudTrail: its most lagging "
        "region); null before the first successful sync"
    )


class AccountSummary(BaseModel):
    id: uuid.UUID
    aws_account_id: str
    alias: str | None
    status: str = Field(
        description="active, needs_trust_update, access_denied, paused, "
        "cost_explorer_not_enabled, unsafe_trust_policy or unreachable"
    )
    status_label: str
    human_status: str = Field(description="one sentence for people: what is going on")
    action: str | None = Field(description="what to do about the status, when anything")
    status_message: str | None
    is_management: bool
    regions: list[str] | None
    linked_at: datetime
    verified_at: datetime | None
    last_successful_sync_at: datetime | None
    jobs: list[JobHealth]
    ce_requests_this_month: int = Field(description="Cost Explorer requests since the 1st (UTC)")
    ce_cost_this_month_usd: str = Field(description="their cost to the client ($0.01 each)")


class AccountPage(BaseModel):
    items: list[AccountSummary]
    next_cursor: str | None


class SyncRun(BaseModel):
    id: uuid.UUID
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    api_calls: int
    ce_requests: int
    ce_cost_usd: str
    months: list[str]
    rows_written: int
    error_class: str | None


class AccountDetail(AccountSummary):
    recent_runs: list[SyncRun]
    discovered_members: int = Field(description="organization members found (management only)")
