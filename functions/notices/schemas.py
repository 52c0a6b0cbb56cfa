"""Response models of /api/notices (the summary and the notice are read from store rows)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.kit.schemas import FromRow

Kind = Literal["incident", "subprocessor_change"]
Status = Literal["open", "resolved", "scheduled"]


class NoticeSummary(FromRow):
    id: uuid.UUID
    kind: Kind
    title: str
    status: Status = Field(
        description="incidents: open or resolved; sub-processor changes: scheduled"
    )
    effective_at: datetime | None = Field(description="sub-processor changes: when it applies")
    created_at: datetime
    updated_at: datetime = Field(description="when the last update was published")
    delivered_at: datetime
    read_at: datetime | None = Field(description="when the agency last marked it read")
    unread: bool = Field(description="never read, or updated since it was last read")


class NoticeUpdate(FromRow):
    at: datetime
    text: str


class Notice(NoticeSummary):
    known_facts: str
    data_categories: list[str] = Field(description="the categories of data affected")
    mitigation: str | None = Field(description="incidents: mitigation steps")
    contact: str = Field(description="who to contact about this notice")
    confirmed_at: datetime | None = Field(description="incidents: when we confirmed it")
    urgent_reason: str | None = Field(
        description="sub-processor changes with less than 30 days' notice: why"
    )
    updates: list[NoticeUpdate] = Field(description="updates as facts came in, oldest first")


class NoticePage(BaseModel):
    items: list[NoticeSummary]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")
