"""Request and response models of /api/accounts: the views with sync health (`AccountSummary`,
`AccountDetail`, `AccountPage`), the edit body (`AccountPatch`) and "sync now"'s answer. The
linked account as stored (`AccountOut`), the link requests and answers, the region vocabulary
and `check_name` are onboarding's, which creates accounts (functions/onboard/schemas.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from functions.onboard import regions as region_names
from functions.onboard.schemas import check_name
from shared.kit.params import dec_str
from shared.kit.schemas import FromRow
from shared.web import Body

# ---- views with sync health -----------------------------------------------------------------


class JobHealth(FromRow):
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


class AccountSummary(FromRow):
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
    cloudtrail_lag_seconds: int | None = Field(
        description="how far behind now its CloudTrail events are (its most lagging region); "
        "null before the first window is read"
    )
    cloudtrail_behind: bool = Field(
        description="the events are more than 2 hours behind: the account has more activity "
        "than one sync can read (about 2 requests/s per region), or its syncs keep failing"
    )
    ce_requests_this_month: int = Field(description="Cost Explorer requests since the 1st (UTC)")
    ce_cost_this_month_usd: str = Field(description="their cost to the client ($0.01 each)")


class AccountPage(BaseModel):
    items: list[AccountSummary]
    next_cursor: str | None


# A sync run as stored (`shared.store.accounts.RunRow`): its cost as a decimal string,
# its months as YYYY-MM.
class SyncRun(FromRow):
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

    @field_validator("ce_cost_usd", mode="before")
    @classmethod
    def _cost(cls, value: Any) -> Any:
        return value if isinstance(value, str) else dec_str(value)

    @field_validator("months", mode="before")
    @classmethod
    def _months(cls, value: Any) -> list[str]:
        return [m if isinstance(m, str) else f"{m.year:04d}-{m.month:02d}" for m in value or []]


class AccountDetail(AccountSummary):
    recent_runs: list[SyncRun]
    discovered_members: int = Field(description="organization members found (management only)")


# ---- edits ----------------------------------------------------------------------------------


class AccountPatch(Body):
    """alias (null clears it) and/or regions (null: back to the agency's default regions)."""

    alias: str | None = Field(default=None, min_length=1, max_length=100)
    regions: list[str] | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else region_names.normalize(value)

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @model_validator(mode="after")
    def _something(self) -> AccountPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change: send alias and/or regions")
        return self


class SyncNowOut(BaseModel):
    """What "sync now" did: kinds queued now, and kinds already on their way."""

    queued: list[str]
    in_progress: list[str]
