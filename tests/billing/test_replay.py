"""The demo's replay tool posts a signed sample delivery that changes an agency's billing state."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import uvicorn

from api import webhooks
from devstack import polar_replay
from shared.settings import Settings
from shared.web import create_app
from tests.billing.conftest import PRODUCT_PRO, billing_row
from tests.support.factories import AgencyFixture


@pytest.fixture
def local_server(settings: Settings) -> Iterator[str]:
    """The webhook function served over real HTTP on loopback, as the demo serves it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(*webhooks.routers), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the local server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/api/webhooks/polar"
    server.should_exit = True
    thread.join(timeout=10)


def test_the_replay_tool_makes_a_demo_agency_active(
    local_server: str,
    settings: Settings,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = settings.secret("POLAR_WEBHOOK_SECRET").reveal()
    code = polar_replay.main(
        [
            "--agency",
            str(agency.id),
            "--url",
            local_server,
            "--secret",
            secret,
            "--product",
            PRODUCT_PRO,
        ]
    )
    assert code == 0, capsys.readouterr()
    assert "applied" in capsys.readouterr().out
    row = billing_row(app_conn, agency.id)
    assert (row["billing_status"], row["plan"]) == ("active", "pro")


def test_the_replay_tool_reports_a_wrong_secret(
    local_server: str, agency: AgencyFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    code = polar_replay.main(["--agency", str(agency.id), "--url", local_server, "--secret", "x"])
    assert code == 1
    assert "401" in capsys.readouterr().out
