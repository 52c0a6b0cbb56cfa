"""Keyset pages: page sizes, opaque cursors, and the split of a `limit + 1` fetch into a page.

A list endpoint fetches `limit + 1` rows ordered by (timestamp, tie-breaker); `split_page`
returns the page and, when more rows exist, the cursor of the next page: the position of the
page's last row, base64url JSON tagged with the endpoint's kind. Cursors carry no tenant and
grant nothing: every query stays agency-scoped, so a forged cursor only moves a position within
the caller's own rows. Pure; unit-tested with tables of examples.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from shared.errors import BadRequestError
from shared.kit.jsondepth import nests_deeper_than
from shared.kit.params import as_utc, check_text

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,4096}$"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def clamp_limit(limit: int) -> int:
    """Page sizes are clamped to MAX_LIMIT (the caller asked for 'as many as possible')."""
    return max(1, min(limit, MAX_LIMIT))


CursorKind = Literal[
    "events",
    "audit",
    "accounts",
    "principals",
    "new_principals",
    "vendor",
    "runbooks",
    "versions",
    "notices",
    "anomalies",
]


def encode_cursor(kind: CursorKind, at: datetime, key: str) -> str:
    """An opaque position: the (timestamp, tie-breaker) of the last row of a page.

    It carries no tenant and grants nothing: every query stays agency-scoped, so a cursor
    from another agency (or a forged one) only moves a position within the caller's rows.
    """
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    raw = json.dumps([kind, micros, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


T = TypeVar("T")


def split_page(
    rows: Sequence[T], limit: int, kind: CursorKind, position: Callable[[T], tuple[datetime, str]]
) -> tuple[list[T], str | None]:
    """Rows fetched as `limit + 1`: the page, and the cursor of the next one (None at the end)."""
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    at, key = position(page[-1])
    return page, encode_cursor(kind, at, key)


def _bad_cursor() -> BadRequestError:
    return BadRequestError(
        "cursor: not a cursor from this endpoint; omit it to start from the newest",
        code="invalid_cursor",
    )


def decode_cursor(kind: CursorKind, token: str) -> tuple[datetime, str]:
    """The position in `token`; 400 when it is not a cursor this endpoint produced."""
    problem = _bad_cursor()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        # A cursor is one flat array: anything nested is refused before the recursive parser
        # sees it (4 KiB of "[" would otherwise end in RecursionError, a 500).
        if nests_deeper_than(raw, 1):
            raise problem
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):
        raise problem from None
    if not (
        isinstance(value, list)
        and len(value) == 3
        and value[0] == kind
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
        and isinstance(value[2], str)
        and len(value[2]) <= 2048
    ):
        raise problem
    try:
        at = _EPOCH + timedelta(microseconds=value[1])
        as_utc(at)
        check_text(value[2])
    except (OverflowError, ValueError):
        raise problem from None
    return at, value[2]


# A numeric tie-breaker as `encode_cursor` writes it: ASCII digits only. (`str.isdigit()` also
# accepts superscripts and other Unicode digits that `int()` refuses.)
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)


def decode_int_cursor(
    kind: CursorKind, token: str, *, max_value: int = 2**63 - 1
) -> tuple[datetime, int]:
    """A cursor whose tie-breaker is a non-negative integer up to `max_value` (a bigint id, a
    version number); 400 for anything else."""
    at, key = decode_cursor(kind, token)
    if _ASCII_DIGITS.fullmatch(key) is None or int(key) > max_value:
        raise _bad_cursor()
    return at, int(key)


_CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII
)


def decode_uuid_cursor(kind: CursorKind, token: str) -> tuple[datetime, uuid.UUID]:
    """A cursor whose tie-breaker is a row's uuid, in the canonical form `str(uuid)` writes;
    400 for anything else."""
    at, key = decode_cursor(kind, token)
    if _CANONICAL_UUID.fullmatch(key) is None:
        raise _bad_cursor()
    return at, uuid.UUID(key)
