"""The job model against the real Postgres: leases, fencing, runs, and the dispatcher
(functions/jobs/service.py)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from functions.jobs import service
from functions.jobs.schemas import JobContext, JobMessage
from shared import bootstrap
from shared.db import system_tx, tenant_tx
from shared.errors import LeaseLostError
from shared.store import costs, jobs
from tests.support.database import TestDatabase
from tests.support.factories import AgencyFixture, make_account, make_agency
from tests.support.jobs import START, Linked, job, job_id, link

LEASE = 360


class Recorder:
    """A publisher that keeps what it was given (and can refuse some)."""

    def __init__(self, refuse: set[uuid.UUID] | None = None) -> None:
        self.sent: list[JobMessage] = []
        self.refuse = refuse or set()
        self._lock = threading.Lock()

    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        with self._lock:
            self.sent.extend(m for m in messages if m.job_id not in self.refuse)
        return [m for m in messages if m.job_id in self.refuse]


def _linked(conn: psycopg.Connection[Any], agency: AgencyFixture) -> Linked:
    return link(None, conn, agency)  # no AWS in these tests


def claim(conn: psycopg.Connection[Any], job: uuid.UUID, at: Any) -> jobs.Lease | None:
    with system_tx(conn):
        return jobs.claim(conn, job, at, LEASE)


def test_every_linked_account_gets_one_job_per_kind(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    linked = _linked(app_conn, agency)
    with tenant_tx(app_conn, agency.id):
        jobs.ensure_jobs(app_conn, agency.id, linked.account_id)  # again: nothing new
        kinds = app_conn.execute(
            "SELECT kind FROM cao.sync_jobs WHERE account_id = %s ORDER BY kind",
            (linked.account_id,),
        ).fetchall()
    assert [k[0] for k in kinds] == ["cloudtrail", "costs"]


def test_a_lease_is_held_once_and_an_expired_one_is_reclaimed_with_a_new_token(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    linked = _linked(app_conn, agency)
    job = job_id(app_conn, linked)
    first = claim(app_conn, job, START)
    assert first is not None and first.deliveries == 1 and first.kind == "costs"
    assert claim(app_conn, job, START + timedelta(seconds=LEASE - 1)) is None
    second = claim(app_conn, job, START + timedelta(seconds=LEASE + 1))
    assert second is not None and second.token != first.token and second.deliveries == 2

    # The first holder's writes are fenced off: nothing of its transaction lands.
    with pytest.raises(LeaseLostError), tenant_tx(app_conn, agency.id):
        costs.replace_months(
            app_conn, linked.account_id, agency.id, {START.date().replace(day=1): True}, []
        )
        jobs.fence(app_conn, first)
    with pytest.raises(LeaseLostError), tenant_tx(app_conn, agency.id):
        jobs.complete(app_conn, first, START + timedelta(days=1))
    with tenant_tx(app_conn, agency.id):
        assert costs.month_states(app_conn, agency.id, linked.account_id) == {}
        jobs.fence(app_conn, second)
        jobs.complete(app_conn, second, START + timedelta(days=1), now=START)


def test_a_duplicate_delivery_after_the_job_ran_finds_nothing_to_claim(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    linked = _linked(app_conn, agency)
    lease = claim(app_conn, job_id(app_conn, linked), START)
    assert lease is not None
    with tenant_tx(app_conn, agency.id):
        jobs.fence(app_conn, lease)
        jobs.complete(app_conn, lease, START + timedelta(days=1), now=START)
    assert claim(app_conn, lease.job_id, START + timedelta(seconds=1)) is None
    assert claim(app_conn, lease.job_id, START + timedelta(days=1)) is not None


def test_jobs_of_paused_accounts_and_agencies_without_entitlement_are_not_claimed(
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    other_agency: AgencyFixture,
) -> None:
    paused = _linked(app_conn, agency)
    with tenant_tx(app_conn, agency.id):
        app_conn.execute(
            "UPDATE cao.accounts SET status = 'paused' WHERE id = %s", (paused.account_id,)
        )
    unpaid = _linked(app_conn, other_agency)
    _set_billing(owner_conn, other_agency.id, billing_status="revoked")
    assert claim(app_conn, job_id(app_conn, paused), START) is None
    assert claim(app_conn, job_id(app_conn, unpaid), START) is None


def test_a_run_records_its_requests_and_their_cost(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    linked = _linked(app_conn, agency)
    lease = claim(app_conn, job_id(app_conn, linked), START)
    assert lease is not None
    with tenant_tx(app_conn, agency.id):
        run = jobs.start_run(app_conn, lease, START)
        jobs.finish_run(
            app_conn,
            agency.id,
            run,
            "succeeded",
            now=START,
            api_calls=8,
            ce_requests=7,
            months=[START.date().replace(day=1)],
            rows_written=3,
        )
        row = app_conn.execute(
            "SELECT status, ce_requests, ce_cost_usd, api_calls, rows_written, months"
            " FROM cao.sync_runs WHERE id = %s",
            (run,),
        ).fetchone()
    assert row == ("succeeded", 7, Decimal("0.07"), 8, 3, [START.date().replace(day=1)])


def test_failures_are_visible_and_a_terminal_one_stays_failed_until_retried(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    linked = _linked(app_conn, agency)
    lease = claim(app_conn, job_id(app_conn, linked), START)
    assert lease is not None
    with tenant_tx(app_conn, agency.id):
        jobs.fail(app_conn, lease, "Boom", START + timedelta(hours=1), True, now=START)
    state = job(app_conn, linked)
    assert (state["state"], state["last_error_class"], state["consecutive_failures"]) == (
        "failed",
        "Boom",
        1,
    )
    assert state["lease_token"] is None


# ---- dispatcher -------------------------------------------------------------------------------


def _set_billing(owner: psycopg.Connection[Any], agency_id: uuid.UUID, **fields: Any) -> None:
    """Billing columns as webhooks would leave them (the app role may not write them)."""
    for name, value in fields.items():
        owner.execute(f"UPDATE cao.agencies SET {name} = %s WHERE id = %s", (value, agency_id))


def test_the_dispatcher_publishes_due_jobs_of_entitled_agencies_only(
    clean_db: TestDatabase, app_conn: psycopg.Connection[Any], owner_conn: psycopg.Connection[Any]
) -> None:
    # The dispatcher decides "due" and "entitled" on the database's clock: times are set
    # around the real now.
    now = datetime.now(UTC)
    trial = make_agency(app_conn)
    expired = make_agency(app_conn)
    _set_billing(owner_conn, expired.id, trial_ends_at=now - timedelta(days=1))
    revoked = make_agency(app_conn)
    _set_billing(owner_conn, revoked.id, billing_status="revoked")
    canceled = make_agency(app_conn)
    _set_billing(
        owner_conn,
        canceled.id,
        billing_status="canceled",
        current_period_end=now + timedelta(days=3),
    )
    linked = {a.id: _linked(app_conn, a) for a in (trial, expired, revoked, canceled)}
    _set_billing(owner_conn, trial.id, trial_ends_at=now + timedelta(days=5))
    not_due = _linked(app_conn, trial)
    with tenant_tx(app_conn, trial.id):
        app_conn.execute(
            "UPDATE cao.sync_jobs SET next_run_at = %s WHERE account_id = %s",
            (now + timedelta(days=1), not_due.account_id),
        )

    publisher = Recorder()
    report = service.dispatch(app_conn, publisher, ["costs"])

    sent = {m.agency_id for m in publisher.sent}
    assert sent == {trial.id, canceled.id}
    assert report.published == {"costs": 2} and report.failed == 0
    message = next(m for m in publisher.sent if m.agency_id == trial.id)
    assert message.job_id == job_id(app_conn, linked[trial.id]) and message.period == START
    assert job(app_conn, linked[trial.id])["state"] == "queued"
    assert job(app_conn, linked[revoked.id])["state"] == "idle"

    # A second run moments later publishes nothing again; an hour later a lost message is.
    assert service.dispatch(app_conn, publisher, ["costs"]).published == {"costs": 0}
    owner_conn.execute(
        "UPDATE cao.sync_jobs SET requested_at = requested_at - interval '61 minutes'"
        " WHERE state = 'queued'"
    )
    again = service.dispatch(app_conn, publisher, ["costs"])
    assert again.published == {"costs": 2}
    assert publisher.sent[-1].idempotency_key in {m.idempotency_key for m in publisher.sent[:2]}


def test_a_job_whose_message_was_not_published_is_dispatched_again_at_once(
    clean_db: TestDatabase, app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    linked = _linked(app_conn, agency)
    refusing = Recorder(refuse={job_id(app_conn, linked)})
    report = service.dispatch(app_conn, refusing, ["costs"])
    assert report.failed == 1 and job(app_conn, linked)["state"] == "idle"
    assert service.dispatch(app_conn, Recorder(), ["costs"]).published == {"costs": 1}


def test_two_dispatchers_at_once_claim_each_job_once(
    clean_db: TestDatabase, app_conn: psycopg.Connection[Any], database: TestDatabase
) -> None:
    agencies = [make_agency(app_conn) for _ in range(4)]
    for a in agencies:
        for _ in range(15):
            account_id = make_account(app_conn, a.id)
            with tenant_tx(app_conn, a.id):
                jobs.ensure_jobs(app_conn, a.id, account_id, ["costs"], due_at=START)
    publisher = Recorder()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def dispatcher() -> None:
        try:
            with database.app() as conn:
                barrier.wait()
                for _ in range(5):  # small batches, so the two really interleave
                    service.dispatch(conn, publisher, ["costs"], limit=7)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    ids = [m.job_id for m in publisher.sent]
    assert len(ids) == 60 and len(set(ids)) == 60


def test_enqueue_first_sync_publishes_the_new_accounts_jobs_now(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    account_id = make_account(app_conn, agency.id)
    publisher = Recorder()
    sent = service.enqueue_first_sync(
        app_conn, agency.id, account_id, publisher=publisher, now=START
    )
    assert sent == 1 and [m.kind for m in publisher.sent] == ["costs"]
    with tenant_tx(app_conn, agency.id):
        states = dict(
            app_conn.execute(
                "SELECT kind, state FROM cao.sync_jobs WHERE account_id = %s", (account_id,)
            ).fetchall()
        )
    assert states == {"costs": "queued", "cloudtrail": "idle"}  # not requested: left to dispatch


def test_enqueue_first_sync_never_fails_the_link(
    app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    class Down:
        def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
            raise ConnectionError("queue down")

    account_id = make_account(app_conn, agency.id)
    assert (
        service.enqueue_first_sync(app_conn, agency.id, account_id, publisher=Down(), now=START)
        == 0
    )
    with tenant_tx(app_conn, agency.id):
        (state,) = app_conn.execute(
            "SELECT state FROM cao.sync_jobs WHERE account_id = %s AND kind = 'costs'",
            (account_id,),
        ).fetchone() or (None,)
    assert state == "idle"  # due now: the next dispatcher run takes it


def test_a_job_kind_is_dispatched_and_run_by_the_consumer_through_its_registered_handler(
    clean_db: TestDatabase,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    from functions.jobs import registry, worker  # noqa: PLC0415

    ran: list[jobs.Lease] = []

    def trail(ctx: JobContext) -> None:
        conn, lease, clock = ctx.conn, ctx.lease, ctx.clock
        ran.append(lease)
        with tenant_tx(conn, lease.agency_id):
            jobs.fence(conn, lease)
            jobs.complete(conn, lease, clock() + timedelta(hours=1), now=clock())
            jobs.finish_run(conn, lease.agency_id, ctx.run_id, "succeeded", now=clock())

    # A kind of the vocabulary (shared.store.jobs.JOB_KINDS) and its handler in the registry.
    monkeypatch.setattr(service, "JOB_KINDS", ("costs", "cloudtrail"))
    monkeypatch.setitem(registry.HANDLERS, "cloudtrail", trail)
    linked = _linked(app_conn, agency)
    publisher = Recorder()
    report = service.dispatch(app_conn, publisher)
    assert report.published == {"costs": 1, "cloudtrail": 1}
    (message,) = [m for m in publisher.sent if m.kind == "cloudtrail"]
    deps = bootstrap.current().but(clock=lambda: START)
    assert worker.process(app_conn, message, 1, deps) is None
    assert [lease.kind for lease in ran] == ["cloudtrail"]
    assert job(app_conn, linked, "cloudtrail")["state"] == "idle"


def test_a_next_run_due_before_the_next_dispatch_is_published_now_with_its_delay(
    clean_db: TestDatabase, app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    # Issue 13: a follow-up asked for in 30 s used to wait for the next hourly dispatch.
    linked = _linked(app_conn, agency)
    soon, later = START + timedelta(seconds=30), START + timedelta(hours=3)
    with tenant_tx(app_conn, agency.id):
        app_conn.execute(
            "UPDATE cao.sync_jobs SET next_run_at = CASE kind WHEN 'costs' THEN %s ELSE %s END"
            " WHERE account_id = %s",
            (soon, later, linked.account_id),
        )
    publisher = Recorder()

    for kind in ("costs", "cloudtrail"):
        service.publish_follow_up(
            app_conn, agency.id, job_id(app_conn, linked, kind), publisher=publisher, now=START
        )

    [message] = publisher.sent  # the run in 3 hours is the dispatcher's
    assert (message.kind, message.period, message.delay_s) == ("costs", soon, 31)
    assert job(app_conn, linked)["state"] == "queued"
    assert job(app_conn, linked, "cloudtrail")["state"] == "idle"
    # The dispatcher leaves it to its message, unless that is lost for an hour after it fell
    # due (the dispatcher runs on the database's clock: the job is moved there).
    for minutes, published in ((59, 0), (61, 1)):
        with tenant_tx(app_conn, agency.id):
            app_conn.execute(
                "UPDATE cao.sync_jobs SET next_run_at = now() - make_interval(mins => %s),"
                " requested_at = now() - make_interval(mins => %s) WHERE id = %s",
                (minutes, minutes, message.job_id),
            )
        report = service.dispatch(app_conn, publisher, ["costs"])
        assert report.published == {"costs": published}


def test_a_follow_up_that_cannot_be_published_is_left_to_the_dispatcher_and_sync_now_wins(
    clean_db: TestDatabase, app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    linked = _linked(app_conn, agency)
    costs_job = job_id(app_conn, linked)
    soon = START + timedelta(seconds=30)
    with tenant_tx(app_conn, agency.id):
        app_conn.execute(
            "UPDATE cao.sync_jobs SET next_run_at = %s WHERE id = %s", (soon, costs_job)
        )
    refused = service.publish_follow_up(
        app_conn, agency.id, costs_job, publisher=Recorder(refuse={costs_job}), now=START
    )
    assert refused is False and job(app_conn, linked)["state"] == "idle"

    # Published, then the agency asks for a sync: it runs now, not at the follow-up's time.
    assert service.publish_follow_up(
        app_conn, agency.id, costs_job, publisher=Recorder(), now=START
    )
    with tenant_tx(app_conn, agency.id):
        due = jobs.request_now(app_conn, agency.id, linked.account_id, START, ["costs"])
    assert [d.job_id for d in due] == [costs_job]
    assert job(app_conn, linked)["next_run_at"] == START


def test_the_worker_publishes_a_runs_follow_up_and_a_delivery_ahead_of_it_waits(
    clean_db: TestDatabase,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    from functions.jobs import registry, worker  # noqa: PLC0415

    def partial_run(ctx: JobContext) -> None:  # stopped on its budget: again in 15 s
        conn, lease, clock = ctx.conn, ctx.lease, ctx.clock
        with tenant_tx(conn, lease.agency_id):
            jobs.fence(conn, lease)
            jobs.complete(conn, lease, clock() + timedelta(seconds=15), now=clock())
            jobs.finish_run(conn, lease.agency_id, ctx.run_id, "partial", now=clock())

    monkeypatch.setitem(registry.HANDLERS, "cloudtrail", partial_run)
    linked = _linked(app_conn, agency)
    publisher = Recorder()
    service.dispatch(app_conn, publisher, ["cloudtrail"])
    [first] = publisher.sent
    deps = bootstrap.current().but(clock=lambda: START, publisher_for=lambda _h: publisher)

    assert worker.process(app_conn, first, 1, deps) is None

    follow_up = publisher.sent[-1]
    assert follow_up.job_id == first.job_id and follow_up.delay_s == 16
    assert job(app_conn, linked, "cloudtrail")["state"] == "queued"
    # Delivered 5 s early (the queue's clock is not ours): redelivered when the job is due.
    early = bootstrap.current().but(clock=lambda: START + timedelta(seconds=10))
    assert worker.process(app_conn, follow_up, 1, early) == 5
