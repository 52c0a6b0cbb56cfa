"""Sentry: unexpected errors are reported once, scrubbed, without request data or locals."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import httpx
import psycopg
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from shared import observability
from shared.settings import Settings
from shared.web import CallerDep, create_app
from tests.support.factories import AgencyFixture
from tests.support.sentry import CapturingTransport

CANARY_KEY = "AKIACANARY0000000001"
CANARY_SECRET = "canaryS3cretKeyAbcdefghijklmnopqrstuvwxy"
CANARY_DB = "postgresql://cao_app:canary-db-password@db.internal/neondb"

router = APIRouter()


@router.get("/api/explode")
def explode(q: str = "") -> None:
    aws_secret_access_key = CANARY_SECRET  # a local variable Sentry must not collect
    raise RuntimeError(f"failed with {CANARY_KEY} {aws_secret_access_key} {CANARY_DB}")


@router.get("/api/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}


@router.get("/api/whoami")
def whoami(caller: CallerDep) -> dict[str, str]:
    return {"agency": str(caller.agency_id)}


@pytest.fixture
def transport() -> Iterator[CapturingTransport]:
    t = CapturingTransport()
    observability.stop()
    observability.start(
        Settings({"VERCEL_GIT_COMMIT_SHA": "abc123", "VERCEL_ENV": "test"}), transport=t
    )
    yield t
    observability.stop()


def test_reporting_is_off_without_a_dsn() -> None:
    observability.stop()
    assert observability.start(Settings({})) is False


def test_an_unexpected_error_reaches_sentry_scrubbed(transport: CapturingTransport) -> None:
    client = TestClient(create_app(router), raise_server_exceptions=False)
    r = client.get(
        "/api/explode?q=private-query-value",
        headers={"Authorization": "Bearer cao_" + "x" * 43, "Cookie": "session=secret-cookie"},
    )
    assert r.status_code == 500
    assert len(transport.events) == 1
    event = transport.events[0]
    assert event["release"] == "abc123"
    text = transport.text
    for canary in (
        CANARY_KEY,
        CANARY_SECRET,
        "canary-db-password",
        "private-query-value",
        "secret-cookie",
        "cao_xxxx",
    ):
        assert canary not in text, canary
    # The exception type is kept so the bug can be found; its frames carry no local variables.
    assert "RuntimeError" in text
    frames = event["exception"]["values"][0]["stacktrace"]["frames"]
    assert all("vars" not in frame for frame in frames)
    assert "breadcrumbs" not in event or not event["breadcrumbs"].get("values")


def test_expected_client_errors_are_not_reported(transport: CapturingTransport) -> None:
    client = TestClient(create_app(router), raise_server_exceptions=False)
    assert client.get("/api/nowhere").status_code == 404
    assert transport.events == []


@router.get("/api/db-bug")
def database_bug() -> None:
    raise psycopg.errors.UniqueViolation(
        'duplicate key value violates unique constraint "x"\nDETAIL: Key (value)=(canary-row-value)'
    )


def test_a_database_error_is_reported_by_class_and_sqlstate_without_its_text(
    transport: CapturingTransport,
) -> None:
    client = TestClient(create_app(router), raise_server_exceptions=False)
    r = client.get("/api/db-bug")
    assert r.status_code == 500 and "canary-row-value" not in r.text
    assert len(transport.events) == 1
    assert "canary-row-value" not in transport.text
    assert "UniqueViolation" in transport.text


def test_the_request_log_line_carries_the_request_id_and_the_agency(
    settings: Settings, agency: AgencyFixture, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(create_app(router), raise_server_exceptions=False)
    with caplog.at_level(logging.INFO, logger="cloudagencyops"):
        r = client.get("/api/whoami", headers=agency.headers)
    assert r.status_code == 200
    lines = [rec for rec in caplog.records if rec.getMessage() == "request"]
    assert lines and lines[-1].agency_id == str(agency.id)  # type: ignore[attr-defined]
    assert lines[-1].request_id == r.headers["x-request-id"]  # type: ignore[attr-defined]


class SlowTransport(CapturingTransport):
    """A Sentry whose flush waits on a slow network: here, until the test releases it."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.flushing = threading.Event()
        self.release = threading.Event()
        self.released = False  # the flush ended because the test let it go, not by timing out
        self.order: list[str] = []

    def flush(self, timeout: float, callback: Any = None) -> None:
        if not self.items:
            return
        self.order.append("flush")
        self.flushing.set()
        self.released = self.release.wait(timeout=3)


@pytest.fixture
def slow() -> Iterator[SlowTransport]:
    t = SlowTransport()
    observability.stop()
    observability.start(Settings({}), transport=t)
    yield t
    t.release.set()
    observability.stop()


def test_a_slow_sentry_flush_does_not_hold_up_other_requests(slow: SlowTransport) -> None:
    app = create_app(router)
    results: dict[str, int] = {}

    async def main() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
            anyio.create_task_group() as group,
        ):

            async def explode() -> None:
                results["explode"] = (await client.get("/api/explode")).status_code

            group.start_soon(explode)
            assert await anyio.to_thread.run_sync(slow.flushing.wait, 3)
            # The error's flush is hanging on the network; another request comes in.
            results["ping"] = (await client.get("/api/ping")).status_code
            slow.release.set()

    anyio.run(main)
    assert results == {"explode": 500, "ping": 200}
    assert slow.released, "the other request waited for the flush"
    assert len(slow.events) == 1


def test_an_error_is_flushed_after_its_response_is_sent(slow: SlowTransport) -> None:
    slow.release.set()
    app = create_app(router)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/explode",
        "raw_path": b"/api/explode",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1234),
        "server": ("test", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            slow.order.append(f"response {message['status']}")

    async def main() -> None:
        with contextlib.suppress(RuntimeError):  # a server may see the error re-raised
            await app(scope, receive, send)

    anyio.run(main)
    assert slow.order == ["response 500", "flush"]
