"""Planning the time windows one CloudTrail sync of one (account, region) reads. Pure.

Two passes read each region, each with its own cursor (the end of its last window read
completely):

- **live** follows now. A run reads from the cursor minus an overlap (CloudTrail delivers most
  events within minutes; the re-read ones are deduplicated on event id) up to now, in bounded
  windows, oldest first, so the cursor can advance window by window. Every window ends at or
  before the moment the run planned it and is read after it; so when the cursor passes a
  moment t by more than the overlap, t has been read at least OVERLAP after it happened, and
  an event delivered up to OVERLAP late is stored. The first sync starts `backfill_days` back
  (default 14, at most 90: LookupEvents keeps 90 days).
- **sweep** re-reads each moment once more when it is LATE old (no overlap needed: a window
  ending at now - LATE is read at least LATE after every moment in it), in slices of at least
  SWEEP_EVERY, so an event delivered up to LATE late is stored too. It never passes the live
  cursor, and it skips what the live pass itself read LATE or more after the fact (a backfill,
  a backlog): `sweep_after` moves it along with the live pass then, at no extra request.

A window read only partly (LookupEvents answers newest first; the run ran out of time, was
throttled, failed, or died) is resumed rather than restarted: its cursor records that window's
end (`partial_end`), how far down it was read (`partial_from`, inclusive: events sharing that
second are read again and deduplicated) and when its reading began (`partial_since`). The next
run first reads the rest, [start, partial_from], then moves the cursor to `partial_end`, and
reads on from `partial_end` minus the overlap: the newest part of the window was read when
that run began, maybe seconds after those events happened, so it is read again like any
window's end. A window with more events than one run can read completes over several runs.

All boundaries are whole seconds in UTC: CloudTrail event times are whole seconds and botocore
sends LookupEvents times as whole epoch seconds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

OVERLAP = timedelta(minutes=15)
LATE = timedelta(hours=6)  # the sweep re-reads a moment once it is this old
SWEEP_EVERY = timedelta(hours=3)  # and reads at least this much at a time (1 request if quiet)
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
    been read, the cursor moves to `cursor_to` (== end, except for a resumed window). Every
    page of it is read at `read_since` or later."""

    start: datetime
    end: datetime
    cursor_to: datetime
    read_since: datetime


@dataclass(frozen=True)
class Position:
    """A pass's cursor: see the module docstring."""

    position: datetime
    partial_end: datetime | None = None
    partial_from: datetime | None = None
    partial_since: datetime | None = None


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
    cursor: Position | None,
    *,
    end: datetime | None = None,
    backfill_days: int | None = None,
    retention_days: int | None = None,
    overlap: timedelta = OVERLAP,
    size: timedelta = WINDOW,
    min_span: timedelta = timedelta(0),
) -> list[Window]:
    """The windows of one pass to read, oldest first, up to `end` (default now).

    `cursor` is the pass's position (None: first sync, which starts `backfill_days` back). A
    partly read window is resumed first. New windows are planned only when they span at least
    `min_span` (the sweep's slices).
    """
    if size <= timedelta(0) or overlap < timedelta(0):
        raise ValueError("window size must be positive and overlap not negative")
    now = whole_seconds(now)
    end = now if end is None else min(whole_seconds(end), now)
    floor = now - HORIZON + timedelta(minutes=1)  # a margin: AWS's horizon moves while we read
    if retention_days is not None:
        floor = max(floor, now - timedelta(days=max(1, int(retention_days))))
    if cursor is None:
        start = max(first_position(now, backfill_days, retention_days), floor)
    else:
        start = max(whole_seconds(cursor.position) - overlap, floor)

    windows: list[Window] = []
    if cursor is not None and cursor.partial_end is not None:
        partial_end = whole_seconds(cursor.partial_end)
        if partial_end > start:
            read_to = cursor.partial_from
            upper = partial_end if read_to is None else whole_seconds(read_to)
            upper = max(start, min(upper, partial_end))
            since = cursor.partial_since or cursor.partial_end
            windows.append(Window(start, upper, partial_end, min(whole_seconds(since), now)))
            # Its newest part was read when that run began: read it again, as any window's end.
            start = max(start, partial_end - overlap)
    if start >= end or end - start < min_span:
        return windows

    span = end - start
    # Equal windows of about `size`: a short remainder joins the others instead of costing one
    # more request (an hourly run over 75 minutes reads one window, not two).
    count = max(1, round(span / size))
    bounds = [whole_seconds(start + span * i / count) for i in range(count)] + [end]
    windows.extend(Window(a, b, b, now) for a, b in itertools.pairwise(bounds) if b > a)
    return windows


def sweep_after(sweep: datetime, window: Window, late: timedelta = LATE) -> datetime:
    """The sweep's position once the live pass has read `window` completely: moved to where
    that window was read `late` or more after the fact, when the sweep reaches into it."""
    if sweep < window.start:
        return sweep
    return max(sweep, min(window.cursor_to, window.read_since - late))


def unread(cursor: Position, at: datetime) -> timedelta:
    """How much event time is left to read at `at`: below a partly read window's read part,
    and after its end (or after the cursor). A region that keeps up sees it shrink from run to
    run, even while a big window holds its cursor still; one that cannot, sees it grow."""
    if cursor.partial_end is not None and cursor.partial_from is not None:
        done = max(timedelta(0), min(cursor.partial_end, at) - cursor.partial_from)
        return max(timedelta(0), at - cursor.position - done)
    return max(timedelta(0), at - cursor.position)


def lag(now: datetime, position: datetime | None) -> timedelta | None:
    """How far behind now the cursor is (None before the first window completes)."""
    if position is None:
        return None
    return max(timedelta(0), whole_seconds(now) - whole_seconds(position))
