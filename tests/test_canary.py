"""The canary test: after a full flow, no secret is anywhere it must not be.

One end-to-end flow through the real app, the real queue consumer, the real Postgres and the
simulated AWS: sign-up, linking, cost sync, CloudTrail sync over events whose payloads hold
planted secrets, a Polar webhook, a failing sync, an error in a request handler, a validation
error on a body holding a canary, cron calls with right and wrong secrets. The secrets are
canaries we plant (cron, webhook, Polar token, planted CloudTrail payload values) and the real
ones the flow uses (the STS credentials the simulator issued, our cao-service key, the API key,
the ExternalId). Afterwards we scan every text column of every table (the ExternalId's own
column excepted), every SQL parameter sent, every log record and every Sentry event.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from moto.sts.models import sts_backends
from psycopg import sql

from devstack import trailgen
from devstack.polar_replay import encode, sample_event, signed_headers
from devstack.server import all_routers
from devstack.simaws import OUR_ACCOUNT_ID, SimulatedAws
from functions.jobs import worker
from functions.onboard import templates
from shared import logs, observability
from shared.queue import LocalQueue
from shared.settings import Settings
from shared.web import create_app
from tests.people.conftest import ORIGIN, Browser
from tests.support.database import TestDatabase
from tests.support.deps import with_publisher, with_settings
from tests.support.sentry import CapturingTransport

CLIENT = "555566667777"
CANARY_CRON = "canary-cron-secret-5b1f0c2e9d7a4a36"
CANARY_WEBHOOK = "canary-webhook-secret-8c3d1e"
CANARY_POLAR = "polar_oat_canaryPolarToken0123456789"
CANARY_PLANTED = "CANARYPLANTED-requestParameters-9e8d7c"
CANARY_BODY = "canary-body-value-4471"

AWS_SECRET = re.compile(
    r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[a-z])"
    r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
SESSION_TOKEN = re.compile(r"[A-Za-z0-9/+=]{100,}")
ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")

bug_router = APIRouter()


@bug_router.get("/api/test-bug")
def a_buggy_handler(request: Request) -> None:
    """A bug that puts secrets in an exception message: configured secrets and the caller's key
    or session cookie."""
    leaked = request.headers.get("authorization", "") + " " + request.headers.get("cookie", "")
    raise RuntimeError(f"bug: {leaked} {CANARY_CRON} {CANARY_WEBHOOK} {CANARY_POLAR}")


class Spy:
    """Records every SQL parameter and COPY row the app sends (passing them through)."""

    def __init__(self) -> None:
        self.params: list[str] = []

    def install(self, mp: pytest.MonkeyPatch) -> None:
        spy = self
        for cls, name in (
            (psycopg.Cursor, "execute"),
            (psycopg.Cursor, "executemany"),
            (psycopg.Copy, "write_row"),
            (psycopg.Copy, "write"),
        ):
            original = getattr(cls, name)

            def wrapper(self: Any, *args: Any, _original: Any = original, **kw: Any) -> Any:
                spy.params.append(repr(args) + repr(kw))  # the statement, its parameters
                return _original(self, *args, **kw)

            mp.setattr(cls, name, wrapper)


class Records:
    """Every log record of the product: the JSON line our handler writes, and raw messages."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        formatter = logs.ScrubbingFormatter()
        outer = self

        class Capture(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.name.startswith(("moto", "werkzeug", "devstack")):
                    return  # the simulator's own logs: it plays AWS, not us
                outer.lines.append(record.getMessage())
                if record.name.startswith(logs.SERVICE):
                    outer.lines.append(formatter.format(record))

        self.handler = Capture(level=logging.DEBUG)


@pytest.fixture
def flow_env(aws_env: dict[str, str]) -> Iterator[dict[str, str]]:
    aws_env.update(
        {
            "CRON_SECRET": CANARY_CRON,
            "POLAR_WEBHOOK_SECRET": CANARY_WEBHOOK,
            "POLAR_ACCESS_TOKEN": CANARY_POLAR,
        }
    )
    with with_settings(aws_env):
        yield aws_env


def wait_until_idle(queue: LocalQueue, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while queue.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert queue.pending() == 0, "sync jobs did not finish"


def issued_sts_credentials() -> list[str]:
    values: list[str] = []
    for account in (CLIENT,):
        for role in sts_backends[account]["aws"].assumed_roles:
            values += [role.access_key_id, role.secret_access_key, role.session_token]
    return values


def all_text(db: TestDatabase) -> list[tuple[str, str, str]]:
    """(table, column, value) of every text-like column of every cao table."""
    out: list[tuple[str, str, str]] = []
    with db.owner() as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'cao'"
            " AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'ARRAY')"
        ).fetchall()
        for table, column in columns:
            query = sql.SQL("SELECT {}::text FROM {} WHERE {} IS NOT NULL").format(
                sql.Identifier(column), sql.Identifier("cao", table), sql.Identifier(column)
            )
            out += [(table, column, row[0]) for row in conn.execute(query)]
    return out


def test_no_secret_survives_a_full_flow(
    flow_env: dict[str, str],
    clean_db: TestDatabase,
    sim: SimulatedAws,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = Spy()
    spy.install(monkeypatch)
    records = Records()
    # The product's logger first: Powertools keeps the root handlers present when it is set up
    # (a platform's) from writing its records a second time, unscrubbed; this capture must not
    # be one of them.
    logs.get_logger().setLevel(logging.DEBUG)
    logging.getLogger().addHandler(records.handler)
    transport = CapturingTransport()
    observability.stop()
    observability.start(Settings(flow_env), transport=transport)
    try:
        with worker.local_queue() as queue, with_publisher(queue):
            secrets_in_play = run_flow(flow_env, sim, queue)
    finally:
        logging.getLogger().removeHandler(records.handler)
        logs.get_logger().setLevel(logging.INFO)
        observability.stop()

    api_key, external_id, people_tokens = secrets_in_play
    assert len(people_tokens) >= 6
    sts = issued_sts_credentials()
    assert len(sts) >= 3, "the flow assumed the client role"
    ours = [flow_env["CAO_AWS_ACCESS_KEY_ID"], flow_env["CAO_AWS_SECRET_ACCESS_KEY"]]
    canaries = [
        CANARY_CRON,
        CANARY_WEBHOOK,
        CANARY_POLAR,
        CANARY_PLANTED,
        CANARY_BODY,
        api_key,
        *ours,
        *sts,
        *people_tokens,
    ]

    # The database: no canary, no credential shape, and the ExternalId only in its column.
    rows = all_text(clean_db)
    assert any(t == "access_events" for t, _, _ in rows), "the CloudTrail sync stored events"
    for table, column, value in rows:
        for canary in canaries:
            assert canary not in value, f"{table}.{column} holds a secret"
        if (table, column) != ("external_ids", "value"):
            assert external_id not in value, f"{table}.{column} holds the ExternalId"
        assert not SESSION_TOKEN.search(value), f"{table}.{column} holds a token-like value"
        assert not AWS_SECRET.search(value), f"{table}.{column} holds a secret-key-like value"

    # SQL parameters: credentials and secrets never travel to the database at all.
    sent = "\n".join(spy.params)
    assert sent, "the spy saw the SQL traffic"
    for canary in canaries:
        assert canary not in sent

    # Logs and Sentry: nothing, not even the ExternalId.
    log_text = "\n".join(records.lines)
    assert "cost sync succeeded" in log_text
    sentry_text = transport.text
    assert transport.events, "the handler error reached Sentry"
    for text, where in ((log_text, "logs"), (sentry_text, "Sentry")):
        for canary in [*canaries, external_id]:
            assert canary not in text, f"a secret reached {where}"
        assert not ACCESS_KEY_ID.search(text), f"an access key id reached {where}"
        assert not SESSION_TOKEN.search(text), f"a token-like value reached {where}"


def run_flow(
    env: dict[str, str], sim: SimulatedAws, queue: LocalQueue
) -> tuple[str, str, list[str]]:
    app = create_app(*all_routers(), bug_router)
    client = TestClient(app, raise_server_exceptions=False)
    people_tokens = people_flow(app)

    r = client.post("/api/agencies", json={"name": "Canary Ops", "contact_email": "c@x.example"})
    assert r.status_code == 201, r.text
    api_key, external_id = r.json()["api_key"], r.json()["external_id"]
    auth = {"Authorization": f"Bearer {api_key}"}
    r = client.patch("/api/agency", headers=auth, json={"cloudtrail_backfill_days": 1})
    assert r.status_code == 200, r.text

    # The client account: costs, and CloudTrail events whose payloads hold planted secrets.
    now = datetime.now(UTC)
    sim.put_cost(
        CLIENT,
        now.strftime("%Y-%m"),
        "AWS Lambda",
        {"UnblendedCost": "12.34", "AmortizedCost": "12.34", "NetUnblendedCost": "12.00"},
        estimated=True,
    )
    sim.put_events(
        CLIENT,
        "us-east-1",
        trailgen.make_events(
            CLIENT, "us-east-1", now - timedelta(hours=20), now, 120, seed=3, planted=CANARY_PLANTED
        ),
    )
    body = templates.render_yaml(templates.template())
    role_arn = sim.install_stack(
        CLIENT,
        "CloudAgencyOps",
        body,
        {"CaoAccountId": OUR_ACCOUNT_ID, "ExternalId": external_id},
    )["RoleArn"]

    # A validation error on a body holding a canary; then the real link (queues first syncs).
    r = client.post("/api/accounts", headers=auth, json={"role_arn": CANARY_BODY})
    assert 400 <= r.status_code < 500 and CANARY_BODY not in r.text
    r = client.post("/api/accounts", headers=auth, json={"role_arn": role_arn, "alias": "c"})
    assert r.status_code == 201, r.text
    account_id = r.json()["id"]
    wait_until_idle(queue)

    # Cron with a wrong secret, then the right one (the tables were emptied for this test, so
    # the dispatcher sees only this flow's jobs).
    assert (
        client.get("/api/cron/dispatch", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    r = client.get("/api/cron/dispatch", headers={"Authorization": f"Bearer {CANARY_CRON}"})
    assert r.status_code == 200 and CANARY_CRON not in r.text

    # A Polar webhook.
    payload = encode(sample_event(r_agency(client, auth), "subscription.active"))
    r = client.post(
        "/api/webhooks/polar", content=payload, headers=signed_headers(CANARY_WEBHOOK, payload)
    )
    assert r.status_code in (200, 202), r.text

    # A failing sync: the role now refuses us.
    sim.faults.add("sts", "AssumeRole", "AccessDenied", status=403, times=10)
    r = client.post(f"/api/accounts/{account_id}/sync", headers=auth)
    assert r.status_code == 202, r.text
    wait_until_idle(queue)
    sim.faults.clear()
    r = client.get(f"/api/accounts/{account_id}", headers=auth)
    assert r.json()["status"] == "access_denied"

    # An error in a request handler.
    assert client.get("/api/test-bug", headers=auth).status_code == 500
    return api_key, external_id, people_tokens


def people_flow(app: Any) -> list[str]:
    """Sign-up with an admin, enrolment, sign-in, an invitation accepted, a recovery link, and
    a handler bug that puts the session cookie in its message: the tokens in play."""
    browser = Browser(TestClient(app, base_url=ORIGIN, raise_server_exceptions=False))
    signup = browser.sign_up()
    tokens = [signup["enrolment"]["token"]]
    assert browser.enrol(tokens[0]).status_code == 201
    tokens += [browser.cookie or "", browser.csrf or ""]
    assert browser.sign_in().status_code == 200
    tokens += [browser.cookie or "", browser.csrf or ""]
    r = browser.post("/api/invitations", json={"email": "canary-invitee@x.example"})
    invitation = r.json()["link"].split("#", 1)[1]
    colleague = Browser(TestClient(app, base_url=ORIGIN, raise_server_exceptions=False))
    r = colleague.post("/api/invitations/accept", json={"token": invitation, "name": "C"})
    tokens += [invitation, r.json()["token"]]
    assert colleague.enrol(r.json()["token"]).status_code == 201
    user_id = colleague.refresh()["user"]["id"]
    r = browser.post(f"/api/users/{user_id}/recovery")
    recovery = r.json()["link"].split("#", 1)[1]
    r = colleague.post("/api/recovery/accept", json={"token": recovery})
    tokens += [recovery, r.json()["token"]]
    assert browser.get("/api/test-bug").status_code == 500
    return [t for t in tokens if t]


def r_agency(client: TestClient, auth: dict[str, str]) -> str:
    return str(client.get("/api/agency", headers=auth).json()["id"])
