"""GET /api/access/principals reads a page's principals from the newest events in growing
batches (shared.store.access.page_principals; issue 15, item 11): paged through the real API
with batches far smaller than the history, it lists exactly what one aggregate over every
event lists, in the same order, under each filter."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from shared.db import tenant_tx
from shared.store import access
from shared.store.access import EventFilter
from tests.access.test_access import all_pages
from tests.support.factories import AgencyFixture, make_account

T0 = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def history(agency: AgencyFixture, app_conn: psycopg.Connection[Any]) -> dict[str, Any]:
    """1,500 events of 120 principals (20 keyed by name only) over two accounts, with ties."""
    rng = random.Random(5)
    accounts = [make_account(app_conn, agency.id, f"{i}00000000000") for i in (1, 2)]
    rows = []
    for n in range(1500):
        p = rng.randrange(120)
        arn = None if p < 20 else f"arn:aws:iam::100000000000:user/u{p:03d}"
        rows.append(
            (
                agency.id,
                accounts[n % 2],
                f"{n % 2 + 1}00000000000",
                "us-east-1",
                f"ev-{n}",
                T0 + timedelta(minutes=rng.randrange(600)),  # minutes: many ties
                "GetObject",
                arn,
                f"svc{p:03d}.amazonaws.com" if arn is None else f"u{p:03d}",
                f"10.0.{rng.randrange(4)}.{rng.randrange(30)}",
            )
        )
    with tenant_tx(app_conn, agency.id), app_conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO cao.access_events (agency_id, account_id, aws_account_id, region,"
            " event_id, event_time, event_name, principal_arn, principal_name, source_ip)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
    return {"accounts": accounts}


def _everything(
    conn: psycopg.Connection[Any], agency: AgencyFixture, f: EventFilter
) -> list[dict[str, Any]]:
    where, params = access._conditions(agency.id, f)
    with tenant_tx(conn, agency.id):
        rows = access._aggregate_principals(conn, where, params, None, 10_000)
    return [
        {
            "principal": r.principal,
            "event_count": r.event_count,
            "last_seen": r.last_seen,
            "first_seen": r.first_seen,
            "source_ip_count": r.source_ip_count,
        }
        for r in rows
    ]


@pytest.mark.parametrize("scan", [16, 64, 100_000])
@pytest.mark.parametrize("which", ["all", "one account", "since"])
def test_paged_principals_equal_one_aggregate_over_every_event(
    client: TestClient,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    history: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    scan: int,
    which: str,
) -> None:
    monkeypatch.setattr(access, "PRINCIPAL_SCAN", scan)
    monkeypatch.setattr(access, "SUMMARY_SCAN", scan)
    since = T0 + timedelta(minutes=300)
    params: dict[str, Any] = {
        "all": {},
        "one account": {"account_id": str(history["accounts"][1])},
        "since": {"since": since.isoformat()},
    }[which]
    f = {
        "all": EventFilter(),
        "one account": EventFilter(account_ids=[history["accounts"][1]]),
        "since": EventFilter(since=since),
    }[which]

    items = all_pages(client, agency, "/api/access/principals", limit=7, **params)

    got = [
        {
            "principal": i["principal"],
            "event_count": i["event_count"],
            "last_seen": datetime.fromisoformat(i["last_seen"].replace("Z", "+00:00")),
            "first_seen": datetime.fromisoformat(i["first_seen"].replace("Z", "+00:00")),
            "source_ip_count": i["source_ip_count"],
        }
        for i in items
    ]
    expected = _everything(app_conn, agency, f)
    assert len(got) == len(expected) > 50
    assert got == expected
