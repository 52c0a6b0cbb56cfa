"""Planning the time windows one CloudTrail sync of one (account, region) reads. Pure.

The cursor of an (account, region) is the end of the last window read completely. A run reads
from the cursor minus an overlap (CloudTrail delivers some events up to ~15 minutes late; the
re-read ones are deduplicated on event id) up to now, in bounded windows, oldest first, so the
cursor can advance window by window. The first sync starts `backfill_days` back (default 14,
at most 90: LookupEvents keeps 90 days).

A window read only partly (LookupEvents answers newest first; the run ran out of time or was
throttled) is resumed rather than restarted: the cursor records that window's end
(`partial_end`), the rows read are stored, and every event of the window newer than the oldest
stored one (`resume_before`) is known to be stored. The next run first reads the rest of that
window, [start, resume_before] (inclusive, so events sharing that second are read again and
deduplicated), then moves the cursor to `partial_end`. So a window with more events than one run
can read still completes over several runs instead of being restarted forever.

All boundaries are whole seconds in UTC: CloudTrail event times are whole seconds and botocore
sends LookupEvents times as whole epoch seconds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

OVERLAP = timedelta(minutes=15)
# Every window costs at least one request, even an empty one: a 14-day backfill in 1-day
# windows is 14 requests (7 s at 2/s) per region, in 1-hour windows 336 (3 minutes). Big windows
# cost nothing in safety, since a partly read window is resumed, not restarted (below); they
# only make the cursor (and the lag shown from it) move in bigger steps during a backfill.
WINDOW = timedelta(days=1)
DEFAULT_BACKFILL_DAYS = 14
MAX_BACKFILL_DAYS = 90
HORIZON = timedelta(days=90)  # how far back LookupEvents can see


@dataclass(frozen=True)
class Window:
    """Read events in [start, end] (LookupEvents' bounds are inclusive); when every page has
    been read, the cursor moves to `cursor_to` (== end, except for a resumed window)."""

    start: datetime
    end: datetime
    cursor_to: datetime


def whole_seconds(moment: datetime) -> datetime:
    """`moment` in UTC, floored to the second."""
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def clamp_backfill_days(days: int | None) -> int:
    if days is None:
        return DEFAULT_BACKFILL_DAYS
    return max(1, min(int(days), MAX_BACKFILL_DAYS))


def first_position(
    now: datetime, backfill_days: int | None = None, retention_days: int | None = None
) -> datetime:
    """Where a first sync starts: `backfill_days` back, never older than what the agency keeps
    (rows past retention would be purged the next night) nor than LookupEvents' horizon."""
    days = clamp_backfill_days(backfill_days)
    if retention_days is not None:
        days = min(days, max(1, int(retention_days)))
    return whole_seconds(now) - timedelta(days=days)


def plan(
    now: datetime,
    position: datetime | None,
    *,
    partial_end: datetime | None = None,
    resume_before: datetime | None = None,
    backfill_days: int | None = None,
    retention_days: int | None = None,
    overlap: timedelta = OVERLAP,
    size: timedelta = WINDOW,
) -> list[Window]:
    """The windows to read, oldest first.

    `position` is the cursor (None: first sync). `partial_end` is the end of a window a
    previous run read only partly, and `resume_before` the oldest event time stored from it
    (None when none was stored: the whole window is read again).
    """
    if size <= timedelta(0) or overlap < timedelta(0):
        raise ValueError("window size must be positive and overlap not negative")
    now = whole_seconds(now)
    floor = now - HORIZON + timedelta(minutes=1)  # a margin: AWS's horizon moves while we read
    if retention_days is not None:
        floor = max(floor, now - timedelta(days=max(1, int(retention_days))))
    if position is None:
        start = max(first_position(now, backfill_days, retention_days), floor)
    else:
        start = max(whole_seconds(position) - overlap, floor)

    windows: list[Window] = []
    if partial_end is not None and position is not None:
        partial_end = whole_seconds(partial_end)
        if partial_end > start:
            upper = partial_end if resume_before is None else whole_seconds(resume_before)
            upper = max(start, min(upper, partial_end))
            windows.append(Window(start, upper, partial_end))
            start = partial_end
    if start >= now:
        return windows

    span = now - start
    # Equal windows of about `size`: a short remainder joins the others instead of costing one
    # more request (an hourly run over 75 minutes reads one window, not two).
    count = max(1, round(span / size))
    bounds = [whole_seconds(start + span * i / count) for i in range(count)] + [now]
    windows.extend(Window(a, b, b) for a, b in itertools.pairwise(bounds) if b > a)
    return windows


def lag(now: datetime, position: datetime | None) -> timedelta | None:
    """How far behind now the cursor is (None before the first window completes)."""
    if position is None:
        return None
    return max(timedelta(0), whole_seconds(now) - whole_seconds(position))
