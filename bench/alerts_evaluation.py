"""Benchmark: what the alerts evaluation adds to each cost sync, and the forecast read.

    python -m bench.alerts_evaluation [members] [services] [rounds]   # defaults: 20 10 20

- Data: one agency, one management account whose pull covers `members` AWS accounts x
  `services` services (a series each), 45 days of daily month-to-date snapshots per series
  (the baseline's 28 days and their references), one client per member with a budget (default
  thresholds), loaded as the app role (row-level security on).
- "evaluation": `alerts.after_cost_sync` for the management account, as the costs job runs it
  after the sync stored today's snapshot: every series' anomaly rule, every budget's
  thresholds, the retention purge; one transaction. "forecast": GET /api/forecasts?group_by=
  client's service call (the same computation as every budget's view).
- Database: $BENCH_DATABASE_URL or $TEST_DATABASE_URL (a superuser URL, loopback) if set, else
  an embedded Postgres in a temporary directory. Roles get the tests' passwords (a shared
  server's running tests keep working).
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random

import psycopg
from psycopg.types.json import Jsonb

from devstack import pg
from functions.alerts import service as alerts
from shared import auth
from shared.db import tenant_tx

NOW = datetime(2025, 3, 21, 6, 0, tzinfo=UTC)
OWNER_PASSWORD, APP_PASSWORD = "owner-test-password", "app-test-password"


@contextmanager
def _database() -> Iterator[pg.LocalDatabase]:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    name = f"cao_bench_alerts_{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="cao-bench-") as tmp:
        server = pg.embedded_server(Path(tmp), keep=False) if not url else _given(url)
        with server as admin:
            local = pg.bootstrap(admin, name, OWNER_PASSWORD, APP_PASSWORD)
            try:
                yield local
            finally:
                pg.drop(admin, name)


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def _load(conn: psycopg.Connection, members: int, services: int) -> tuple[uuid.UUID, uuid.UUID]:
    key = auth.generate_key()
    row = conn.execute(
        "SELECT agency_id FROM cao.create_agency(%s, %s, %s, %s, %s)",
        (
            "Bench",
            "bench@example.com",
            "bench-" + secrets.token_urlsafe(18),
            key.key_hash,
            key.display_prefix,
        ),
    ).fetchone()
    assert row is not None
    agency = row[0]
    rng = Random(19)
    with tenant_tx(conn, agency):
        ext = conn.execute("SELECT id FROM cao.external_ids WHERE agency_id = %s", (agency,))
        ext_id = ext.fetchone()[0]  # type: ignore[index]
        payer = conn.execute(
            "INSERT INTO cao.accounts (agency_id, aws_account_id, role_arn, external_id_id,"
            " is_management) VALUES (%s, '100000000000', 'arn:aws:iam::100000000000:role/x',"
            " %s, true) RETURNING id",
            (agency, ext_id),
        ).fetchone()[0]  # type: ignore[index]
        rows = []
        for m in range(members):
            aws_id = f"{200000000000 + m:012d}"
            for s in range(services):
                daily = Decimal(rng.choice([3, 20, 60, 250]))
                amount = Decimal(0)
                for d in range(45, -1, -1):
                    at = NOW - timedelta(days=d)
                    if at.day == 1:
                        amount = Decimal(0)
                    amount += (daily * Decimal(str(rng.uniform(0.85, 1.15)))).quantize(
                        Decimal("0.01")
                    )
                    month = at.date().replace(day=1)
                    rows.append((agency, payer, aws_id, f"Service {s}", month, at, amount))
            client = conn.execute(
                "INSERT INTO cao.clients (agency_id, name) VALUES (%s, %s) RETURNING id",
                (agency, f"Client {m}"),
            ).fetchone()[0]  # type: ignore[index]
            conn.execute(
                "INSERT INTO cao.budgets (agency_id, name, client_id, amount, thresholds)"
                " VALUES (%s, %s, %s, 5000, %s)",
                (
                    agency,
                    f"Budget {m}",
                    client,
                    Jsonb(
                        [{"kind": "actual", "percent": 80}, {"kind": "forecast", "percent": 100}]
                    ),
                ),
            )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO cao.cost_snapshots (agency_id, account_id, usage_account_id,"
                " service, month, taken_at, amount, currency, estimated)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, 'USD', true)",
                rows,
            )
    return agency, payer


def main(argv: list[str]) -> int:
    members = int(argv[0]) if argv else 20
    services = int(argv[1]) if len(argv) > 1 else 10
    rounds = int(argv[2]) if len(argv) > 2 else 20
    with _database() as local, psycopg.connect(local.app_url, autocommit=True) as conn:
        agency, payer = _load(conn, members, services)
        conn.execute("ANALYZE")
        evaluation, forecast = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            alerts.after_cost_sync(conn, agency, payer, since=NOW, now=NOW)
            evaluation.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            alerts.forecasts(conn, agency, NOW, group_by="client")
            forecast.append((time.perf_counter() - started) * 1000)
    series = members * services

    def line(name: str, ms: list[float]) -> str:
        ms.sort()
        p95 = ms[max(0, round(len(ms) * 0.95) - 1)]
        return f"{name}: p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms"

    print(f"{series} series x 46 daily snapshots, {members} budgets, {rounds} rounds")
    print(line("evaluation after a sync", evaluation))
    print(line("forecast by client", forecast))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
