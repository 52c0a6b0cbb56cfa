"""shared.db: connection failures are retried, then reported without their detail."""

from __future__ import annotations

import socket
from typing import Any

import psycopg
import pytest

from shared import db
from shared.errors import DatabaseUnavailableError
from shared.settings import Secret


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_database_is_retried_then_reported_without_its_url() -> None:
    sleeps: list[float] = []
    url = f"postgresql://someone:hunter2@127.0.0.1:{_closed_port()}/x"
    with pytest.raises(DatabaseUnavailableError) as err:
        db.connect(Secret(url), attempts=3, sleep=sleeps.append)
    assert len(sleeps) == 2
    assert all(0 <= s <= 0.4 for s in sleeps)
    text = f"{err.value} {err.value.__cause__!r}"
    assert "hunter2" not in text and "someone" not in text


def test_connections_are_autocommit_without_prepared_statements(database: Any) -> None:
    with db.connect(Secret(database.app_url)) as conn:
        assert conn.autocommit
        assert conn.prepare_threshold is None


def test_tenant_tx_sets_the_agency_for_that_transaction_only(
    app_conn: psycopg.Connection[Any], agency: Any
) -> None:
    with db.tenant_tx(app_conn, agency.id):
        row = app_conn.execute("SELECT cao.current_agency()").fetchone()
        assert row == (agency.id,)
    assert app_conn.execute("SELECT cao.current_agency()").fetchone() == (None,)
