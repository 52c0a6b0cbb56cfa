"""Models of /api/access/*: items are built from the store's rows (`FromRow`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from shared.kit.schemas import FromRow


class AccessEvent(FromRow):
    id: int
    account_id: uuid.UUID
    aws_account_id: str
    region: str
    event_id: str
    event_time: datetime
    event_name: str
    principal_arn: str | None
    principal_name: str | None
    source_ip: str | None
    is_vendor: bool = Field(description="a session of ours (CloudAgencyOps)")


class EventPage(BaseModel):
    items: list[AccessEvent]
    next_cursor: str | None


class PrincipalSummary(FromRow):
    principal: str = Field(description="the principal ARN, or its name when CloudTrail has none")
    principal_arn: str | None
    principal_name: str | None
    first_seen: datetime
    last_seen: datetime
    event_count: int
    source_ip_count: int
    source_ips: list[str] = Field(description="up to 20 of them")


class PrincipalPage(BaseModel):
    items: list[PrincipalSummary]
    next_cursor: str | None


class VendorSession(FromRow):  # a session row, and its account's alias (not in the row)
    account_id: uuid.UUID
    aws_account_id: str
    alias: str | None
    session_name: str
    principal_arn: str | None
    first_event: datetime
    last_event: datetime
    event_count: int
    event_names: list[str] = Field(description="up to 50 distinct API calls")
    source_ips: list[str]


class VendorPage(BaseModel):
    items: list[VendorSession]
    next_cursor: str | None
