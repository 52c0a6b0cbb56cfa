"""Pure helpers of the read API: page sizes, opaque keyset cursors, months, decimals, text,
and content negotiation. No I/O; unit-tested with tables of examples.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator

from shared.errors import UnprocessableError

DEFAULT_LIMIT = 100
MAX_LIMIT = 500

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Datetimes a client may send: wide enough for any real query, narrow enough that converting
# to UTC or adding a window never overflows (a 500 is a bug).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def clamp_limit(limit: int) -> int:
    """Page sizes are clamped to MAX_LIMIT (the caller asked for 'as many as possible')."""
    return max(1, min(limit, MAX_LIMIT))


# ---- text ------------------------------------------------------------------------------------


def check_text(value: str) -> str:
    """Strings stored in or compared against Postgres text: no NUL, valid UTF-8.

    Postgres text cannot hold NUL, and a lone surrogate (legal in JSON escapes, so in Python
    strings) cannot be encoded: either would otherwise reach the driver and become a 500.
    """
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 (no lone surrogates)") from None
    return value


SafeText = Annotated[str, AfterValidator(check_text)]


def as_utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime; naive values are taken as UTC. ValueError when out of
    range (pydantic turns it into a 422 naming the field)."""
    try:
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("is out of range") from None
    if not _EARLIEST <= aware < _LATEST:
        raise ValueError("must be between 1970 and 9000")
    return aware


UtcDatetime = Annotated[datetime, AfterValidator(as_utc)]


def check_window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise UnprocessableError("since must be earlier than until", code="invalid_request")


# ---- cursors ---------------------------------------------------------------------------------

CursorKind = Literal[
    "events", "audit", "accounts", "principals", "new_principals", "vendor", "runbooks", "versions"
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


def decode_cursor(kind: CursorKind, token: str) -> tuple[datetime, str]:
    """The position in `token`; 422 when it is not a cursor this endpoint produced."""
    problem = UnprocessableError(
        "cursor: not a cursor from this endpoint; omit it to start from the newest",
        code="invalid_request",
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
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


CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,4096}$"


# ---- months and money ------------------------------------------------------------------------

MONTH_PATTERN = r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$"
MAX_MONTHS = 60


def parse_month(value: str) -> date:
    """'YYYY-MM' -> the first day of that month."""
    if not re.fullmatch(MONTH_PATTERN, value):
        raise UnprocessableError(f"month {value!r} must be YYYY-MM", code="invalid_request")
    year, month = value.split("-")
    return date(int(year), int(month), 1)


@functools.lru_cache(maxsize=1024)
def month_text(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def month_span(first: date, last: date) -> list[date]:
    out = []
    current = first
    while current <= last:
        out.append(current)
        current = add_months(current, 1)
    return out


def month_of(at: datetime) -> date:
    return date(at.year, at.month, 1)


_TEN_PLACES = Decimal("1e-10")


def dec_str(amount: Decimal) -> str:
    """A decimal as a plain string ('12.5', '0', '-3.0000001'): never a float, never '1E+2'."""
    text = format(amount.quantize(_TEN_PLACES), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def percent_change(previous: Decimal, current: Decimal) -> str | None:
    """(current - previous) / |previous| in percent, two places; None when previous is 0."""
    if previous == 0:
        return None
    change = (current - previous) / abs(previous) * 100
    return dec_str(change.quantize(Decimal("0.01")))


# ---- content negotiation ---------------------------------------------------------------------

Representation = Literal["json", "csv"]
_RANGES: tuple[tuple[Representation, str, str], ...] = (
    ("json", "application/json", "application/*"),
    ("csv", "text/csv", "text/*"),
)


def negotiate(accept: str | None) -> Representation | None:
    """JSON or CSV from an Accept header (RFC 9110 q-values); None when neither is acceptable.

    JSON wins ties (and absent or wildcard headers): CSV only when the client asks for it.
    """
    if not accept or not accept.strip():
        return "json"
    best: dict[Representation, float] = {"json": -1.0, "csv": -1.0}
    explicit: dict[Representation, float] = {"json": 0.0, "csv": 0.0}  # specificity
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        q = 1.0
        for param in pieces[1:]:
            name, _, val = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(val.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        for rep, exact, family in _RANGES:
            specificity = 3.0 if media == exact else 2.0 if media == family else 0.0
            if media == "*/*":
                specificity = 1.0
            if specificity and specificity >= explicit[rep]:
                explicit[rep] = specificity
                best[rep] = q
    json_q, csv_q = best["json"], best["csv"]
    if json_q <= 0 and csv_q <= 0:
        return None
    if csv_q > json_q:
        return "csv"
    return "json" if json_q > 0 else "csv"
