"""Benchmark: the cron dispatcher publishing a large hour's due jobs.

    python -m bench.dispatch_jobs [jobs]        # default 50000

Builds `jobs` due sync jobs (agencies of 50 accounts, each account a 'costs' and a 'cloudtrail'
job, due a minute ago, every agency entitled) and runs `functions.jobs.service.dispatch` as the
cron does (batches of 5,000, the kinds in turn), with no time budget so the whole hour is timed,
against two publishers:

1. the embedded Vercel Queues service of the SDK (what `make demo` and the tests use), in
   process: every message a real `send` through the SDK client, 16 at a time per part
   (`shared.queue`), on the one event loop the embedded service runs on;
2. the same sending code (`shared.queue._send_all`, 16 concurrent sends per part, up to 8 parts
   at once: `functions.jobs.service.PUBLISH_WAYS`) against a queue whose
   every send takes `SEND_LATENCY_S` (a same-region HTTPS call; Vercel does not document its
   publish latency), to see what bounds a deployed dispatcher.

Prints the time to claim (the database) and to publish (the queue), jobs/s, and the
extrapolation to 500,000 accounts: their hourly CloudTrail jobs (500,000 an hour) plus their
daily cost jobs (~20,800 an hour), against the dispatcher's 45 s budget per run.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import anyio

from bench._cloudtrail import connect, database, make_agency
from functions.jobs import service
from functions.jobs.schemas import JobMessage
from shared import queue

ACCOUNTS_PER_AGENCY = 50
SEND_LATENCY_S = 0.030
TARGET_ACCOUNTS = 500_000


class _Timed:
    """A publisher that records when its inner publisher's calls ran (the dispatcher calls it
    from several threads at once: `seconds` is the time during which any call ran)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.spans: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        started = time.perf_counter()
        try:
            failed: list[JobMessage] = self.inner.publish(messages)
        finally:
            with self.lock:
                self.spans.append((started, time.perf_counter()))
        return failed

    @property
    def seconds(self) -> float:
        total, reach = 0.0, float("-inf")
        for start, end in sorted(self.spans):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total


class _SlowClient:
    """A queue client whose every send takes `latency` seconds (and keeps nothing)."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.sent = 0

    async def send(self, topic: str, payload: Any, **kwargs: Any) -> None:
        await anyio.sleep(self.latency)
        self.sent += 1


class _SlowQueue:
    def __init__(self, latency: float) -> None:
        self.client = _SlowClient(latency)

    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        return anyio.run(queue._send_all, self.client, list(messages), None)  # type: ignore[arg-type]


def _build(admin_url: str, app_url: str, jobs: int) -> None:
    agencies = max(1, jobs // (2 * ACCOUNTS_PER_AGENCY))
    with connect(app_url) as app:
        for _ in range(agencies):
            make_agency(app)
    with connect(admin_url) as admin:  # the superuser: one statement per table, no RLS
        admin.execute(
            "INSERT INTO cao.accounts (agency_id, aws_account_id, role_arn, external_id_id)"
            " SELECT e.agency_id, lpad((row_number() OVER () + 100000000000)::text, 12, '0'),"
            "  'arn:aws:iam::' || lpad(n::text, 12, '0') || ':role/CloudAgencyOpsReadOnly'"
            "   || n, e.id"
            " FROM cao.external_ids e CROSS JOIN generate_series(1, %s) n"
            " WHERE e.retired_at IS NULL",
            (ACCOUNTS_PER_AGENCY,),
        )
        admin.execute(
            "INSERT INTO cao.sync_jobs (agency_id, account_id, kind, next_run_at)"
            " SELECT a.agency_id, a.id, k, now() - interval '1 minute'"
            " FROM cao.accounts a CROSS JOIN unnest(ARRAY['costs', 'cloudtrail']) k"
            " ON CONFLICT (account_id, kind) DO UPDATE SET next_run_at = excluded.next_run_at,"
            "  state = 'idle', requested_at = NULL"
        )
        admin.execute("ANALYZE cao.sync_jobs")


def _reset(admin_url: str) -> None:
    with connect(admin_url) as admin:
        admin.execute(
            "UPDATE cao.sync_jobs SET state = 'idle', requested_at = NULL,"
            " next_run_at = now() - interval '1 minute'"
        )
        admin.execute("VACUUM ANALYZE cao.sync_jobs")


def _run(app_url: str, publisher: Any) -> tuple[float, float, service.DispatchReport]:
    timed = _Timed(publisher)
    with connect(app_url) as conn:
        started = time.perf_counter()
        report = service.dispatch(conn, timed, budget_s=float("inf"))
        total = time.perf_counter() - started
    return total, timed.seconds, report


def _line(name: str, jobs: int, total: float, publish: float, report: Any) -> float:
    rate = jobs / total
    print(
        f"  {name:<44} {sum(report.published.values()):>7,} published in {total:6.1f} s"
        f" (claiming {total - publish:5.1f} s, publishing {publish:6.1f} s):"
        f" {rate:7,.0f} jobs/s, {report.batches} batches"
    )
    return rate


def main(argv: list[str]) -> int:
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    jobs = int(argv[0]) if argv else 50_000
    print(f"{jobs:,} due jobs ({jobs // 2:,} accounts x costs + cloudtrail)")
    with database() as db:
        built = time.perf_counter()
        _build(db.admin_url, db.app_url, jobs)
        print(f"  built in {time.perf_counter() - built:.1f} s")
        rates: dict[str, float] = {}
        with queue.LocalQueue() as local:
            total, publish, report = _run(db.app_url, local)
            rates["embedded"] = _line(
                "embedded Vercel Queues (in process)", jobs, total, publish, report
            )
        _reset(db.admin_url)
        total, publish, report = _run(db.app_url, _SlowQueue(SEND_LATENCY_S))
        rates["slow"] = _line(
            f"{SEND_LATENCY_S * 1000:.0f} ms per send, {queue.SEND_CONCURRENCY} at a time",
            jobs,
            total,
            publish,
            report,
        )
    hourly = TARGET_ACCOUNTS + TARGET_ACCOUNTS / 24
    budget = service.DISPATCH_BUDGET_S
    print(f"\n500,000 accounts: ~{hourly:,.0f} jobs an hour (CloudTrail hourly, costs daily)")
    for name, rate in rates.items():
        need = hourly / rate
        print(
            f"  at {rate:,.0f} jobs/s ({name}): {need / 60:5.1f} min of dispatching an hour,"
            f" {need / budget:5.1f} runs of {budget:.0f} s ({need / 3600:.0%}"
            f" of the hour); an hourly cron publishes {rate * budget:,.0f} a run, a cron every"
            f" minute {hourly / 60:,.0f} a run in {hourly / 60 / rate:.1f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
