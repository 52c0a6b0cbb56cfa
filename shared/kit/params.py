"""Pure validators of request values: text Postgres can store, UTC datetimes, time windows,
decimals as strings, and content negotiation. No I/O; unit-tested with tables of examples.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator

from shared.errors import UnprocessableError

# Datetimes a client may send: wide enough for any real query, narrow enough that converting
# to UTC or adding a window never overflows (a 500 is a bug).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


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


# ---- money ----------------------------------------------------------------------------------

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
