"""Request and response models of the read API (what the OpenAPI document shows), one module per
capability so that a function builds only its own models (cold start); the error body here.

Amounts of money are decimal strings, never floats. Request bodies extend `shared.web.Body`:
unknown fields (agency_id, id, created_at, ...) are refused with a 422, never ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


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
