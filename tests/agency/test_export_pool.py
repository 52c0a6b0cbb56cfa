"""The export under a slow client (issue 15, item 10): served over real HTTP (uvicorn on
loopback, so the client's pace reaches the server), it holds no pooled connection while the
client reads, so another agency is served meanwhile by the instance's only connection."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from fastapi import FastAPI

from shared.bootstrap import Database, Deps
from tests.support import seed
from tests.support.deps import override
from tests.support.factories import AgencyFixture, make_account

EVENTS = 12_000  # ~5 MB of export: more than loopback buffers, so the server must wait for us


@pytest.fixture
def one_connection_server(deps: Deps, local_app: FastAPI) -> Iterator[str]:
    """Every function served by uvicorn with a pool of one connection."""
    database = Database(size=1, wait_s=3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(local_app, host="127.0.0.1", port=port, log_level="warning")
    )
    with override(database=database):
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the local server did not start"
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            database.close()


def test_a_slow_export_download_does_not_hold_the_only_connection(
    one_connection_server: str,
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
) -> None:
    account = make_account(app_conn, agency.id)
    with seed.tenant(app_conn, agency.id):
        app_conn.execute(
            "INSERT INTO cao.access_events (agency_id, account_id, aws_account_id, region,"
            " event_id, event_time, event_name, principal_arn) SELECT %s, %s, '123456789012',"
            " 'us-east-1', 'e' || g, now(), 'ListBuckets', repeat('p', 300)"
            " FROM generate_series(1, %s) g",
            (agency.id, account, EVENTS),
        )
    with (
        httpx.Client(base_url=one_connection_server, timeout=30) as http,
        http.stream("GET", "/api/agency/export", headers=agency.headers) as download,
    ):
        assert download.status_code == 200
        chunks = download.iter_bytes()
        body = [next(chunks)]
        time.sleep(0.3)  # the client stalls mid-download (the server's sends now block)

        # Meanwhile another agency is served by the instance's one connection, at once.
        started = time.monotonic()
        other = http.get("/api/agency", headers=other_agency.headers)
        assert other.status_code == 200, other.text
        assert time.monotonic() - started < 2

        body.extend(chunks)
    doc = json.loads(b"".join(body))
    assert len(doc["tables"]["access_events"]) == EVENTS
    assert len({e["event_id"] for e in doc["tables"]["access_events"]}) == EVENTS
