"""Benchmark: 150 concurrent clients against two server workers on the direct database URL;
no request may fail for want of a database connection (issue 15, item 9).

    python -m bench.pool_load [clients] [requests_per_client] [workers]   # 150 20 2

- Server: `uvicorn devstack.server:create_local_app --factory --workers 2` on loopback, each
  worker a separate process with its own bounded pool (shared.db: POOL_SIZE connections, a
  POOL_WAIT_S wait), talking to Postgres directly (no PgBouncer in between).
- Clients: `clients` asyncio tasks on one httpx.AsyncClient (as many sockets), each sending
  `requests_per_client` authenticated reads in turn: the agency, its accounts, the first page
  of access events, the costs report. All at once, as a burst.
- Data: one agency with 10 accounts and 20,000 access events.
- Reported: statuses (a 503 `database_unavailable` is a request that got no connection),
  latency p50/p95/max, requests/s, and the most server connections the database saw at once
  (sampled from pg_stat_activity every 50 ms).
- Database: $BENCH_DATABASE_URL or $TEST_DATABASE_URL (a superuser URL, loopback) if set, else
  an embedded Postgres in a temporary directory.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

import httpx
import psycopg

from bench import reads_latency
from bench._cloudtrail import database
from shared import db

PATHS = ("/api/agency", "/api/accounts", "/api/access/events?limit=20", "/api/costs")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(app_url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": app_url,
        "LOG_LEVEL": "WARNING",  # a log line per request would measure stdout
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "devstack.server:create_local_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )


def _wait_ready(base: str, headers: dict[str, str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/api/agency", headers=headers, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


class _ConnectionWatch:
    """The most backends connected to the database at once, sampled every 50 ms."""

    def __init__(self, admin_url: str, dbname: str) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._admin_url = admin_url
        self._dbname = dbname
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            while not self._stop.wait(0.05):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (self._dbname,),
                ).fetchone()
                self.peak = max(self.peak, int(row[0]) if row else 0)


async def _burst(
    base: str, headers: dict[str, str], clients: int, per_client: int
) -> tuple[collections.Counter[str], list[float], float]:
    outcomes: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:
        start = asyncio.Event()

        async def client(n: int) -> None:
            await start.wait()
            for i in range(per_client):
                path = PATHS[(n + i) % len(PATHS)]
                began = time.perf_counter()
                try:
                    r = await c.get(path)
                    code = str(r.status_code)
                    if r.status_code == 503:
                        code += " " + r.json().get("error", {}).get("code", "")
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                latencies.append((time.perf_counter() - began) * 1000)
                outcomes[code] += 1

        tasks = [asyncio.create_task(client(n)) for n in range(clients)]
        await asyncio.sleep(0.1)
        began = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        return outcomes, latencies, time.perf_counter() - began


def main(argv: list[str]) -> int:
    clients = int(argv[0]) if argv else 150
    per_client = int(argv[1]) if len(argv) > 1 else 20
    workers = int(argv[2]) if len(argv) > 2 else 2
    with database() as local:
        with psycopg.connect(local.app_url, autocommit=True) as conn:
            agency = reads_latency._make_agency(conn, 10, "pool")
        with psycopg.connect(local.admin_url, autocommit=True) as admin:
            reads_latency._copy_events(admin, agency, 20_000, 1)
            reads_latency._copy_costs(admin, agency, 2)
            admin.execute("VACUUM (ANALYZE)")
        headers = {"Authorization": f"Bearer {agency.key}"}
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = _serve(local.app_url, port, workers)
        try:
            _wait_ready(base, headers)
            with psycopg.connect(local.admin_url, autocommit=True) as admin:
                limit = admin.execute("SHOW max_connections").fetchone()
            with _ConnectionWatch(local.admin_url, local.name) as watch:
                outcomes, latencies, elapsed = asyncio.run(
                    _burst(base, headers, clients, per_client)
                )
        finally:
            server.terminate()
            server.wait(timeout=30)
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]
    total = sum(outcomes.values())
    no_connection = sum(n for code, n in outcomes.items() if code.startswith("503"))
    print(
        f"{clients} clients x {per_client} requests on {workers} workers "
        f"(pool of {db.POOL_SIZE} per worker, wait {db.POOL_WAIT_S:.0f} s; "
        f"max_connections {limit[0] if limit else '?'})"
    )
    print(f"statuses: {dict(sorted(outcomes.items()))}")
    print(
        f"latency ms: p50 {statistics.median(ordered):.0f}, p95 {p95:.0f}, max {ordered[-1]:.0f};"
        f" {total / elapsed:.0f} requests/s; peak database connections {watch.peak}"
    )
    ok = outcomes.get("200", 0) == total
    print(f"requests failed for want of a connection: {no_connection} -> {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
