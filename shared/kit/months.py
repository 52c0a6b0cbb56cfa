"""Months as first-of-month dates: the unit of cost data (account x service x month).

Pure; unit-tested with tables of examples.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime

from shared.errors import UnprocessableError

MONTH_PATTERN = r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$"
MAX_MONTHS = 60


def month_start(day: date) -> date:
    """The first day of `day`'s month."""
    return date(day.year, day.month, 1)


def month_of(at: datetime) -> date:
    """The first day of the month of instant `at` (in `at`'s own timezone)."""
    return date(at.year, at.month, 1)


def month_began(at: datetime) -> datetime:
    """The instant the UTC month of `at` began (00:00 UTC on its first day)."""
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(month: date, count: int) -> date:
    """The first day of the month `count` months after `month`'s (negative: before)."""
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def month_span(first: date, last: date) -> list[date]:
    """Every month from `first` to `last`, both included, oldest first."""
    out = []
    current = month_start(first)
    while current <= last:
        out.append(current)
        current = add_months(current, 1)
    return out


def parse_month(value: str) -> date:
    """'YYYY-MM' -> the first day of that month; 422 naming the expected form otherwise."""
    if not re.fullmatch(MONTH_PATTERN, value):
        raise UnprocessableError(f"month {value!r} must be YYYY-MM", code="invalid_request")
    year, month = value.split("-")
    return date(int(year), int(month), 1)


@functools.lru_cache(maxsize=1024)
def month_text(month: date) -> str:
    """The month as 'YYYY-MM'."""
    return f"{month.year:04d}-{month.month:02d}"
