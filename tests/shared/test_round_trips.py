"""Round trips of a request on a pooled connection (issue 21): a read authenticates in the
transaction of its query (begin, authenticate and set the tenant, the query, commit), whether
by API key or browser session; a change authenticates in a transaction of its own; a read that
fails after authenticating leaves nothing open. Counted from libpq's protocol trace of the
instance's one connection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg import pq

from shared import auth
from shared.bootstrap import Database, Deps
from tests.support import seed
from tests.support.deps import override
from tests.support.factories import AgencyFixture


@pytest.fixture
def one_connection(deps: Deps) -> Iterator[Deps]:
    """The app on a pool of a single connection, so every request uses the traced one."""
    database = Database(size=1, wait_s=2)
    try:
        with override(database=database) as installed:
            yield installed
    finally:
        database.close()


class Trace:
    """The frontend messages libpq sends on the instance's connection while traced."""

    def __init__(self, deps: Deps, path: Path) -> None:
        self.deps, self.path = deps, path

    def __enter__(self) -> Trace:
        self.file = self.path.open("w")
        with self.deps.connection() as conn:
            conn.pgconn.trace(self.file.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        return self

    def __exit__(self, *exc: object) -> None:
        with self.deps.connection() as conn:
            conn.pgconn.untrace()
        self.file.close()

    def sent(self) -> list[str]:
        lines = [line.split("\t") for line in self.path.read_text().splitlines()]
        return [
            f"{fields[2]} {fields[3] if len(fields) > 3 else ''}".strip()
            for fields in lines
            if fields[0] == "F"
        ]

    def round_trips(self) -> list[str]:
        """One per simple query or extended-protocol Sync, named by its SQL."""
        trips: list[str] = []
        statement = ""
        for message in self.sent():
            kind, _, rest = message.partition(" ")
            rest = rest.strip()
            if kind == "Parse":
                statement = rest
            elif kind == "Query":
                trips.append(rest)
            elif kind == "Sync":
                trips.append(statement)
        return trips


def _session_headers(app_conn: psycopg.Connection[Any], agency_id: uuid.UUID) -> dict[str, str]:
    token = seed.add_people(app_conn, agency_id, "RoundTrips")["session_token"]
    return {"Cookie": f"{auth.SESSION_COOKIE}={token}"}


@pytest.mark.parametrize("how", ["key", "session"])
def test_a_read_is_one_transaction_of_four_round_trips(
    one_connection: Deps,
    local_app: FastAPI,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    tmp_path: Path,
    how: str,
) -> None:
    headers = agency.headers if how == "key" else _session_headers(app_conn, agency.id)
    with TestClient(local_app) as client:
        assert client.get("/api/access/events", headers=headers).status_code == 200  # connected
        with Trace(one_connection, tmp_path / "trace") as trace:
            r = client.get("/api/access/events", headers=headers)
        assert r.status_code == 200
    trips = trace.round_trips()
    assert len(trips) == 4, trips
    assert trips[0] == '"BEGIN"'
    authenticate = "authenticate_key" if how == "key" else "authenticate_session"
    assert authenticate in trips[1] and "set_config('app.agency_id'" in trips[1]
    assert "cao.access_events" in trips[2]
    assert trips[3] == '"COMMIT"'


def test_a_read_that_fails_after_authenticating_rolls_back_and_the_connection_serves_on(
    one_connection: Deps,
    local_app: FastAPI,
    agency: AgencyFixture,
    tmp_path: Path,
) -> None:
    missing = uuid.uuid4()
    with TestClient(local_app) as client:
        with Trace(one_connection, tmp_path / "trace") as trace:
            r = client.get(f"/api/runbooks/{missing}", headers=agency.headers)
        assert r.status_code == 404
        trips = trace.round_trips()
        assert trips[0] == '"BEGIN"' and trips[-1] in {'"COMMIT"', '"ROLLBACK"'}
        assert trips.count('"BEGIN"') == 1
        # Nothing was left open: the connection is idle, and the next read is served.
        with one_connection.connection() as conn:
            assert conn.info.transaction_status == pq.TransactionStatus.IDLE
        assert client.get("/api/runbooks", headers=agency.headers).status_code == 200


def test_a_change_authenticates_in_a_transaction_of_its_own(
    one_connection: Deps,
    local_app: FastAPI,
    agency: AgencyFixture,
    tmp_path: Path,
) -> None:
    body = {"title": "Round trips", "body": "kept apart"}
    with TestClient(local_app) as client:
        with Trace(one_connection, tmp_path / "trace") as trace:
            r = client.post("/api/runbooks", headers=agency.headers, json=body)
        assert r.status_code == 201, r.text
    trips = trace.round_trips()
    first_commit = trips.index('"COMMIT"')
    assert any("authenticate_key" in t for t in trips[:first_commit])
    assert not any("app.agency_id" in t for t in trips[:first_commit])
    assert trips.count('"BEGIN"') == 2
