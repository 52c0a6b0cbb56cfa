"""The queue consumer (functions/jobs/worker.py), with deliveries through the SDK's embedded
queue (shared/queue.py; the same subscriber Vercel pushes to) against the real Postgres:
at-least-once delivery, and still every job runs once; leases, fencing, the last delivery."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from devstack.simaws import SimulatedAws
from functions.jobs import registry, service, worker
from functions.jobs.schemas import JobContext, JobMessage
from functions.sync_costs import service as costs_sync
from shared import bootstrap
from shared.db import system_tx
from shared.errors import OutOfTimeError
from shared.pacing import Pacer
from shared.queue import LocalQueue
from shared.store import jobs
from tests.support.database import TestDatabase
from tests.support.factories import AgencyFixture
from tests.support.jobs import START, Clock, ce_calls, cost_rows, job, link, message, put_year, runs

pytestmark = pytest.mark.usefixtures("aws_settings")


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def nudge(q: LocalQueue, seconds: float = worker.RETRY_AFTER_S + 1) -> bool:
    """Let `seconds` pass on the queue's clock."""
    q.shift(seconds)
    return True


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


@pytest.fixture
def local_queue() -> Iterator[LocalQueue]:
    with worker.local_queue(manual_clock=True) as q:
        yield q


def test_dispatched_jobs_reach_the_worker_through_the_queue_and_sync(
    clean_db: TestDatabase,
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    local_queue: LocalQueue,
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "4.2"}, current=this_month())

    report = service.dispatch(app_conn, local_queue, ["costs"])
    assert report.published == {"costs": 1}

    wait_until(lambda: local_queue.pending() == 0 and bool(runs(app_conn, linked)))
    wait_until(lambda: runs(app_conn, linked)[-1]["status"] == "succeeded")
    assert len(cost_rows(app_conn, linked)) == 14 * 3
    assert job(app_conn, linked)["state"] == "idle"


def test_the_same_message_published_twice_is_delivered_once(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    local_queue: LocalQueue,
) -> None:
    linked = link(sim, app_conn, agency)
    msg = message(app_conn, linked)
    assert local_queue.publish([msg]) == [] and local_queue.publish([msg]) == []
    wait_until(lambda: local_queue.pending() == 0 and local_queue.deliveries() == 1)
    wait_until(lambda: bool(runs(app_conn, linked)) and runs(app_conn, linked)[-1]["finished_at"])
    time.sleep(0.3)
    assert local_queue.deliveries() == 1 and len(runs(app_conn, linked)) == 1


def test_concurrent_deliveries_of_one_job_run_it_once(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    local_queue: LocalQueue,
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "1"}, current=this_month())
    sim.latency[("ce", "GetCostAndUsage")] = 0.3
    job_id = message(app_conn, linked).job_id
    # The cron's message and a "sync now" for the same job, delivered at the same moment.
    local_queue.publish(
        [
            JobMessage(job_id, agency.id, "costs", START),
            JobMessage(job_id, agency.id, "costs", START + timedelta(minutes=5)),
        ]
    )
    wait_until(lambda: local_queue.deliveries() >= 2)
    wait_until(lambda: bool(runs(app_conn, linked)) and runs(app_conn, linked)[0]["finished_at"])
    # Whatever was deferred comes back once the lease would have expired.
    wait_until(lambda: nudge(local_queue, worker.LEASE_SECONDS + 1) and local_queue.pending() == 0)

    assert len(runs(app_conn, linked)) == 1
    assert len(ce_calls(sim, linked.aws_account_id)) == 1


def test_a_delivery_arriving_while_the_job_runs_waits_for_the_lease_then_finds_it_done(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    local_queue: LocalQueue,
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "1"}, current=this_month())
    sim.latency[("ce", "GetCostAndUsage")] = 0.6  # the first delivery is still running ...
    job_id = message(app_conn, linked).job_id
    local_queue.publish([JobMessage(job_id, agency.id, "costs", START)])
    wait_until(lambda: job(app_conn, linked)["state"] == "running")
    # ... when a second message for the same job arrives (e.g. a "sync now").
    local_queue.publish([JobMessage(job_id, agency.id, "costs", START + timedelta(minutes=5))])
    wait_until(lambda: local_queue.deliveries() == 2)
    wait_until(lambda: bool(runs(app_conn, linked)) and runs(app_conn, linked)[0]["finished_at"])
    time.sleep(0.2)
    assert local_queue.pending() == 1  # deferred until the lease would have expired

    local_queue.shift(worker.LEASE_SECONDS + 60)  # redelivered: the job is done, acknowledged
    wait_until(lambda: local_queue.pending() == 0)

    assert local_queue.deliveries() == 3
    assert len(runs(app_conn, linked)) == 1
    assert len(ce_calls(sim, linked.aws_account_id)) == 1


def test_a_worker_whose_lease_was_taken_over_writes_nothing(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "1"}, current="2025-03")
    taken: list[jobs.Lease] = []

    def slow_worker(ctx: JobContext) -> None:
        # While this worker stalls past its lease, another delivery reclaims the job.
        with system_tx(ctx.conn):
            later = START + timedelta(seconds=worker.LEASE_SECONDS + 1)
            newer = jobs.claim(ctx.conn, ctx.lease.job_id, later, worker.LEASE_SECONDS)
        assert newer is not None
        taken.append(newer)
        costs_sync.run(ctx)

    monkeypatch.setitem(registry.HANDLERS, "costs", slow_worker)
    assert (
        worker.process(app_conn, message(app_conn, linked), 1, bootstrap.current().but(clock=clock))
        is None
    )

    assert len(ce_calls(sim, linked.aws_account_id)) == 1  # it read AWS ...
    assert cost_rows(app_conn, linked) == {}  # ... and wrote nothing
    state = job(app_conn, linked)
    assert state["lease_token"] == taken[0].token and state["state"] == "running"
    assert state["last_success_at"] is None
    assert [r["status"] for r in runs(app_conn, linked)] == ["superseded"]


def test_the_lease_of_a_crashed_worker_expires_and_a_redelivery_reclaims_the_job(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture, clock: Clock
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "1"}, current="2025-03")
    msg = message(app_conn, linked)
    with system_tx(app_conn):
        crashed = jobs.claim(app_conn, msg.job_id, START, worker.LEASE_SECONDS)
    assert crashed is not None  # ... and that worker never comes back

    wait = worker.process(
        app_conn, msg, 2, bootstrap.current().but(clock=Clock(START + timedelta(seconds=20)))
    )
    assert wait is not None and worker.LEASE_SECONDS - 25 <= wait <= worker.LEASE_SECONDS - 19
    assert runs(app_conn, linked) == []

    later = Clock(START + timedelta(seconds=worker.LEASE_SECONDS + 5))
    assert worker.process(app_conn, msg, 3, bootstrap.current().but(clock=later)) is None
    assert runs(app_conn, linked)[-1]["status"] == "succeeded"
    assert cost_rows(app_conn, linked)


def test_unexpected_errors_are_redelivered_and_the_last_delivery_ends_the_job_failed(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    local_queue: LocalQueue,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(ctx: JobContext) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(registry.HANDLERS, "costs", broken)
    linked = link(sim, app_conn, agency)
    local_queue.publish([message(app_conn, linked)])

    for delivery in range(1, worker.MAX_DELIVERIES):
        wait_until(
            lambda d=delivery: (
                len(runs(app_conn, linked)) == d and job(app_conn, linked)["state"] == "queued"
            )  # the lease given back, not acked
        )
        # The queue's retry delay passes (again, until the SDK has rescheduled the message).
        wait_until(lambda d=delivery: nudge(local_queue) and len(runs(app_conn, linked)) > d)
    wait_until(lambda: local_queue.pending() == 0)

    assert local_queue.deliveries() == worker.MAX_DELIVERIES
    state = job(app_conn, linked)
    assert (state["state"], state["last_error_class"]) == ("failed", "RuntimeError")
    assert state["lease_token"] is None
    assert [r["status"] for r in runs(app_conn, linked)] == ["failed"] * worker.MAX_DELIVERIES


def test_no_aws_call_of_a_job_can_end_after_its_work_budget(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The lease outlives the function (300 s) only if no AWS call does: each HTTP attempt of any
    # job (botocore's retries too) must end within WORK_BUDGET_S, with its 5 s + 30 s timeouts.
    linked = link(sim, app_conn, agency)
    mono = [1000.0]
    seen: list[str] = []

    def handler(ctx: JobContext) -> None:
        sts = ctx.ours.client("sts")
        sts.get_caller_identity()  # at the start: plenty of time
        mono[0] += worker.WORK_BUDGET_S - 34.0  # 34 s left: less than one attempt's worst case
        before = sim.count_calls("sts", "GetCallerIdentity")
        for attempt in (sts.get_caller_identity, ctx.ours.client("sts").get_caller_identity):
            with pytest.raises(OutOfTimeError):
                attempt()
        assert sim.count_calls("sts", "GetCallerIdentity") == before  # nothing was sent
        seen.append("refused")

    monkeypatch.setitem(registry.HANDLERS, "costs", handler)
    pacer = Pacer(clock=lambda: mono[0], sleep=lambda s: None)
    deps = bootstrap.current().but(clock=clock, pacer=pacer)
    assert worker.process(app_conn, message(app_conn, linked), 1, deps) is None
    assert seen == ["refused"]
    assert worker.WORK_BUDGET_S < 300  # every call ends within the function's maxDuration


def test_an_unreadable_message_is_dropped_rather_than_redelivered_forever() -> None:
    assert worker.consume({"job_id": "x"}, 1) is None


def test_a_message_published_with_a_delay_is_delivered_only_once_it_is_due(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    local_queue: LocalQueue,
) -> None:
    # The SDK's delayed send (how the worker publishes follow-ups), through the embedded queue.
    linked = link(sim, app_conn, agency)
    later = JobMessage(message(app_conn, linked).job_id, agency.id, "costs", START, delay_s=120)
    assert local_queue.publish([later]) == []
    time.sleep(0.3)
    assert local_queue.deliveries() == 0
    assert local_queue.delayed() == 1 and local_queue.pending() == 0
    local_queue.shift(121)
    wait_until(lambda: local_queue.deliveries() == 1 and local_queue.pending() == 0)
    assert local_queue.delayed() == 0
