"""Benchmark: p50/p95 latency of the costs, access-events and principals endpoints with 1M
access events and 100 accounts, beside the same queries run directly in SQL.

    python -m bench.reads_latency [events] [requests]      # defaults: 1000000 200

Target (design.md): p95 under 50 ms on this machine.

- Data: one agency with 100 linked accounts, `events` access events over the last 30 days
  (2,000 principals, 60 event names, 500 source IPs, 1% our own sessions), 14 months x 30
  services x 3 metrics of cost rows per account (126,000 rows), loaded with COPY; a second
  agency with 10% as many events, so row-level security has rows to hide. ANALYZE after.
- "endpoint": the request through the ASGI app in-process (the api/costs.py and api/access.py
  routers behind the same web factory as on Vercel): a new database connection, the API key
  check, the query in a tenant transaction, the JSON. "SQL": the store query alone, in a
  tenant transaction as the app role (row-level security on) on a connection already open.
- Database: $BENCH_DATABASE_URL or $TEST_DATABASE_URL (a superuser URL, loopback) if set, else
  an embedded Postgres in a temporary directory.
"""

from __future__ import annotations

import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from devstack import pg
from functions.access.routes import access_router
from functions.costs.routes import costs_router
from shared import auth, bootstrap, db
from shared.bootstrap import Deps
from shared.kit.months import add_months, month_of
from shared.settings import Settings
from shared.store import access, costs
from shared.store.access import EventFilter
from shared.web import create_app

ACCOUNTS = 100
SERVICES = 30
MONTHS = 14
PRINCIPALS = 2000
EVENT_NAMES = 60
IPS = 500


@contextmanager
def _database() -> Iterator[pg.LocalDatabase]:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    name = f"cao_bench_reads_{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="cao-bench-") as tmp:
        server = pg.embedded_server(Path(tmp), keep=False) if not url else _given(url)
        with server as admin:
            local = pg.bootstrap(admin, name, "bench-owner", "bench-app")
            try:
                yield local
            finally:
                pg.drop(admin, name)


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def _agency(conn: psycopg.Connection[Any]) -> tuple[uuid.UUID, str]:
    key = auth.generate_key()
    row = conn.execute(
        "SELECT agency_id FROM cao.create_agency(%s, %s, %s, %s, %s)",
        (
            "Bench agency",
            "bench@example.com",
            "bench-" + secrets.token_urlsafe(18),
            key.key_hash,
            key.display_prefix,
        ),
    ).fetchone()
    assert row is not None
    return row[0], key.plaintext


def _accounts(
    conn: psycopg.Connection[Any], agency_id: uuid.UUID, n: int
) -> list[tuple[uuid.UUID, str]]:
    out = []
    for i in range(n):
        aws_id = f"{100000000000 + random.randrange(10**11):012d}"
        row = conn.execute(
            "INSERT INTO cao.accounts (agency_id, aws_account_id, role_arn, alias, external_id_id)"
            " SELECT %s, %s, %s, %s, id FROM cao.external_ids WHERE agency_id = %s"
            " RETURNING id",
            (agency_id, aws_id, f"arn:aws:iam::{aws_id}:role/CAO", f"client-{i}", agency_id),
        ).fetchone()
        assert row is not None
        out.append((row[0], aws_id))
    return out


def _load(
    admin_url: str,
    agency_id: uuid.UUID,
    accounts: list[tuple[uuid.UUID, str]],
    events: int,
    now: datetime,
) -> None:
    """COPY the events and cost rows in (as the superuser: COPY FROM is refused under RLS)."""
    rng = random.Random(7)
    principals = [
        f"arn:aws:sts::{rng.randrange(10**12):012d}:assumed-role/Role{i % 40}/session-{i}"
        for i in range(PRINCIPALS)
    ]
    names = [f"Action{i}" for i in range(EVENT_NAMES)]
    ips = [f"198.51.{i // 250}.{i % 250}" for i in range(IPS)]
    span = 30 * 86400
    with psycopg.connect(admin_url, autocommit=True) as conn:
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY cao.access_events (agency_id, account_id, aws_account_id, region, event_id,"
                " event_time, event_name, principal_arn, principal_name, source_ip, is_vendor)"
                " FROM STDIN"
            ) as copy,
        ):
            for n in range(events):
                account_id, aws_id = accounts[rng.randrange(len(accounts))]
                vendor = rng.random() < 0.01
                principal = principals[rng.randrange(PRINCIPALS)]
                copy.write_row(
                    (
                        agency_id,
                        account_id,
                        aws_id,
                        "us-east-1",
                        f"ev-{n}",
                        now - timedelta(seconds=rng.random() * span),
                        names[rng.randrange(EVENT_NAMES)],
                        principal,
                        "cao-bench-session" if vendor else principal.rsplit("/", 1)[-1],
                        ips[rng.randrange(IPS)],
                        vendor,
                    )
                )
        first = add_months(month_of(now), -(MONTHS - 1))
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY cao.cost_rows (agency_id, account_id, usage_account_id, month, service,"
                " metric, amount, currency, estimated) FROM STDIN"
            ) as copy,
        ):
            for account_id, aws_id in accounts:
                for m in range(MONTHS):
                    month = add_months(first, m)
                    for s in range(SERVICES):
                        for metric in ("UnblendedCost", "AmortizedCost", "NetUnblendedCost"):
                            amount = Decimal(rng.randrange(10**8)) / 10**4
                            copy.write_row(
                                (
                                    agency_id,
                                    account_id,
                                    aws_id,
                                    month,
                                    f"Service {s}",
                                    metric,
                                    amount,
                                    "USD",
                                    m >= MONTHS - 1,
                                )
                            )
        # Steady state: autovacuum has set the visibility map (index-only scans) and statistics.
        conn.execute("VACUUM (ANALYZE)")


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered), p95


def _time(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    for _ in range(5):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return _percentiles(samples)


def main(argv: list[str]) -> int:
    events = int(argv[0]) if argv else 1_000_000
    requests = int(argv[1]) if len(argv) > 1 else 200
    # A log line per request would measure stdout, not the endpoint (production logs go to
    # Vercel's collector asynchronously).
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    random.seed(11)
    now = datetime.now(UTC)
    with _database() as local:
        started = time.perf_counter()
        with psycopg.connect(local.app_url, autocommit=True) as conn:
            with conn.transaction():
                agency_id, api_key = _agency(conn)
                conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(agency_id),))
                accounts = _accounts(conn, agency_id, ACCOUNTS)
            with conn.transaction():
                other_id, _ = _agency(conn)
                conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(other_id),))
                other_accounts = _accounts(conn, other_id, 10)
        _load(local.admin_url, agency_id, accounts, events, now)
        _load(local.admin_url, other_id, other_accounts, events // 10, now)
        print(
            f"loaded {events:,} events and {ACCOUNTS * MONTHS * SERVICES * 3:,} cost rows "
            f"for {ACCOUNTS} accounts (+{events // 10:,} events of another agency) in "
            f"{time.perf_counter() - started:.0f} s"
        )

        settings = Settings({"DATABASE_URL": local.app_url})
        installed = bootstrap.use(Deps(settings))
        installed.__enter__()
        client = TestClient(create_app(costs_router, access_router)).__enter__()
        headers = {"Authorization": f"Bearer {api_key}"}
        one_account, _ = accounts[0]
        some_principal = client.get(
            "/api/access/events", params={"limit": 1}, headers=headers
        ).json()["items"][0]["principal_arn"]
        # A cursor 50 pages (5,000 events) deep.
        cursor = None
        for _ in range(50):
            cursor = client.get(
                "/api/access/events",
                params={"limit": 100, **({"cursor": cursor} if cursor else {})},
                headers=headers,
            ).json()["next_cursor"]
        deep = client.get("/api/access/events", params={"cursor": cursor}, headers=headers).json()
        deep_after = (
            datetime.fromisoformat(deep["items"][0]["event_time"]),
            deep["items"][0]["id"] + 1,
        )

        first_principals = client.get("/api/access/principals", headers=headers).json()
        principals_cursor = first_principals["next_cursor"]
        last = first_principals["items"][-1]
        principals_after = (datetime.fromisoformat(last["last_seen"]), last["principal"])

        this_month = month_of(now)
        six = add_months(this_month, -5)
        fourteen = add_months(this_month, -(MONTHS - 1))
        window = EventFilter(since=now - timedelta(days=7))
        cases: list[tuple[str, dict[str, Any], Callable[[db.Connection], Any]]] = [
            (
                "GET /api/costs (by service, 6 months)",
                {},
                lambda c: costs.aggregate(
                    c,
                    agency_id,
                    metric="UnblendedCost",
                    first=six,
                    last=this_month,
                    group_by="service",
                ),
            ),
            (
                "GET /api/costs?group_by=account (14 months)",
                {
                    "group_by": "account",
                    "from": fourteen.strftime("%Y-%m"),
                    "to": this_month.strftime("%Y-%m"),
                },
                lambda c: costs.aggregate(
                    c,
                    agency_id,
                    metric="UnblendedCost",
                    first=fourteen,
                    last=this_month,
                    group_by="account",
                ),
            ),
            (
                "GET /api/costs (by service, 14 months)",
                {"from": fourteen.strftime("%Y-%m"), "to": this_month.strftime("%Y-%m")},
                lambda c: costs.aggregate(
                    c,
                    agency_id,
                    metric="UnblendedCost",
                    first=fourteen,
                    last=this_month,
                    group_by="service",
                ),
            ),
            (
                "GET /api/costs?account_id=X (one account)",
                {"account_id": str(one_account)},
                lambda c: costs.aggregate(
                    c,
                    agency_id,
                    metric="UnblendedCost",
                    first=six,
                    last=this_month,
                    group_by="service",
                    account_ids=[one_account],
                    usage_account_ids=[accounts[0][1]],
                ),
            ),
            (
                "GET /api/access/events (first page of 100)",
                {},
                lambda c: access.page_events(c, agency_id, EventFilter(), None, 101),
            ),
            (
                "GET /api/access/events?cursor= (page 51)",
                {"cursor": cursor},
                lambda c: access.page_events(c, agency_id, EventFilter(), deep_after, 101),
            ),
            (
                "GET /api/access/events?account_id=X",
                {"account_id": str(one_account)},
                lambda c: access.page_events(
                    c, agency_id, EventFilter(account_ids=[one_account]), None, 101
                ),
            ),
            (
                "GET /api/access/events?principal=ARN",
                {"principal": some_principal},
                lambda c: access.page_events(
                    c, agency_id, EventFilter(principal=some_principal), None, 101
                ),
            ),
            (
                "GET /api/access/principals (first page of 100)",
                {},
                lambda c: access.page_principals(c, agency_id, EventFilter(), None, 101),
            ),
            (
                "GET /api/access/principals?cursor= (page 2)",
                {"cursor": principals_cursor},
                lambda c: access.page_principals(
                    c, agency_id, EventFilter(), principals_after, 101
                ),
            ),
            (
                "GET /api/access/principals?account_id=X",
                {"account_id": str(one_account)},
                lambda c: access.page_principals(
                    c, agency_id, EventFilter(account_ids=[one_account]), None, 101
                ),
            ),
            (
                "GET /api/access/principals?since=7d (events)",
                {"since": window.since.isoformat() if window.since else ""},
                lambda c: access.page_principals(c, agency_id, window, None, 101),
            ),
            (
                "GET /api/access/events?event_name=&since=7d",
                {
                    "event_name": "Action7",
                    "since": window.since.isoformat() if window.since else "",
                },
                lambda c: access.page_events(
                    c, agency_id, EventFilter(event_name="Action7", since=window.since), None, 101
                ),
            ),
        ]

        path_of = {
            "costs": "/api/costs",
            "access": "/api/access/events",
            "principals": "/api/access/principals",
        }
        print(f"\n{'query':48} {'endpoint p50':>13} {'p95':>8} {'SQL p50':>9} {'p95':>8}  (ms)")
        worst = 0.0
        with db.connect(settings.database_url) as conn:
            for label, params, query in cases:
                path = path_of[
                    "costs"
                    if "/api/costs" in label
                    else "principals"
                    if "/principals" in label
                    else "access"
                ]

                def request(path: str = path, params: dict[str, Any] = params) -> None:
                    r = client.get(path, params=params, headers=headers)
                    assert r.status_code == 200, r.text

                def sql(query: Callable[[db.Connection], Any] = query) -> None:
                    with db.tenant_tx(conn, agency_id):
                        query(conn)

                e50, e95 = _time(request, requests)
                s50, s95 = _time(sql, requests)
                worst = max(worst, e95)
                print(f"{label:48} {e50:13.1f} {e95:8.1f} {s50:9.2f} {s95:8.2f}")
        client.__exit__(None, None, None)
        installed.__exit__(None, None, None)
        print(
            f"\nworst endpoint p95: {worst:.1f} ms (target < 50 ms) -> "
            f"{'OK' if worst < 50 else 'OVER BUDGET'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
