"""Retention: per-agency retention, the audit record, the cron endpoints.

The purge runs on the database's clock (a caller cannot hand the cross-tenant delete a "now"):
events are seeded at ages counted back from the real now.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from devstack.server import create_local_app
from functions.jobs.schemas import JobMessage
from functions.sync_cloudtrail import retention
from shared.db import tenant_tx
from shared.settings import Settings
from shared.store import jobs
from tests.support.database import TestDatabase
from tests.support.deps import with_publisher
from tests.support.factories import AgencyFixture, make_account, make_agency
from tests.sync_cloudtrail.test_store import event_row, insert

AGES_DAYS = (1, 6, 8, 29, 31, 100)


def with_retention(conn: psycopg.Connection[Any], agency: AgencyFixture, days: int) -> None:
    with tenant_tx(conn, agency.id):
        conn.execute(
            "UPDATE cao.agencies SET cloudtrail_retention_days = %s WHERE id = %s",
            (days, agency.id),
        )


def seed_ages(conn: psycopg.Connection[Any], agency: AgencyFixture) -> uuid.UUID:
    account = make_account(conn, agency.id)
    now = datetime.now(UTC)
    rows = [event_row(f"age-{d}", now - timedelta(days=d, minutes=1)) for d in AGES_DAYS]
    insert(conn, agency.id, account, rows)
    return account


def remaining(conn: psycopg.Connection[Any], agency: AgencyFixture) -> set[str]:
    with tenant_tx(conn, agency.id):
        return {r[0] for r in conn.execute("SELECT event_id FROM cao.access_events")}


def audit_rows(conn: psycopg.Connection[Any], agency: AgencyFixture) -> list[dict[str, Any]]:
    with tenant_tx(conn, agency.id):
        return [
            r[0]
            for r in conn.execute(
                "SELECT details FROM cao.audit_log WHERE action = %s ORDER BY id",
                (retention.ACTION,),
            )
        ]


@pytest.fixture
def two_agencies(
    clean_db: TestDatabase, app_conn: psycopg.Connection[Any]
) -> tuple[AgencyFixture, AgencyFixture]:
    month, week = make_agency(app_conn), make_agency(app_conn)
    with_retention(app_conn, month, 30)
    with_retention(app_conn, week, 7)
    seed_ages(app_conn, month)
    seed_ages(app_conn, week)
    return month, week


def test_events_past_each_agencys_retention_are_purged_and_younger_ones_kept(
    two_agencies: tuple[AgencyFixture, AgencyFixture], app_conn: psycopg.Connection[Any]
) -> None:
    month, week = two_agencies
    before = datetime.now(UTC)
    outcome = retention.purge(app_conn)

    assert remaining(app_conn, month) == {"age-1", "age-6", "age-8", "age-29"}
    assert remaining(app_conn, week) == {"age-1", "age-6"}
    assert outcome.deleted == {month.id: 2, week.id: 4} and not outcome.more
    # Each agency can see what was purged from its data, and when the cutoff was (the
    # database's now, less its retention): one record per transaction that deleted its rows
    # (a dropped month partition, a batch of rows).
    records = audit_rows(app_conn, month)
    assert sum(r["deleted"] for r in records) == 2
    for record in records:
        assert record["retention_days"] == 30
        cutoff = datetime.fromisoformat(record["older_than"])
        assert timedelta(0) <= cutoff - (before - timedelta(days=30)) < timedelta(minutes=1)
    assert sum(r["deleted"] for r in audit_rows(app_conn, week)) == 4
    assert outcome.partitions_dropped >= 1  # the month of the 100-day-old events

    written = len(audit_rows(app_conn, week))
    again = retention.purge(app_conn)
    assert again.total == 0 and len(audit_rows(app_conn, week)) == written


def test_a_purge_goes_in_batches_and_stops_on_its_time_budget(
    two_agencies: tuple[AgencyFixture, AgencyFixture], app_conn: psycopg.Connection[Any]
) -> None:
    month, week = two_agencies
    # The budget is checked after each step: the first (a month partition) is taken, then the
    # run stops.
    stopped = retention.purge(app_conn, batch=2, time_budget_s=0.0)
    assert stopped.more and stopped.partitions_dropped == 1 and stopped.batches == 0
    assert stopped.total >= 2  # at least the 100-day-old events of both

    finished = retention.purge(app_conn, batch=2)
    assert stopped.total + finished.total == 6 and not finished.more
    # Batches of 2 rows until one comes back short.
    by_rows = finished.total - finished.rows_in_partitions
    assert by_rows > 0 and finished.batches == by_rows // 2 + 1
    assert remaining(app_conn, week) == {"age-1", "age-6"}
    assert sum(r["deleted"] for r in audit_rows(app_conn, month) + audit_rows(app_conn, week)) == 6


# ---- the cron endpoints -------------------------------------------------------------------


@pytest.fixture
def http(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_local_app()) as client:
        yield client


def bearer(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.cron_secret.reveal()}"}


@pytest.mark.parametrize("path", ["/api/cron/purge", "/api/cron/dispatch"])
def test_the_cron_endpoints_refuse_without_the_bearer_and_do_nothing(
    path: str,
    http: TestClient,
    settings: Settings,
    two_agencies: tuple[AgencyFixture, AgencyFixture],
    app_conn: psycopg.Connection[Any],
) -> None:
    secret = settings.cron_secret.reveal()
    for headers, params in (
        ({}, {}),
        ({"Authorization": "Bearer wrong"}, {}),
        ({"Authorization": f"Bearer {secret[:-1]}"}, {}),
        ({}, {"secret": secret}),
    ):
        answer = http.get(path, headers=headers, params=params)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
    month, _ = two_agencies
    assert len(remaining(app_conn, month)) == len(AGES_DAYS)


def test_the_daily_purge_cron_purges(
    http: TestClient,
    settings: Settings,
    two_agencies: tuple[AgencyFixture, AgencyFixture],
    app_conn: psycopg.Connection[Any],
) -> None:
    answer = http.get("/api/cron/purge", headers=bearer(settings))
    assert answer.status_code == 200
    body = answer.json()
    assert body["agencies"] == 2 and body["more"] is False
    assert body["deleted"] == 6


class Recorder:
    def __init__(self) -> None:
        self.sent: list[JobMessage] = []

    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        self.sent.extend(messages)
        return []


def test_the_hourly_dispatch_publishes_each_due_job_once(
    http: TestClient,
    settings: Settings,
    clean_db: TestDatabase,
    app_conn: psycopg.Connection[Any],
) -> None:
    agency = make_agency(app_conn)
    account = make_account(app_conn, agency.id)
    with tenant_tx(app_conn, agency.id):
        jobs.ensure_jobs(app_conn, agency.id, account, ["costs", "cloudtrail"])
    recorder = Recorder()
    with with_publisher(recorder):
        answer = http.get("/api/cron/dispatch", headers=bearer(settings))
        again = http.get("/api/cron/dispatch", headers=bearer(settings))
    assert answer.status_code == 200
    assert answer.json() == {"published": {"costs": 1, "cloudtrail": 1}, "failed": 0}
    assert again.json()["published"] == {"costs": 0, "cloudtrail": 0}  # queued: not twice
    assert sorted((m.kind, m.agency_id) for m in recorder.sent) == [
        ("cloudtrail", agency.id),
        ("costs", agency.id),
    ]
