"""The dispatcher publishes a large hour in batches within its time budget
(functions/jobs/service.py `dispatch`; measured at 50,000 jobs by bench/dispatch_jobs.py)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest

from functions.jobs import service
from functions.jobs.schemas import JobMessage
from shared.db import tenant_tx
from shared.store import jobs
from tests.jobs.test_service import Recorder
from tests.support.database import TestDatabase
from tests.support.factories import make_account, make_agency
from tests.support.jobs import START


def _due(app_conn: psycopg.Connection[Any], accounts: int) -> None:
    agency = make_agency(app_conn)
    for _ in range(accounts):
        account_id = make_account(app_conn, agency.id)
        with tenant_tx(app_conn, agency.id):
            jobs.ensure_jobs(app_conn, agency.id, account_id, due_at=START)
            app_conn.execute(
                "UPDATE cao.sync_jobs SET next_run_at = %s WHERE account_id = %s",
                (START, account_id),
            )


def test_one_run_publishes_every_due_job_in_batches_the_kinds_in_turn(
    clean_db: TestDatabase, app_conn: psycopg.Connection[Any]
) -> None:
    _due(app_conn, 23)
    publisher = Recorder()
    report = service.dispatch(app_conn, publisher, ["costs", "cloudtrail"], limit=5)
    # 23 jobs of each kind: 5 batches each (the last one short), not one batch of 5 per kind.
    assert report.published == {"costs": 23, "cloudtrail": 23}
    assert report.batches == 10 and not report.out_of_time
    assert len({m.job_id for m in publisher.sent}) == 46
    # The kinds took turns: each kind's first batch went before any kind's second.
    kinds = [m.kind for m in publisher.sent]
    assert set(kinds[:10]) == {"costs", "cloudtrail"}
    assert service.dispatch(app_conn, publisher, ["costs", "cloudtrail"], limit=5).published == {
        "costs": 0,
        "cloudtrail": 0,
    }


def test_a_run_stops_at_its_time_budget_and_the_rest_stays_due_for_the_next(
    clean_db: TestDatabase, app_conn: psycopg.Connection[Any]
) -> None:
    _due(app_conn, 12)
    ticks = iter(range(0, 1000, 10))  # every look at the clock: 10 s later

    report = service.dispatch(
        app_conn, Recorder(), ["costs"], limit=5, budget_s=15, monotonic=lambda: next(ticks)
    )
    assert report.out_of_time and report.published == {"costs": 10}  # two batches, then 20 s
    rest = service.dispatch(app_conn, Recorder(), ["costs"], limit=5)
    assert rest.published == {"costs": 2} and not rest.out_of_time


class _Refusing:
    """A queue that refuses every message of its second publish call."""

    def __init__(self) -> None:
        self.calls = 0

    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        self.calls += 1
        return list(messages) if self.calls == 2 else []


def test_a_refused_batch_ends_the_run_and_its_jobs_are_due_again(
    clean_db: TestDatabase, app_conn: psycopg.Connection[Any]
) -> None:
    _due(app_conn, 12)
    queue = _Refusing()
    report = service.dispatch(app_conn, queue, ["costs"], limit=5)
    # No loop re-taking the refused jobs: one good batch, one refused, then the run ends.
    assert queue.calls == 2 and report.published == {"costs": 5} and report.failed == 5
    assert service.dispatch(app_conn, Recorder(), ["costs"], limit=5).published == {"costs": 7}


class _Together:
    """A queue whose publish calls wait for each other: they must be in flight at once."""

    def __init__(self, parts: int, broken: int | None = None) -> None:
        self.barrier = threading.Barrier(parts, timeout=10)
        self.sent: list[JobMessage] = []
        self.broken = broken
        self.lock = threading.Lock()

    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        index = self.barrier.wait()
        if index == self.broken:
            raise ConnectionError("the queue service went away")
        with self.lock:
            self.sent.extend(messages)
        return []


def test_a_batch_is_published_in_parts_at_once_and_a_failed_part_is_due_again(
    clean_db: TestDatabase, app_conn: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "MIN_PART", 5)
    _due(app_conn, 20)
    together = _Together(4)
    report = service.dispatch(app_conn, together, ["costs"], limit=100, ways=4)
    assert report.published == {"costs": 20} and report.failed == 0
    assert len({m.job_id for m in together.sent}) == 20

    _due(app_conn, 20)
    flaky = _Together(4, broken=0)  # one of the four parts raises
    report = service.dispatch(app_conn, flaky, ["costs"], limit=100, ways=4)
    assert report.published == {"costs": 15} and report.failed == 5
    assert service.dispatch(app_conn, Recorder(), ["costs"]).published == {"costs": 5}
