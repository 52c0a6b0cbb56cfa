"""Models of /api/access/*: items are built from the store's rows (`FromRow`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from shared.kit.schemas import FromRow
from shared.store.access import EventRow, PrincipalRow


# The API shows these rows as stored: their fields are declared once, in shared/store/access.py.
# (A docstring here would change the published OpenAPI document.)
class AccessEvent(EventRow):
    pass


class EventPage(BaseModel):
    items: list[AccessEvent]
    next_cursor: str | None


class PrincipalSummary(PrincipalRow):
    pass


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
