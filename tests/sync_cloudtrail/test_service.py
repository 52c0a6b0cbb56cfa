"""The 'cloudtrail' job handler as the sync worker runs it: lease, run record, next run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from devstack.simaws import SimulatedAws
from devstack.trailgen import make_events
from functions.jobs import registry
from functions.jobs.schemas import JobContext
from functions.sync_cloudtrail import service
from shared import aws, observability
from shared.bootstrap import Deps
from shared.db import system_tx, tenant_tx
from shared.errors import LeaseLostError
from shared.pacing import Pacer
from shared.settings import Settings
from shared.store import jobs
from tests.support.sentry import CapturingTransport
from tests.sync_cloudtrail.conftest import Linked
from tests.sync_cloudtrail.helpers import NOW, FakeClock


def claim(conn: psycopg.Connection[Any], linked: Linked, clock: FakeClock) -> jobs.Lease:
    with tenant_tx(conn, linked.agency.id):
        # A short backfill: every window costs a request, even an empty one.
        conn.execute(
            "UPDATE cao.agencies SET cloudtrail_backfill_days = 3 WHERE id = %s",
            (linked.agency.id,),
        )
        jobs.ensure_jobs(
            conn, linked.agency.id, linked.account_id, ["cloudtrail"], due_at=NOW - timedelta(1)
        )
        job_id = conn.execute(
            "SELECT id FROM cao.sync_jobs WHERE account_id = %s AND kind = 'cloudtrail'",
            (linked.account_id,),
        ).fetchone()[0]  # type: ignore[index]
    with system_tx(conn):
        lease = jobs.claim(conn, job_id, clock.now(), 360)
    assert lease is not None
    return lease


def work(
    conn: psycopg.Connection[Any],
    linked: Linked,
    lease: jobs.Lease,
    clock: FakeClock,
    pacer: Pacer,
    **kwargs: Any,
) -> uuid.UUID:
    with tenant_tx(conn, linked.agency.id):
        run_id = jobs.start_run(conn, lease, clock.now())
    ours = Deps(linked.settings).our_clients()
    service.run(
        JobContext(
            conn=conn,
            lease=lease,
            clients=lambda: ours,
            clock=clock.now,
            run_id=run_id,
            pacer=pacer,
        ),
        **kwargs,
    )
    return run_id


def row(conn: psycopg.Connection[Any], sql: str, *args: Any) -> dict[str, Any]:
    cur = conn.execute(sql, args)
    assert cur.description is not None
    found = cur.fetchone()
    assert found is not None
    return dict(zip([c.name for c in cur.description], found, strict=True))


def test_the_worker_runs_cloudtrail_jobs_through_this_handler() -> None:
    assert registry.handler_for("cloudtrail") is service.run


def test_a_job_syncs_records_its_run_and_is_due_again_next_hour(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    events = make_events(linked.aws_account_id, "us-east-1", NOW - timedelta(days=2), NOW, 120, 1)
    fresh_sim.put_events(linked.aws_account_id, "us-east-1", events)
    lease = claim(app_conn, linked, clock)

    run_id = work(app_conn, linked, lease, clock, pacer)

    count = owner_conn.execute(
        "SELECT count(*) FROM cao.access_events WHERE account_id = %s", (linked.account_id,)
    ).fetchone()
    assert count == (120,)
    run = row(owner_conn, "SELECT * FROM cao.sync_runs WHERE id = %s", run_id)
    lookups = fresh_sim.count_calls("cloudtrail", "LookupEvents")
    assert (run["status"], run["rows_written"], run["error_class"]) == ("succeeded", 120, None)
    assert run["api_calls"] == lookups + 1  # + the assume-role
    assert run["kind"] == "cloudtrail"
    job = row(owner_conn, "SELECT * FROM cao.sync_jobs WHERE id = %s", lease.job_id)
    assert job["state"] == "idle" and job["lease_token"] is None
    assert job["next_run_at"] == service.next_hourly_run(clock.now())
    # Our session as the client sees it in its own CloudTrail: prefixed, opaque.
    (assume,) = [c for c in fresh_sim.calls if c.operation == "AssumeRole"]
    assert assume.params["RoleSessionName"] == aws.session_name(linked.agency.id)


def test_a_run_that_stops_on_its_budget_is_partial_and_due_again_soon(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    events = make_events(linked.aws_account_id, "us-east-1", NOW - timedelta(days=3), NOW, 3000, 2)
    fresh_sim.put_events(linked.aws_account_id, "us-east-1", events)
    lease = claim(app_conn, linked, clock)

    # 40 s: the assume must fit (botocore's 5 + 30 s timeouts), then 3 s of reserve and a
    # LookupEvents attempt's worst case (13 s) leave ~24 s of reading: ~46 of the 63 requests.
    run_id = work(app_conn, linked, lease, clock, pacer, time_budget_s=40.0)

    run = row(owner_conn, "SELECT * FROM cao.sync_runs WHERE id = %s", run_id)
    assert run["status"] == "partial" and run["error_class"] is None
    job = row(owner_conn, "SELECT * FROM cao.sync_jobs WHERE id = %s", lease.job_id)
    assert job["next_run_at"] <= clock.now() + service.FOLLOW_UP_DELAY


def test_a_worker_whose_lease_was_taken_over_writes_nothing(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    events = make_events(linked.aws_account_id, "us-east-1", NOW - timedelta(days=1), NOW, 80, 3)
    fresh_sim.put_events(linked.aws_account_id, "us-east-1", events)
    stale = claim(app_conn, linked, clock)
    clock.advance(400)  # the lease expires; another delivery takes the job
    with system_tx(app_conn):
        fresh = jobs.claim(app_conn, stale.job_id, clock.now(), 360)
    assert fresh is not None and fresh.token != stale.token

    with pytest.raises(LeaseLostError):
        work(app_conn, linked, stale, clock, pacer)

    for table in ("access_events", "sync_cursors"):
        count = owner_conn.execute(
            f"SELECT count(*) FROM cao.{table} WHERE account_id = %s",
            (linked.account_id,),
        ).fetchone()
        assert count == (0,), table


def test_a_refused_assume_marks_the_account_and_retries_no_sooner_than_next_hour(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    # The client removed the role or changed its trust policy: AWS refuses the assume.
    fresh_sim.faults.add("sts", "AssumeRole", "AccessDenied", status=403)
    lease = claim(app_conn, linked, clock)

    run_id = work(app_conn, linked, lease, clock, pacer)

    run = row(owner_conn, "SELECT * FROM cao.sync_runs WHERE id = %s", run_id)
    assert (run["status"], run["error_class"]) == ("failed", "AccessDenied")
    account = row(owner_conn, "SELECT * FROM cao.accounts WHERE id = %s", linked.account_id)
    assert account["status"] == "access_denied"
    job = row(owner_conn, "SELECT * FROM cao.sync_jobs WHERE id = %s", lease.job_id)
    assert job["next_run_at"] == service.next_hourly_run(clock.now())
    assert fresh_sim.count_calls("cloudtrail", "LookupEvents") == 0


@pytest.fixture
def sentry() -> Iterator[CapturingTransport]:
    transport = CapturingTransport()
    observability.stop()
    observability.start(Settings({}), transport=transport)
    yield transport
    observability.stop()


def test_a_region_that_falls_behind_is_reported_once_it_loses_ground_not_while_catching_up(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
    sentry: CapturingTransport,
) -> None:
    # 192 pages of events an hour, more than hourly 40-second runs read (~48 requests each:
    # the assume must fit its worst case, 35 s, in the budget; reading has 40 s less the
    # reserve and one attempt's worst case).
    hour = timedelta(hours=1)
    events = make_events(
        linked.aws_account_id, "us-east-1", NOW - 2 * hour, NOW + 3 * hour, 48_000, 4
    )
    fresh_sim.put_events(linked.aws_account_id, "us-east-1", events)

    work(app_conn, linked, claim(app_conn, linked, clock), clock, pacer, time_budget_s=40.0)
    assert sentry.events == []  # a first backfill is behind, but has no lag to lose yet

    clock.advance(3600)
    work(app_conn, linked, claim(app_conn, linked, clock), clock, pacer, time_budget_s=40.0)
    [warning] = sentry.events
    assert warning["level"] == "warning"
    assert warning["message"] == "CloudTrail sync is falling behind"
    assert warning["tags"]["account_id"] == str(linked.account_id)
    assert warning["tags"]["region"] == "us-east-1"
    assert int(warning["tags"]["lag_s"]) > 2 * 3600

    clock.advance(3600)  # a run with time enough catches up: no new warning
    work(app_conn, linked, claim(app_conn, linked, clock), clock, pacer)
    assert len(sentry.events) == 1
