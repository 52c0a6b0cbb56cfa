"""Window planning: from cursor minus overlap to now, bounded, oldest first, resumable."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from functions.sync_cloudtrail.windows import (
    LATE,
    OVERLAP,
    WINDOW,
    Position,
    Window,
    lag,
    plan,
    sweep_after,
    unread,
)

NOW = datetime(2025, 3, 14, 12, 0, 0, 654321, tzinfo=UTC)
NOW_S = NOW.replace(microsecond=0)


def _contiguous(ws: list[Window]) -> None:
    for a, b in itertools.pairwise(ws):
        assert a.end == b.start
    for w in ws:
        assert w.start < w.end
        assert w.start.microsecond == 0 and w.end.microsecond == 0


@pytest.mark.parametrize(
    ("backfill", "days"), [(None, 14), (14, 14), (3, 3), (90, 90), (365, 90), (0, 1)]
)
def test_a_first_sync_backfills_the_agency_setting_bounded_to_90_days(
    backfill: int | None, days: int
) -> None:
    ws = plan(NOW, None, backfill_days=backfill)
    span = ws[-1].end - ws[0].start
    # 90 days is LookupEvents' horizon: a minute is kept as margin.
    assert timedelta(days=days) - timedelta(minutes=1) <= span <= timedelta(days=days)
    assert ws[-1].end == NOW_S
    _contiguous(ws)


def test_a_first_sync_reads_nothing_older_than_the_agency_keeps() -> None:
    ws = plan(NOW, None, backfill_days=30, retention_days=7)
    assert ws[0].start == NOW_S - timedelta(days=7)


def test_windows_start_at_the_cursor_minus_the_overlap_and_end_now_oldest_first() -> None:
    cursor = NOW_S - timedelta(hours=5)
    ws = plan(NOW, Position(cursor), size=timedelta(hours=1))
    assert len(ws) == 5
    assert ws[0].start == cursor - OVERLAP
    assert ws[-1].end == NOW_S
    assert [w.start for w in ws] == sorted(w.start for w in ws)
    assert all(w.end - w.start <= timedelta(hours=1.5) for w in ws)
    assert all(w.cursor_to == w.end for w in ws)
    _contiguous(ws)


def test_a_default_first_sync_costs_one_request_per_day_of_backfill_at_least() -> None:
    ws = plan(NOW, None)
    assert len(ws) == 14 and all(w.end - w.start <= WINDOW for w in ws)


def test_an_hourly_run_reads_one_window() -> None:
    ws = plan(NOW, Position(NOW_S - timedelta(hours=1)))
    assert len(ws) == 1
    assert ws[0] == Window(NOW_S - timedelta(minutes=75), NOW_S, NOW_S, NOW_S)


def test_windows_stay_bounded_over_a_long_backlog() -> None:
    ws = plan(NOW, Position(NOW_S - timedelta(days=20)), size=timedelta(hours=2))
    assert len(ws) == pytest.approx(20 * 12, abs=1)
    assert max(w.end - w.start for w in ws) <= timedelta(hours=3)


def test_a_cursor_older_than_lookup_events_horizon_starts_at_the_horizon() -> None:
    ws = plan(NOW, Position(NOW_S - timedelta(days=200)))
    assert ws[0].start >= NOW_S - timedelta(days=90)


def test_a_partly_read_window_is_resumed_below_where_its_read_stopped_then_reread_at_its_end() -> (
    None
):
    cursor = NOW_S - timedelta(hours=3)
    partial_end = cursor + timedelta(minutes=45)
    read_to = cursor + timedelta(minutes=20)
    since = partial_end + timedelta(seconds=5)
    ws = plan(NOW, Position(cursor, partial_end, read_to, since))
    assert ws[0] == Window(cursor - OVERLAP, read_to, partial_end, since)
    # The window's newest part was read as it happened: read again with the overlap (issue 13:
    # starting exactly at its end lost the events delivered late inside it).
    assert ws[1].start == partial_end - OVERLAP
    assert ws[-1].end == NOW_S and ws[-1].read_since == NOW_S
    _contiguous(ws[1:])


def test_a_partly_read_window_not_known_how_far_read_is_read_whole() -> None:
    cursor = NOW_S - timedelta(hours=3)
    partial_end = cursor + timedelta(minutes=45)
    ws = plan(NOW, Position(cursor, partial_end))
    assert ws[0] == Window(cursor - OVERLAP, partial_end, partial_end, partial_end)


def test_a_cursor_at_now_still_rereads_the_overlap_and_a_future_one_reads_nothing() -> None:
    assert plan(NOW, Position(NOW_S)) == [Window(NOW_S - OVERLAP, NOW_S, NOW_S, NOW_S)]
    assert plan(NOW, Position(NOW_S + timedelta(hours=1))) == []


def test_the_sweep_reads_slices_of_at_least_its_span_up_to_its_end_without_overlap() -> None:
    end = NOW_S - LATE
    every = timedelta(hours=3)
    assert (
        plan(NOW, Position(end - timedelta(hours=2)), end=end, overlap=timedelta(0), min_span=every)
        == []
    )
    ws = plan(NOW, Position(end - every), end=end, overlap=timedelta(0), min_span=every)
    assert ws == [Window(end - every, end, end, NOW_S)]


def test_the_sweep_follows_a_live_pass_that_reads_long_after_the_fact() -> None:
    hour = timedelta(hours=1)
    backlog = Window(NOW_S - 30 * hour, NOW_S - 20 * hour, NOW_S - 20 * hour, NOW_S)
    assert sweep_after(NOW_S - 30 * hour, backlog) == NOW_S - 20 * hour
    assert sweep_after(NOW_S - 31 * hour, backlog) == NOW_S - 31 * hour  # a gap: no
    recent = Window(NOW_S - 75 * timedelta(minutes=1), NOW_S, NOW_S, NOW_S)
    assert sweep_after(NOW_S - hour - OVERLAP, recent) == NOW_S - hour - OVERLAP
    # A resumed window counts from when its reading began.
    resumed = Window(NOW_S - 10 * hour, NOW_S - 9 * hour, NOW_S - 8 * hour, NOW_S - 8 * hour)
    assert sweep_after(NOW_S - 10 * hour, resumed) == NOW_S - 10 * hour
    assert sweep_after(NOW_S - 10 * hour, resumed, late=hour) == NOW_S - 9 * hour


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        plan(NOW.replace(tzinfo=None), None)


def test_lag_is_now_minus_the_cursor() -> None:
    assert lag(NOW, None) is None
    assert lag(NOW, NOW_S - timedelta(minutes=30)) == timedelta(minutes=30)
    assert lag(NOW, NOW_S + timedelta(minutes=1)) == timedelta(0)


def test_unread_counts_what_a_partly_read_window_has_left_and_what_came_after_it() -> None:
    hour = timedelta(hours=1)
    assert unread(Position(NOW_S - 3 * hour), NOW_S) == 3 * hour
    # [cursor, partial_end] read from its end down to partial_from: 1 h of it is read.
    half = Position(NOW_S - 5 * hour, NOW_S - 2 * hour, NOW_S - 3 * hour, NOW_S - 2 * hour)
    assert unread(half, NOW_S) == 4 * hour
    assert unread(Position(NOW_S + hour), NOW_S) == timedelta(0)
