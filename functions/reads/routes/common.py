"""What the read API's routes share: the clock, page and time parameters, error docs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Response
from pydantic import BaseModel

from functions.reads.models import errors
from functions.reads.params import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT, UtcDatetime

__all__ = [
    "AccountIds",
    "Cursor",
    "Limit",
    "Now",
    "Since",
    "Until",
    "documented",
    "errors",
    "json_response",
]


def _now() -> datetime:
    return datetime.now(UTC)


Now = Annotated[datetime, Depends(_now)]
Limit = Annotated[
    int,
    Query(ge=1, description=f"page size (default {DEFAULT_LIMIT}; above {MAX_LIMIT} clamped)"),
]
Cursor = Annotated[
    str | None,
    Query(pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page"),
]
AccountIds = Annotated[
    list[uuid.UUID] | None,
    Query(alias="account_id", max_length=100, description="repeatable: only these accounts"),
]
Since = Annotated[UtcDatetime | None, Query(description="from this instant (inclusive)")]
Until = Annotated[UtcDatetime | None, Query(description="until this instant (exclusive)")]

# Printable text without control characters: what CloudTrail and Cost Explorer put in names.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"


def json_response(model: BaseModel, headers: dict[str, str] | None = None) -> Response:
    """The model as JSON, serialised once by pydantic. Returned from a route declared with
    `response_model=None`, it skips FastAPI's second validation of an already validated model
    (milliseconds on a page of hundreds of rows: the read latency budget is 50 ms)."""
    return Response(model.model_dump_json(), media_type="application/json", headers=headers)


def documented(model: type[BaseModel], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of such a route: `model` on 200, and the error responses."""
    return {200: {"model": model, "description": "OK"}, **errors(*statuses)}
