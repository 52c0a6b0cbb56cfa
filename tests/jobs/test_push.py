"""Push deliveries at the worker's HTTP entry (POST /api/sync_worker, the path Vercel pushes to):
only real deliveries, confirmed with the queue service, run a job; a forged one is 401 and a
malformed one 400, and neither changes anything or reaches Sentry; a failure reaches Sentry only
at the last allowed delivery.

The queue service is the SDK's embedded one (its ASGI app, without its dispatcher: deliveries
are taken from it here, with the headers and receipt handles it leases, and POSTed to the real
app). Sentry gets the collecting transport the canary test uses."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from vercel.queue import sanitize_name
from vercel.queue._internal.embedded import (
    EmbeddedQueueAsgiApp,
    PushDelivery,
    StoredMessage,
    create_embedded_queue_app,
)

from api import sync_worker
from devstack.simaws import SimulatedAws
from functions.jobs import registry, worker
from functions.jobs.schemas import JobContext, JobMessage
from shared import observability, queue
from shared.settings import Settings
from tests.support.deps import override
from tests.support.factories import AgencyFixture
from tests.support.jobs import Linked, job, link, message, put_year, runs
from tests.support.sentry import CapturingTransport
from tests.test_vercel import served_by

pytestmark = pytest.mark.usefixtures("aws_settings")

GROUP = str(sanitize_name(queue.CONSUMER_GROUP))


@pytest.fixture
def service(aws_settings: Settings) -> Iterator[EmbeddedQueueAsgiApp]:
    """The queue service, as the worker's composition root sees it."""
    app = create_embedded_queue_app(manual_clock=True)
    with override(queue_client=app.get_async_client):
        yield app


@pytest.fixture
def sentry() -> Iterator[CapturingTransport]:
    transport = CapturingTransport()
    observability.stop()
    observability.start(Settings({}), transport=transport)
    yield transport
    observability.stop()


@pytest.fixture
def http() -> Iterator[TestClient]:
    with TestClient(sync_worker.app, raise_server_exceptions=False) as client:
        yield client


def publish(service: EmbeddedQueueAsgiApp, msg: JobMessage) -> StoredMessage:
    body = json.dumps(msg.payload()).encode()
    return service.server.put(queue.TOPIC, body, {"Content-Type": "application/json"})


def lease(service: EmbeddedQueueAsgiApp) -> PushDelivery:
    """The next push delivery the service makes to our consumer group: body, ce-* headers."""
    delivery = service.server.push_delivery(queue.TOPIC, GROUP)
    assert delivery is not None
    return delivery


def post(http: TestClient, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
    return http.post("/api/sync_worker", content=body, headers=dict(headers))


def forged_headers(message_id: str = "msg_1", **changes: str | None) -> dict[str, str]:
    """Headers shaped exactly like a delivery's, with a receipt handle nobody was given."""
    headers: dict[str, str | None] = {
        "ce-type": "com.vercel.queue.v2beta",
        "ce-vqsqueuename": queue.TOPIC,
        "ce-vqsconsumergroup": GROUP,
        "ce-vqsmessageid": message_id,
        "ce-vqsreceipthandle": f"rh_1:{message_id}:{GROUP} /needs encoding",
        "ce-vqsdeliverycount": "1",
        "ce-vqscreatedat": "2026-01-01T00:00:00.000Z",
        "ce-vqsregion": "iad1",
        "content-type": "application/json",
        **changes,
    }
    return {k: v for k, v in headers.items() if v is not None}


def body_of(conn: psycopg.Connection[Any], linked: Linked) -> bytes:
    return json.dumps(message(conn, linked).payload()).encode()


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def test_the_worker_serves_only_post_at_the_path_the_platform_pushes_to() -> None:
    # Vercel invokes the function that declares the trigger (api/sync_worker.py) at its own path.
    assert served_by(sync_worker.app, "POST", "/api/sync_worker")
    for method, path in [
        ("GET", "/api/sync_worker"),
        ("PUT", "/api/sync_worker"),
        ("POST", "/api/sync_worker/extra"),
        ("POST", "/"),
        ("POST", "/api/sync"),
    ]:
        assert not served_by(sync_worker.app, method, path), (method, path)


def test_a_real_delivery_confirmed_by_the_queue_service_runs_the_job(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    service: EmbeddedQueueAsgiApp,
    http: TestClient,
    sentry: CapturingTransport,
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "4.2"}, current=this_month())
    stored = publish(service, message(app_conn, linked))

    delivery = lease(service)
    r = post(http, delivery.body, delivery.headers)

    assert r.status_code == 204, r.text
    assert [run["status"] for run in runs(app_conn, linked)] == ["succeeded"]
    assert stored.acknowledged_for(GROUP)
    assert sentry.events == []


@pytest.mark.parametrize("published", [False, True], ids=["unknown-message", "never-leased"])
def test_a_forged_delivery_is_refused_changes_no_row_and_reports_nothing(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    service: EmbeddedQueueAsgiApp,
    http: TestClient,
    sentry: CapturingTransport,
    published: bool,
) -> None:
    linked = link(sim, app_conn, agency)
    before = job(app_conn, linked)
    body = body_of(app_conn, linked)
    # A job that is due, named inline; the message even exists in the queue (not leased).
    message_id = publish(service, message(app_conn, linked)).message_id if published else "msg_9"

    r = post(http, body, forged_headers(message_id))

    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unknown_delivery"
    assert runs(app_conn, linked) == []
    assert job(app_conn, linked) == before
    assert sentry.events == []


def test_a_replayed_delivery_is_refused_after_the_real_one_was_settled(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    service: EmbeddedQueueAsgiApp,
    http: TestClient,
    sentry: CapturingTransport,
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "4.2"}, current=this_month())
    publish(service, message(app_conn, linked))
    delivery = lease(service)
    assert post(http, delivery.body, delivery.headers).status_code == 204
    after_first = job(app_conn, linked)

    r = post(http, delivery.body, delivery.headers)

    assert r.status_code == 401, r.text
    assert len(runs(app_conn, linked)) == 1
    assert job(app_conn, linked) == after_first
    assert sentry.events == []


GARBAGE: dict[str, tuple[bytes | None, dict[str, str]]] = {
    "no-headers": (b"", {}),
    "not-json": (b"{not json", forged_headers()),
    "not-utf8": (b"\xff\xfe", forged_headers()),
    "wrong-shape": (b'{"job_id": "x"}', forged_headers()),
    "json-list": (b"[]", forged_headers()),
    "no-receipt-handle": (None, forged_headers(**{"ce-vqsreceipthandle": None})),
    "no-message-id": (None, forged_headers(**{"ce-vqsmessageid": None})),
    "wrong-event-type": (None, forged_headers(**{"ce-type": "com.example.event"})),
    "another-topic": (None, forged_headers(**{"ce-vqsqueuename": "other-topic"})),
    "another-consumer": (None, forged_headers(**{"ce-vqsconsumergroup": "api_Sother_Dpy"})),
    "not-json-content": (None, forged_headers(**{"content-type": "application/octet-stream"})),
    "bad-created-at": (None, forged_headers(**{"ce-vqscreatedat": "yesterday"})),
    "bad-region": (None, forged_headers(**{"ce-vqsregion": "../evil"})),
}


@pytest.mark.parametrize("case", list(GARBAGE))
def test_a_malformed_delivery_is_400_changes_nothing_and_reports_nothing(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    service: EmbeddedQueueAsgiApp,
    http: TestClient,
    sentry: CapturingTransport,
    case: str,
) -> None:
    linked = link(sim, app_conn, agency)
    before = job(app_conn, linked)
    stored = publish(service, message(app_conn, linked))
    body, headers = GARBAGE[case]
    if body is None:  # a real job's payload, under headers that are wrong
        body = body_of(app_conn, linked)

    r = post(http, body, headers)

    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_delivery"
    assert runs(app_conn, linked) == []
    assert job(app_conn, linked) == before
    assert not stored.acknowledged_for(GROUP) and GROUP not in stored.leases_by_consumer
    assert sentry.events == []


def test_failures_reach_sentry_only_at_the_last_delivery(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    service: EmbeddedQueueAsgiApp,
    http: TestClient,
    sentry: CapturingTransport,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(ctx: JobContext) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(registry.HANDLERS, "costs", broken)
    linked = link(sim, app_conn, agency)
    stored = publish(service, message(app_conn, linked))

    for delivery_count in range(1, worker.MAX_DELIVERIES):
        delivery = lease(service)
        assert delivery.headers["ce-vqsdeliverycount"] == str(delivery_count)
        r = post(http, delivery.body, delivery.headers)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "delivery_failed"
        assert sentry.events == [], f"delivery {delivery_count} reached Sentry"
        service.server.shift(queue.PUSH_LEASE_S + 1)  # the unacknowledged lease runs out

    delivery = lease(service)
    assert delivery.headers["ce-vqsdeliverycount"] == str(worker.MAX_DELIVERIES)
    r = post(http, delivery.body, delivery.headers)

    assert r.status_code == 204, r.text  # settled: the job ends failed, the message is acked
    assert stored.acknowledged_for(GROUP)
    assert len(sentry.events) == 1
    assert "RuntimeError" in sentry.text
    assert job(app_conn, linked)["state"] == "failed"
    assert [run["status"] for run in runs(app_conn, linked)] == ["failed"] * worker.MAX_DELIVERIES
