"""What the domains' routes share: page and time parameters, error documentation, and a JSON
response serialised once. FastAPI only; no I/O.
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Annotated, Any

from fastapi import Query, Request, Response
from pydantic import BaseModel, ConfigDict

from shared.kit.pages import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT
from shared.kit.params import UtcDatetime

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


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx: `{"error": {"code", "message", ...}}`."""

    error: ErrorDetail


_ERROR_TEXT: dict[int, str] = {
    401: "missing, unknown or revoked API key",
    403: "this needs an admin API key",
    404: "not found for this agency (also for another agency's ids)",
    406: "the Accept header allows neither application/json nor text/csv",
    409: "the current state forbids it (the message says what to do)",
    412: "If-Match does not name the current version: reload, merge, retry",
    413: "the request body is too large",
    422: "invalid request: the message names the field and the rule",
    428: "send If-Match (the ETag from GET) or a version field",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI error responses for a route: 401 and 422 always, plus `statuses`."""
    return {
        status: {"model": ErrorBody, "description": _ERROR_TEXT[status]}
        for status in sorted({401, 422, *statuses})
    }


def json_response(model: BaseModel, headers: dict[str, str] | None = None) -> Response:
    """The model as JSON, serialised once by pydantic. Returned from a route declared with
    `response_model=None`, it skips FastAPI's second validation of an already validated model
    (milliseconds on a page of hundreds of rows: the read latency budget is 50 ms)."""
    return Response(model.model_dump_json(), media_type="application/json", headers=headers)


def documented(model: type[BaseModel], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of such a route: `model` on 200, and the error responses."""
    return {200: {"model": model, "description": "OK"}, **errors(*statuses)}


def client_address(request: Request) -> str:
    """The caller's address. On Vercel, x-real-ip / x-forwarded-for are set by the platform
    (a client's own values are overwritten); locally, the socket's peer."""
    for header in ("x-real-ip", "x-forwarded-for"):
        value = request.headers.get(header, "").split(",")[0].strip()
        if value:
            return value[:100]
    return request.client.host if request.client else "unknown"


def address_block(source_address: str) -> str:
    """What one sign-up budget covers: an IPv4 address, or an IPv6 /64.

    A single IPv6 host is usually given a whole /64 (SLAAC, privacy addresses), so counting
    each IPv6 address alone would give one client 2^64 budgets. IPv4-mapped IPv6 addresses
    count as their IPv4 address; text that is no address counts as itself."""
    try:
        ip = ipaddress.ip_address(source_address.strip())
    except ValueError:
        return source_address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        prefix = ipaddress.IPv6Address(int(ip) >> 64 << 64)  # drops any %zone as well
        return f"{prefix}/64"
    return str(ip)
