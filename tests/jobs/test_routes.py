"""The job system's HTTP surface (functions/jobs/routes.py): the cron dispatcher (bearer
only), "sync now" (own accounts only, rate-limited), and the deployment config that routes and
triggers them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api import sync_worker
from devstack.server import create_local_app
from functions.jobs import service, worker
from functions.jobs.schemas import JobMessage
from shared import queue
from shared.db import tenant_tx
from shared.settings import Settings
from tests.support.database import TestDatabase
from tests.support.deps import with_publisher, with_settings
from tests.support.factories import AgencyFixture
from tests.support.jobs import job, link
from tests.test_vercel import resolve, served_by  # Vercel's routing, as the lead's test reads it

ROOT = Path(__file__).resolve().parents[2]
VERCEL = json.loads((ROOT / "vercel.json").read_text())
CRON = json.loads((ROOT / "cron.json").read_text())
SECRET = "cron-secret-for-tests-0123456789"


class Recorder:
    def __init__(self) -> None:
        self.sent: list[JobMessage] = []

    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        self.sent.extend(messages)
        return []


@pytest.fixture
def published(settings: Settings) -> Iterator[Recorder]:
    recorder = Recorder()
    with with_publisher(recorder):
        yield recorder


@pytest.fixture
def http(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_local_app(), raise_server_exceptions=False) as client:
        yield client


# ---- cron -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, ""),
        ({"Authorization": "Bearer wrong-secret-wrong-secret-0000"}, ""),
        ({"Authorization": f"Bearer {SECRET[:-1]}"}, ""),  # a prefix
        ({"Authorization": f"Bearer {SECRET}x"}, ""),  # an extension
        ({"Authorization": SECRET}, ""),  # no scheme
        ({"Authorization": f"Basic {SECRET}"}, ""),
        ({}, f"?secret={SECRET}"),  # in the query string
        ({}, f"?authorization=Bearer%20{SECRET}"),
    ],
    ids=["missing", "wrong", "prefix", "extension", "bare", "basic", "query", "query-bearer"],
)
def test_the_dispatcher_refuses_without_the_exact_bearer_and_does_no_work(
    clean_db: TestDatabase,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    published: Recorder,
    http: TestClient,
    headers: dict[str, str],
    query: str,
) -> None:
    linked = link(None, app_conn, agency)
    answer = http.get(f"/api/cron/dispatch{query}", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
    assert published.sent == [] and job(app_conn, linked)["state"] == "idle"


def test_the_dispatcher_refuses_to_run_without_a_configured_secret(
    env: dict[str, str], app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    env.pop("CRON_SECRET")
    with with_settings(env):
        linked = link(None, app_conn, agency)
        with TestClient(create_local_app(), raise_server_exceptions=False) as client:
            answer = client.get("/api/cron/dispatch", headers={"Authorization": f"Bearer {SECRET}"})
        assert answer.status_code == 503 and "CRON_SECRET" in answer.json()["error"]["message"]
        assert job(app_conn, linked)["state"] == "idle"


def test_the_dispatcher_with_the_bearer_publishes_the_due_jobs(
    clean_db: TestDatabase,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    published: Recorder,
    http: TestClient,
) -> None:
    linked = link(None, app_conn, agency)
    answer = http.get("/api/cron/dispatch", headers={"Authorization": f"Bearer {SECRET}"})
    assert answer.status_code == 200
    assert answer.json() == {"published": {"costs": 1}, "failed": 0}
    assert [m.job_id for m in published.sent] == [job(app_conn, linked)["id"]]
    bad = http.get("/api/cron/dispatch?kind=mining", headers={"Authorization": f"Bearer {SECRET}"})
    assert bad.status_code == 400 and "kind" in bad.json()["error"]["message"]


# ---- sync now ---------------------------------------------------------------------------------


def test_sync_now_queues_the_accounts_jobs_once(
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    published: Recorder,
    http: TestClient,
) -> None:
    linked = link(None, app_conn, agency)
    path = f"/api/accounts/{linked.account_id}/sync"
    first = http.post(path, headers=agency.headers)
    assert first.status_code == 202 and first.json() == {"queued": ["costs"], "in_progress": []}
    assert [m.job_id for m in published.sent] == [job(app_conn, linked)["id"]]
    again = http.post(path, headers=agency.headers)
    assert again.status_code == 202 and again.json() == {"queued": [], "in_progress": ["costs"]}
    assert len(published.sent) == 1


def test_sync_now_of_another_agencys_account_is_not_found_and_changes_nothing(
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    published: Recorder,
    http: TestClient,
) -> None:
    theirs = link(None, app_conn, other_agency)
    for account_id in (theirs.account_id, uuid.uuid4()):
        answer = http.post(f"/api/accounts/{account_id}/sync", headers=agency.headers)
        assert answer.status_code == 404
    assert published.sent == [] and job(app_conn, theirs)["state"] == "idle"
    assert http.post(f"/api/accounts/{theirs.account_id}/sync").status_code == 401


def test_sync_now_is_rate_limited_per_account_with_retry_after(
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    published: Recorder,
    http: TestClient,
) -> None:
    linked = link(None, app_conn, agency)
    path = f"/api/accounts/{linked.account_id}/sync"
    codes = [
        http.post(path, headers=agency.headers).status_code for _ in range(service.SYNC_NOW_LIMIT)
    ]
    assert codes == [202] * service.SYNC_NOW_LIMIT
    refused = http.post(path, headers=agency.headers)
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= service.SYNC_NOW_WINDOW_S
    other = link(None, app_conn, agency)  # the limit is per account
    assert (
        http.post(f"/api/accounts/{other.account_id}/sync", headers=agency.headers).status_code
        == 202
    )


def test_sync_now_refuses_paused_accounts_and_agencies_without_entitlement(
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    published: Recorder,
    http: TestClient,
) -> None:
    paused = link(None, app_conn, agency)
    with tenant_tx(app_conn, agency.id):
        app_conn.execute(
            "UPDATE cao.accounts SET status = 'paused' WHERE id = %s", (paused.account_id,)
        )
    answer = http.post(f"/api/accounts/{paused.account_id}/sync", headers=agency.headers)
    assert answer.status_code == 409 and "verify" in answer.json()["error"]["message"]

    revoked = link(None, app_conn, other_agency)
    owner_conn.execute(  # as a revocation webhook leaves it (the app role may not write it)
        "UPDATE cao.agencies SET billing_status = 'revoked' WHERE id = %s", (other_agency.id,)
    )
    answer = http.post(f"/api/accounts/{revoked.account_id}/sync", headers=other_agency.headers)
    assert answer.status_code == 402
    assert published.sent == []


# ---- deployment config ------------------------------------------------------------------------


def test_the_dispatcher_runs_hourly_for_hourly_cloudtrail_and_daily_cost_jobs() -> None:
    # Each job carries its own next run (costs: daily at 02:00 UTC); one hourly dispatch serves
    # both kinds. Routing of every cron path is checked in tests/test_vercel.py.
    assert {"path": "/api/cron/dispatch", "schedule": "5 * * * *"} in VERCEL["crons"]
    assert resolve("/api/cron/dispatch") == "cron"
    assert resolve(f"/api/accounts/{uuid.uuid4()}/sync") == "accounts"


def test_the_worker_is_the_topics_push_consumer_with_the_consumers_retry_settings() -> None:
    function = VERCEL["functions"]["api/sync_worker.py"]
    (trigger,) = function["experimentalTriggers"]
    assert trigger == {
        "type": "queue/v2beta",
        "topic": queue.TOPIC,
        "retryAfterSeconds": worker.RETRY_AFTER_S,
        "maxDeliveries": worker.MAX_DELIVERIES,
    }
    # A live worker outlives its short job lease by renewing it (functions/jobs/heartbeat.py)
    # several times per lease; a dead one's job is taken over within about a minute.
    assert worker.HEARTBEAT_S * 3 <= worker.LEASE_SECONDS <= 60 < function["maxDuration"]
    assert served_by(sync_worker.app, "POST", "/api/sync_worker")


def test_every_function_has_its_own_settings_and_ships_without_tests_or_benchmarks() -> None:
    files = {f"api/{p.name}" for p in (ROOT / "api").glob("*.py") if not p.name.startswith("_")}
    assert set(VERCEL["functions"]) == files  # one entry per file: no overlapping globs
    for name, config in VERCEL["functions"].items():
        excluded = config.get("excludeFiles", "")
        assert all(d in excluded for d in ("tests/**", "bench/**", "devstack/**")), name
        assert 0 < config["maxDuration"] <= 300, name
