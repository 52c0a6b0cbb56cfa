"""Sentry: unexpected errors are reported once, scrubbed, without request data or locals."""

from __future__ import annotations

import logging
from collections.abc import Iterator

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
