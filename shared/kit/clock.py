"""The clock: every "now" in the product is an aware UTC datetime from a `Clock`.

Code that needs the time takes a clock (or a `now`) as an argument; the composition root
(`shared.bootstrap`) decides which clock runs, and tests freeze it there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)
