"""The worker under faults (issue 15, item 8): a failure that broke the database connection is
settled on a fresh one; a live worker renews its short lease (heartbeat); a crashed worker's job
is taken over within about a minute and its run is closed as `abandoned`, which the agency sees
in the account's recent runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from devstack.simaws import SimulatedAws
from functions.jobs import registry, worker
from functions.jobs.schemas import JobContext
from functions.sync_costs import service as costs_sync
from shared import bootstrap
from tests.support.factories import AgencyFixture
from tests.support.jobs import Clock, cost_rows, job, link, message, put_year, runs

pytestmark = pytest.mark.usefixtures("aws_settings")


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting")


class Crash(BaseException):
    """The worker process dies here: no handler, no settling, no heartbeat after it."""


def test_a_failure_that_broke_the_connection_is_settled_on_a_fresh_one(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def database_restarts(ctx: JobContext) -> None:
        # The backend goes away under the job (a Neon restart, the pooler dropping it).
        ctx.conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    monkeypatch.setitem(registry.HANDLERS, "costs", database_restarts)
    linked = link(sim, app_conn, agency)
    deps = bootstrap.current().but(clock=clock)

    with pytest.raises(psycopg.OperationalError), deps.connection() as conn:
        worker.process(conn, message(app_conn, linked), 1, deps)  # redelivered by the queue

    # Settled at once: the run closed as failed, the lease given back for the redelivery.
    assert [(r["status"], r["finished_at"] is not None) for r in runs(app_conn, linked)] == [
        ("failed", True)
    ]
    state = job(app_conn, linked)
    assert (state["state"], state["lease_token"]) == ("queued", None)


def test_a_live_worker_renews_its_lease_so_no_other_delivery_takes_the_job(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker, "HEARTBEAT_S", 0.01)
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "1"}, current="2025-03")
    deps = bootstrap.current().but(clock=clock)
    msg = message(app_conn, linked)
    others: list[float | None] = []

    def long_job(ctx: JobContext) -> None:
        # Seven minutes pass while it works, in steps shorter than the lease ...
        for _ in range(7):
            clock.advance(seconds=worker.LEASE_SECONDS - 1)
            renewed = clock() + timedelta(seconds=worker.LEASE_SECONDS)
            wait_until(lambda r=renewed: job(app_conn, linked)["lease_expires_at"] >= r)
            # ... and a duplicate delivery arriving meanwhile finds the job held.
            with deps.connection() as conn:
                others.append(worker.process(conn, msg, 2, deps))
        costs_sync.run(ctx)

    monkeypatch.setitem(registry.HANDLERS, "costs", long_job)
    with deps.connection() as conn:
        assert worker.process(conn, msg, 1, deps) is None

    assert others and all(wait is not None and wait > 0 for wait in others)
    assert [r["status"] for r in runs(app_conn, linked)] == ["succeeded"]
    assert cost_rows(app_conn, linked)
    assert job(app_conn, linked)["lease_token"] is None


def test_a_crashed_workers_job_is_taken_over_within_a_minute_and_its_run_shows_abandoned(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    local_app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "1"}, current="2025-03")
    deps = bootstrap.current().but(clock=clock)
    msg = message(app_conn, linked)

    def killed(ctx: JobContext) -> None:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setitem(registry.HANDLERS, "costs", killed)
        with pytest.raises(Crash), deps.connection() as conn:
            worker.process(conn, msg, 1, deps)
    assert [r["status"] for r in runs(app_conn, linked)] == ["running"]

    clock.advance(seconds=61)  # the queue redelivers a minute later
    with deps.connection() as conn:
        assert worker.process(conn, msg, 2, deps) is None

    statuses = [(r["status"], r["finished_at"] is not None) for r in runs(app_conn, linked)]
    assert statuses == [("abandoned", True), ("succeeded", True)]
    with TestClient(local_app) as client:
        shown = client.get(f"/api/accounts/{linked.account_id}", headers=agency.headers)
    assert shown.status_code == 200
    assert [r["status"] for r in shown.json()["recent_runs"]] == ["succeeded", "abandoned"]
