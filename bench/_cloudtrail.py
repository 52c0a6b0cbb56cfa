"""Shared setup of the CloudTrail benchmarks: an embedded Postgres with the schema, an agency
with linked accounts, LookupEvents items from trailgen. Not a benchmark itself (leading `_`)."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from devstack import pg
from devstack.trailgen import make_events

OWNER_PASSWORD = "bench-owner"
APP_PASSWORD = "bench-app"


@contextmanager
def database() -> Iterator[pg.LocalDatabase]:
    """A fresh database with the schema: on $BENCH_DATABASE_URL (a superuser URL) if set,
    else on an embedded server in a temporary directory."""
    name = f"cao_bench_{secrets.token_hex(3)}"
    url = os.environ.get("BENCH_DATABASE_URL")
    with (
        tempfile.TemporaryDirectory(prefix="cao-bench-") as tmp,
        pg.embedded_server(Path(tmp), keep=False) if not url else _given(url) as admin,
    ):
        db = pg.bootstrap(admin, name, OWNER_PASSWORD, APP_PASSWORD)
        try:
            yield db
        finally:
            pg.drop(admin, name)


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, prepare_threshold=None)


def make_agency(conn: psycopg.Connection[Any]) -> tuple[uuid.UUID, str]:
    """An agency (through cao.create_agency, as sign-up does) and its ExternalId."""
    external_id = "bench-" + secrets.token_urlsafe(18)
    with conn.transaction():
        row = conn.execute(
            "SELECT agency_id FROM cao.create_agency(%s, %s, %s, %s, %s)",
            ("Bench agency", "bench@example.com", external_id, secrets.token_bytes(32), "cao_b"),
        ).fetchone()
    assert row is not None
    return row[0], external_id


def make_account(
    conn: psycopg.Connection[Any], agency_id: uuid.UUID, aws_account_id: str, role_arn: str
) -> uuid.UUID:
    with conn.transaction():
        conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(agency_id),))
        row = conn.execute(
            "INSERT INTO cao.accounts (agency_id, aws_account_id, role_arn, external_id_id)"
            " SELECT %s, %s, %s, id FROM cao.external_ids"
            " WHERE agency_id = %s AND retired_at IS NULL RETURNING id",
            (agency_id, aws_account_id, role_arn, agency_id),
        ).fetchone()
    assert row is not None
    account_id: uuid.UUID = row[0]
    return account_id


def lookup_items(
    account: str, region: str, start: datetime, end: datetime, count: int, seed: int
) -> list[dict[str, Any]]:
    """Events as botocore hands LookupEvents results back (CloudTrailEvent as a JSON string)."""
    items = []
    for record in make_events(account, region, start, end, count, seed):
        items.append(
            {
                "EventId": record["eventID"],
                "EventName": record["eventName"],
                "EventTime": datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00")),
                "EventSource": record["eventSource"],
                "CloudTrailEvent": json.dumps(record),
            }
        )
    return items


def ensure_partitions(admin: psycopg.Connection[Any], start: datetime, end: datetime) -> None:
    """The month partitions of cao.access_events from `start` to `end` (as the owner; no move
    limit), before a bulk load that does not go through the sync's insert path."""
    months: list[datetime] = []
    month = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while month <= end:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    admin.execute("SELECT cao.ensure_event_partitions(%s::timestamptz[], NULL)", (months,))
