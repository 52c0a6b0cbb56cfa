"""Parallel time slices under slow AWS (functions/sync_cloudtrail/reader.py, "Slow AWS").

Every LookupEvents call takes `LATENCY_S` on the fake clock (the pacing clock and the time
budget), and a few real milliseconds in the simulator so the slice threads really interleave.
(A fake clock cannot show the rate gained: `bench.cloudtrail_rate` measures it on the real one.)
The reader then cuts the rest of a busy window into slices read in parallel, through the same
account-region bucket. What must hold: every event stored exactly once, cursors that move only
past completely read windows, and a run stopped in the middle (budget, AWS failure, a lost
lease) resumed by the next without losing anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from devstack.simaws import SimulatedAws
from functions.sync_cloudtrail import reader
from shared import aws
from shared.errors import LeaseLostError
from shared.pacing import Pacer
from tests.sync_cloudtrail.conftest import Linked
from tests.sync_cloudtrail.helpers import NOW, FakeClock
from tests.sync_cloudtrail.test_sync import ATTEMPT_S, DAY, cursors, do_sync, lookups, seed, stored

LATENCY_S = 1.0
EVENTS = 3000  # 60 pages in one day
ONE_WINDOW: dict[str, Any] = {"backfill_days": 1, "window_size": 2 * DAY, "batch_rows": 200}


class _Slow:
    """A client factory whose LookupEvents calls each take `latency` on the fake clock."""

    def __init__(self, inner: aws.ClientFactory, clock: FakeClock, latency: float) -> None:
        self.inner = inner
        self.clock = clock
        self.latency = latency

    def client(self, service: str, region: str = "us-east-1", **kwargs: Any) -> aws.Client:
        made = self.inner.client(service, region, **kwargs)

        def slow(operation: str) -> None:
            if operation == "lookup_events":
                self.clock.sleep(self.latency)

        made._on_call = slow
        return made


def slow_sync(
    conn: psycopg.Connection[Any],
    linked: Linked,
    clock: FakeClock,
    pacer: Pacer,
    latency: float = LATENCY_S,
    **kwargs: Any,
) -> reader.Outcome:
    def assume() -> aws.ClientFactory:
        return _Slow(linked.assume(), clock, latency)  # type: ignore[return-value]

    return do_sync(
        conn,
        linked,
        clock,
        pacer,
        clients=assume(),
        reassume=assume,
        **(ONE_WINDOW | kwargs),
    )


@pytest.fixture(autouse=True)
def _drop_events(linked: Linked, owner_conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Thousands of old events per test: dropped after it, so that tests purging across every
    agency of the session database (the retention tests, with their time budget) do not pay."""
    yield
    owner_conn.execute("DELETE FROM cao.access_events WHERE account_id = %s", (linked.account_id,))


@pytest.fixture
def slow_sim(fresh_sim: SimulatedAws) -> SimulatedAws:
    fresh_sim.latency[("cloudtrail", "LookupEvents")] = 0.003
    return fresh_sim


def ranges(sim: SimulatedAws) -> set[tuple[float, float]]:
    """The distinct (StartTime, EndTime) pairs LookupEvents was asked for."""
    return {(p["StartTime"], p["EndTime"]) for p in lookups(sim)}


def count_rows(owner: psycopg.Connection[Any], linked: Linked) -> int:
    row = owner.execute(
        "SELECT count(*) FROM cao.access_events WHERE account_id = %s", (linked.account_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_slow_calls_read_the_window_in_parallel_slices_and_store_each_event_once(
    slow_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    events = seed(slow_sim, linked, "us-east-1", NOW - DAY, NOW, EVENTS, 41)
    outcome = slow_sync(app_conn, linked, clock, pacer)

    assert not outcome.backlog_remaining and outcome.error_class is None
    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}
    assert count_rows(owner_conn, linked) == EVENTS
    assert outcome.events_written == EVENTS  # counted once, though slice edges are read twice
    # The window was read as several slices: many distinct time ranges, not one.
    assert len(ranges(slow_sim)) >= reader.SLICE_WORKERS + 1
    # Each slice costs at most one request more than its pages; 60 pages + slices + the head.
    assert outcome.total_api_calls <= 60 + len(ranges(slow_sim)) + 2
    position, partial_end = cursors(owner_conn, linked.account_id)["us-east-1"]
    assert partial_end is None and position == NOW


def test_calls_at_the_quota_pace_never_slice(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    events = seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW, EVENTS, 42)
    outcome = slow_sync(app_conn, linked, clock, pacer, latency=0.3)  # faster than the spacing
    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}
    assert len(ranges(fresh_sim)) == 1  # one window, its pages one after the other
    assert outcome.total_api_calls == 60


@pytest.mark.parametrize("budget_s", [6.0, 13.0, 21.0])
def test_a_sliced_read_stopped_by_its_budget_resumes_and_loses_nothing(
    slow_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
    budget_s: float,
) -> None:
    events = seed(slow_sim, linked, "us-east-1", NOW - DAY, NOW, EVENTS, 43)
    runs: list[reader.Outcome] = []
    while not runs or runs[-1].backlog_remaining:
        runs.append(slow_sync(app_conn, linked, clock, pacer, time_budget_s=budget_s + ATTEMPT_S))
        assert len(runs) < 60
        if len(runs) == 1:
            # Stopped inside the window: the cursor did not move, the window is remembered.
            position, partial_end = cursors(owner_conn, linked.account_id)["us-east-1"]
            assert position == NOW - DAY and partial_end == NOW
        clock.advance(15)
    assert len(runs) > 1
    assert all(r.error_class is None for r in runs)
    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}
    assert count_rows(owner_conn, linked) == EVENTS
    assert sum(r.events_written for r in runs) == EVENTS
    position, partial_end = cursors(owner_conn, linked.account_id)["us-east-1"]
    assert partial_end is None and position >= NOW


def test_an_aws_failure_in_one_slice_stops_the_window_and_the_next_run_completes_it(
    slow_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    events = seed(slow_sim, linked, "us-east-1", NOW - DAY, NOW, EVENTS, 44)
    # 20 calls pass (the head pages and some slice pages), then AWS fails on every attempt.
    slow_sim.interrupt_lookups(linked.aws_account_id, after=20, throttle=False, times=40)
    first = slow_sync(app_conn, linked, clock, pacer, max_attempts=2)
    assert first.backlog_remaining and first.error_class == "InternalFailure"
    assert len(ranges(slow_sim)) > 1  # it had sliced
    assert 0 < count_rows(owner_conn, linked) < EVENTS
    position, partial_end = cursors(owner_conn, linked.account_id)["us-east-1"]
    assert position == NOW - DAY and partial_end == NOW
    slow_sim.reset_interruptions()

    clock.advance(600)
    second = slow_sync(app_conn, linked, clock, pacer)
    assert not second.backlog_remaining
    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}
    assert count_rows(owner_conn, linked) == EVENTS
    assert first.events_written + second.events_written == EVENTS


def test_a_lost_lease_mid_slices_keeps_what_was_committed_and_the_next_run_completes(
    slow_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    events = seed(slow_sim, linked, "us-east-1", NOW - DAY, NOW, EVENTS, 45)
    fenced: list[int] = []

    def lease_lost_after(batches: int) -> Callable[[Any], None]:
        def fence(conn: Any) -> None:
            fenced.append(1)
            if len(fenced) > batches:
                raise LeaseLostError("the job's lease was taken over by another delivery")

        return fence

    with pytest.raises(LeaseLostError):
        slow_sync(app_conn, linked, clock, pacer, fence=lease_lost_after(4))
    kept = count_rows(owner_conn, linked)
    assert 0 < kept < EVENTS  # the 4 batches committed before the lease was lost
    # Never past a window not read to its end; the window is remembered as partly read.
    assert cursors(owner_conn, linked.account_id)["us-east-1"] == (NOW - DAY, NOW)

    clock.advance(60)
    outcome = slow_sync(app_conn, linked, clock, pacer)
    assert not outcome.backlog_remaining
    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}
    assert count_rows(owner_conn, linked) == EVENTS
    assert kept + outcome.events_written == EVENTS


def test_late_events_delivered_while_slices_read_are_stored_by_a_later_pass(
    slow_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    """An event that shows up after its slice was read (delivered late, inside the window) is
    read by the next run's overlap or the sweep, like any late event of a sequential read."""
    events = seed(slow_sim, linked, "us-east-1", NOW - DAY, NOW, EVENTS, 46)
    first = slow_sync(app_conn, linked, clock, pacer)
    assert not first.backlog_remaining
    late_at: datetime = NOW - timedelta(minutes=5)
    late = seed(slow_sim, linked, "us-east-1", late_at, late_at + timedelta(seconds=30), 3, 47)
    clock.advance(3600)
    slow_sync(app_conn, linked, clock, pacer)
    want = {e["eventID"] for e in events + late}
    assert set(stored(owner_conn, linked.account_id)) == want
