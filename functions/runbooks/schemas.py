"""Models of /api/runbooks: request bodies refuse unknown fields (shared.web.Body); responses
are built from the store's rows (`FromRow`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, Field

from shared.kit.params import SafeText
from shared.store.runbooks import RunbookRow, RunbookSummary, VersionRow, VersionSummary
from shared.web import Body

RUNBOOK_BODY_MAX_CHARS = 65536
RUNBOOK_TITLE_MAX_CHARS = 200
_TITLE_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # one line, no control characters


Title = Annotated[
    SafeText,
    Field(min_length=1, max_length=RUNBOOK_TITLE_MAX_CHARS, pattern=_TITLE_PATTERN),
]
Markdown = Annotated[SafeText, Field(max_length=RUNBOOK_BODY_MAX_CHARS)]


class RunbookCreate(Body):
    title: Title
    body: Markdown = ""
    account_id: uuid.UUID | None = Field(
        default=None, description="attach to one of the agency's accounts"
    )


class RunbookPatch(Body):
    """Fields to change; `account_id: null` detaches. `version` (or If-Match) is required."""

    title: Title | None = None
    body: Markdown | None = None
    account_id: uuid.UUID | None = None
    version: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="the version being edited"
    )


# Responses show the rows as stored: their fields are declared once, in shared/store/runbooks.py.
# (No docstrings: they would change the published OpenAPI document.)
class Runbook(RunbookRow):
    pass


class RunbookListItem(RunbookSummary):
    pass


class RunbookPage(BaseModel):
    items: list[RunbookListItem]
    next_cursor: str | None


class RunbookVersionItem(VersionSummary):
    pass


class RunbookVersionPage(BaseModel):
    items: list[RunbookVersionItem]
    next_cursor: str | None


class RunbookVersion(VersionRow):
    pass
