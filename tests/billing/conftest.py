"""Fixtures for billing: the fake Polar API, Polar settings, an HTTP client, signed deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api import billing, webhooks
from devstack.fake_polar import FakePolar
from devstack.polar_replay import encode, sample_event, signed_headers
from shared import auth
from shared.db import tenant_tx
from shared.settings import Settings
from shared.web import create_app

POLAR_TOKEN = "polar_oat_testtoken0123456789"  # the token of tests/conftest.base_env
PRODUCT_STARTER = "11111111-1111-4111-8111-111111111111"
PRODUCT_PRO = "22222222-2222-4222-8222-222222222222"


@pytest.fixture(scope="session")
def fake_polar() -> Iterator[FakePolar]:
    with FakePolar(token=POLAR_TOKEN) as polar:
        yield polar


@pytest.fixture
def env(env: dict[str, str], fake_polar: FakePolar) -> dict[str, str]:
    assert env["POLAR_ACCESS_TOKEN"] == POLAR_TOKEN
    env.update(
        {
            "POLAR_API_URL": fake_polar.url,
            "POLAR_PRODUCT_STARTER": PRODUCT_STARTER,
            "POLAR_PRODUCT_PRO": PRODUCT_PRO,
        }
    )
    return env


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The two billing functions' routers in one app, through the same factory as Vercel's.
    (Not create_local_app: other api files are being written concurrently.)"""
    app = create_app(*billing.routers, *webhooks.routers)
    with TestClient(app) as c:
        yield c


def webhook_secret(settings: Settings) -> str:
    return settings.secret("POLAR_WEBHOOK_SECRET").reveal()


class Deliverer:
    """Signs events the way Polar does and posts them to the webhook route."""

    def __init__(self, client: TestClient, secret: str) -> None:
        self.client = client
        self.secret = secret
        self.clock = datetime.now(UTC) - timedelta(hours=1)

    def next_time(self) -> datetime:
        """Event timestamps that increase, as Polar's do for one subscription."""
        self.clock += timedelta(seconds=10)
        return self.clock

    def event(self, agency_id: uuid.UUID | str | None, event_type: str, **kw: Any) -> bytes:
        kw.setdefault("at", self.next_time())
        return encode(sample_event(agency_id, event_type, **kw))

    def post(self, body: bytes, **kw: Any) -> Any:
        headers = signed_headers(self.secret, body, **kw)
        return self.client.post("/api/webhooks/polar", content=body, headers=headers)

    def send(self, agency_id: uuid.UUID | str | None, event_type: str, **kw: Any) -> Any:
        response = self.post(self.event(agency_id, event_type, **kw))
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def deliver(client: TestClient, settings: Settings) -> Deliverer:
    return Deliverer(client, webhook_secret(settings))


def billing_row(conn: psycopg.Connection[Any], agency_id: uuid.UUID) -> dict[str, Any]:
    with tenant_tx(conn, agency_id):
        cur = conn.execute(
            "SELECT billing_status, plan, trial_ends_at, polar_customer_id,"
            " polar_subscription_id, current_period_end, billing_event_at"
            " FROM cao.agencies WHERE id = %s",
            (agency_id,),
        )
        row = cur.fetchone()
        assert row is not None and cur.description is not None
        return dict(zip([c.name for c in cur.description], row, strict=True))


def deliveries_of(owner: psycopg.Connection[Any], webhook_id: str) -> int:
    row = owner.execute(
        "SELECT count(*) FROM cao.webhook_deliveries WHERE webhook_id = %s", (webhook_id,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def member_headers(conn: psycopg.Connection[Any], agency_id: uuid.UUID) -> dict[str, str]:
    key = auth.generate_key()
    with tenant_tx(conn, agency_id):
        conn.execute(
            "INSERT INTO cao.api_keys (agency_id, name, role, key_hash, key_prefix)"
            " VALUES (%s, 'member', 'member', %s, %s)",
            (agency_id, key.key_hash, key.display_prefix),
        )
    return {"Authorization": f"Bearer {key.plaintext}"}


def audit_actions(owner: psycopg.Connection[Any], agency_id: uuid.UUID) -> list[tuple[str, str]]:
    """(actor, action) of the agency's audit rows, oldest first."""
    rows = owner.execute(
        "SELECT actor, action FROM cao.audit_log WHERE agency_id = %s ORDER BY id", (agency_id,)
    ).fetchall()
    return [(r[0], r[1]) for r in rows]
