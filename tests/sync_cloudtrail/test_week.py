"""Issue 13's "done when": a simulated week of hourly syncs through the real worker, with
delivery delays up to an hour and every third run throttled or crashed, stores every event
exactly once.

Time is the fake clock's (pacing sleeps advance it); the queue is a heap of deliveries on that
clock: the hourly dispatcher (at :05) publishes due jobs, the worker publishes its follow-ups
with a delay, a delivery the consumer answers "retry after" comes back then, and a worker that
dies mid-run leaves its message unacknowledged, redelivered a minute later as Vercel Queues
does. The simulated AWS delivers each event after its drawn delay.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from devstack.simaws import SimulatedAws, delivery_delays
from devstack.trailgen import make_events
from functions.jobs import service as jobs_service
from functions.jobs import worker
from functions.jobs.schemas import JobMessage
from shared.bootstrap import Deps
from shared.db import tenant_tx
from shared.pacing import Pacer
from shared.store import jobs
from tests.sync_cloudtrail.conftest import Linked
from tests.sync_cloudtrail.helpers import NOW, FakeClock
from tests.sync_cloudtrail.test_sync import no_retry_sleep  # noqa: F401 - a fixture

WEEK = timedelta(days=7)
SETTLE = timedelta(hours=10)  # late deliveries land, the sweep passes the week's end


class WorkerDied(BaseException):
    """The function instance died mid-run (timeout, out of memory): nothing of ours runs."""


class Killer:
    """A botocore hook on the worker's session: when armed, the worker dies just before its
    n-th next LookupEvents call (between two pages, or before the first)."""

    def __init__(self) -> None:
        self.armed: int | None = None

    def __call__(self, **_: Any) -> None:
        if self.armed is not None:
            if self.armed == 0:
                self.armed = None
                raise WorkerDied
            self.armed -= 1


class Recorder:
    """The publisher: what the product sends, for the test's queue to deliver."""

    def __init__(self) -> None:
        self.sent: list[JobMessage] = []

    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        self.sent.extend(messages)
        return []


def will_run(owner: psycopg.Connection[Any], message: JobMessage, clock: FakeClock) -> bool:
    row = owner.execute(
        "SELECT next_run_at <= %(now)s AND coalesce(lease_expires_at <= %(now)s, true)"
        " FROM cao.sync_jobs WHERE id = %(job)s",
        {"now": clock.now(), "job": message.job_id},
    ).fetchone()
    return bool(row and row[0])


@pytest.mark.slow  # ~200 runs through the worker: 10-40 s, depending on the machine's load
def test_a_week_with_hour_late_events_and_every_third_run_stopped_stores_every_event_once(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    no_retry_sleep: None,  # noqa: F811
) -> None:
    rng = random.Random(13)
    fresh_sim.delivery_delay = delivery_delays(3600, late_share=0.2, seed=13)
    events = make_events(
        linked.aws_account_id, "us-east-1", NOW - timedelta(days=1), NOW + WEEK, 2400, 13
    )
    fresh_sim.put_events(linked.aws_account_id, "us-east-1", events)
    with tenant_tx(app_conn, linked.agency.id):
        app_conn.execute(
            "UPDATE cao.agencies SET cloudtrail_backfill_days = 1 WHERE id = %s",
            (linked.agency.id,),
        )
        jobs.ensure_jobs(app_conn, linked.agency.id, linked.account_id, ["cloudtrail"], due_at=NOW)

    killer = Killer()
    recorder = Recorder()
    deps = Deps(
        linked.settings,
        clock=clock.now,
        publisher_for=lambda headers: recorder,
        pacer=Pacer(clock=clock.monotonic, sleep=clock.sleep),
    )
    deps.botocore.get().register("before-call.cloudtrail.LookupEvents", killer)
    deliveries: list[tuple[float, int, JobMessage, int]] = []  # (due on the clock, seq, ...)
    seq = 0

    def deliver_later(message: JobMessage, after_s: float, count: int = 1) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(deliveries, (clock.monotonic() + after_s, seq, message, count))

    def until(moment: float) -> None:
        clock.advance(max(0.0, moment - clock.monotonic()))

    next_dispatch = (timedelta(minutes=5)).total_seconds()
    finish = (WEEK + SETTLE).total_seconds()
    runs = disturbed = died = 0
    while clock.monotonic() < finish:
        if not deliveries or next_dispatch <= deliveries[0][0]:
            until(next_dispatch)
            jobs_service.dispatch(app_conn, recorder, ["cloudtrail"])
            next_dispatch += 3600
        else:
            at, _, message, count = heapq.heappop(deliveries)
            until(at)
            if will_run(owner_conn, message, clock):
                runs += 1
                if runs % 3 == 0:  # every third run: throttled, AWS failing, or the worker dying
                    disturbed += 1
                    kind = disturbed % 3
                    if kind == 2:
                        killer.armed = rng.randrange(0, 2)
                    else:
                        fresh_sim.interrupt_lookups(
                            linked.aws_account_id, after=rng.randrange(0, 3), throttle=kind == 1
                        )
            try:
                retry = worker.process(app_conn, message, count, deps)
            except WorkerDied:
                died += 1
                deliver_later(message, worker.RETRY_AFTER_S, count + 1)
            else:
                if retry is not None:
                    deliver_later(message, retry, count + 1)
            killer.armed = None
            fresh_sim.reset_interruptions()
        for sent in recorder.sent:
            deliver_later(sent, getattr(sent, "delay_s", 0))
        recorder.sent.clear()

    stored = owner_conn.execute(
        "SELECT event_id FROM cao.access_events WHERE account_id = %s", (linked.account_id,)
    ).fetchall()
    ids = [r[0] for r in stored]
    assert len(ids) == len(set(ids))  # once...
    assert set(ids) == {e["eventID"] for e in events}  # ...and every one
    # The week was what it says: hourly runs, every third disturbed, workers died mid-run.
    assert runs >= 7 * 24 and disturbed >= runs // 3 and died >= 5
