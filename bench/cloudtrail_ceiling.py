"""Benchmark: how many CloudTrail events per hour one account-region can be read at, and what
the reading costs in LookupEvents requests (issue 13).

    python -m bench.cloudtrail_ceiling

The product runs as in production, on a simulated clock: the hourly dispatcher (at :05)
publishes due jobs, the worker (`functions/jobs/worker.process`) claims and runs each delivery
through the real CloudTrail sync against the simulated AWS, and the messages the product
publishes (follow-ups with their delay) are delivered when they fall due. The pacer's sleeps
advance the clock, so a run lasts what its requests at 2/s last; nothing waits for real.

1. **Ceiling**: a backlog of 120,000 delivered events in one region (2,400 pages), read to
   its end; events per hour = events / simulated time. Twice: with follow-ups published with
   their delay (now), and with follow-ups left to the hourly dispatcher (before issue 13:
   the publish fails, the job waits for the next :05).
2. **Cost of a quiet region**: 200 events a day, a day of hourly runs after the first sync:
   LookupEvents requests per account-region per day (live pass + late-event sweep).
3. **Cost of a busy region in real time**: 3,000 events an hour arriving for 20 hours;
   requests per hour once the sweep runs, against the pages the events fill (60 an hour).

Bounded: about 2-4 minutes (the ceiling reads 2,400 pages twice through moto).
"""

from __future__ import annotations

import heapq
import os
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench._cloudtrail import connect, database, make_account, make_agency
from devstack.simaws import SimulatedAws
from devstack.trailgen import make_events
from functions.jobs import service as jobs_service
from functions.jobs import worker
from functions.jobs.schemas import JobMessage
from shared.bootstrap import Deps
from shared.db import tenant_tx
from shared.pacing import Pacer
from shared.policy import ROLE_POLICY, trust_policy
from shared.settings import Settings
from shared.store import jobs

OUR_ACCOUNT = "123456789012"
REGION = "us-east-1"
BACKLOG_EVENTS = 120_000
QUIET_PER_DAY = 200
BUSY_PER_HOUR = 3_000
BUSY_HOURS = 20


class SimClock:
    """Simulated time for the whole product: `now` (wall), `monotonic`/`sleep` (pacing)."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self._t = 0.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._t

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic())

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._t += max(0.0, seconds)

    def until(self, moment: float) -> None:
        with self._lock:
            self._t = max(self._t, moment)


class Publisher:
    """Collects what the product publishes; `working=False` fails every publish."""

    def __init__(self, working: bool) -> None:
        self.working = working
        self.sent: list[JobMessage] = []

    def publish(self, messages: Sequence[JobMessage]) -> list[JobMessage]:
        if not self.working:
            return list(messages)
        self.sent.extend(messages)
        return []


class Product:
    """One agency, one linked account with its role, and the product's queue on a SimClock."""

    def __init__(self, sim: SimulatedAws, conn: psycopg.Connection[Any], settings: Settings):
        self.sim, self.conn = sim, conn
        self.aws_account_id = f"{secrets.randbelow(9 * 10**11) + 10**11:012d}"
        self.clock = SimClock(datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
        sim.clock = self.clock.now
        agency_id, external_id = make_agency(conn)
        role = sim.create_role(
            self.aws_account_id,
            "CloudAgencyOpsReadOnly",
            trust_policy(OUR_ACCOUNT, external_id),
            ROLE_POLICY,
        )
        self.agency_id = agency_id
        self.account_id = make_account(conn, agency_id, self.aws_account_id, role)
        with tenant_tx(conn, agency_id):
            conn.execute(
                "UPDATE cao.agencies SET cloudtrail_backfill_days = 1 WHERE id = %s", (agency_id,)
            )
            jobs.ensure_jobs(conn, agency_id, self.account_id, ["cloudtrail"], due_at=self.at(0))
        self.settings = settings
        self.queue: list[tuple[float, int, JobMessage, int]] = []
        self.seq = 0
        self.next_dispatch = 300.0

    def at(self, seconds: float) -> datetime:
        return self.clock.start + timedelta(seconds=seconds)

    def put_events(self, start: datetime, end: datetime, count: int, seed: int) -> int:
        step = 50_000  # generated in slices: trailgen holds a slice in memory
        total, slices = 0, max(1, -(-count // step))
        for i in range(slices):
            a = start + (end - start) * i / slices
            b = start + (end - start) * (i + 1) / slices
            n = count // slices + (1 if i < count % slices else 0)
            events = make_events(self.aws_account_id, REGION, a, b, n, seed * 1000 + i)
            self.sim.put_events(self.aws_account_id, REGION, events)
            total += len(events)
        return total

    def lookups(self) -> int:
        return self.sim.count_calls("cloudtrail", "LookupEvents", self.aws_account_id)

    def stored(self, owner: psycopg.Connection[Any]) -> int:
        row = owner.execute(
            "SELECT count(*) FROM cao.access_events WHERE account_id = %s", (self.account_id,)
        ).fetchone()
        return int(row[0]) if row else 0

    def run_until(self, seconds: float, follow_ups: bool = True, stop: Any = None) -> int:
        """Run the product until `seconds` of simulated time (or `stop()`); returns the
        deliveries. Without `follow_ups`, what the worker publishes fails (as before issue 13,
        when it published nothing): its jobs wait for the hourly dispatcher."""
        dispatcher, publisher = Publisher(True), Publisher(follow_ups)
        deps = Deps(
            self.settings,
            clock=self.clock.now,
            publisher_for=lambda headers: publisher,
            pacer=Pacer(clock=self.clock.monotonic, sleep=self.clock.sleep),
        )
        runs = 0
        while self.clock.monotonic() < seconds and not (stop and stop()):
            if not self.queue or self.next_dispatch <= self.queue[0][0]:
                self.clock.until(self.next_dispatch)
                jobs_service.dispatch(self.conn, dispatcher, ["cloudtrail"])
                self.next_dispatch += 3600
            else:
                at, _, message, count = heapq.heappop(self.queue)
                self.clock.until(at)
                retry = worker.process(self.conn, message, count, deps)
                runs += 1
                if retry is not None:
                    self._deliver(message, retry, count + 1)
            for sent in dispatcher.sent + publisher.sent:
                self._deliver(sent, sent.delay_s)
            dispatcher.sent.clear()
            publisher.sent.clear()
        return runs

    def close(self, owner: psycopg.Connection[Any]) -> None:
        """Unlink the account: the next scenario's dispatcher must not find its job."""
        owner.execute("DELETE FROM cao.accounts WHERE id = %s", (self.account_id,))

    def _deliver(self, message: JobMessage, after: float, count: int = 1) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (self.clock.monotonic() + after, self.seq, message, count))


def ceiling(sim: SimulatedAws, db: Any, settings: Settings, publish: bool) -> tuple[float, int]:
    sim.reset()
    settings = _our_user(sim, settings)
    with connect(db.app_url) as conn, connect(db.owner_url) as owner:
        product = Product(sim, conn, settings)
        start = product.clock.now()
        total = product.put_events(start - timedelta(hours=23), start, BACKLOG_EVENTS, 1)
        runs = product.run_until(
            48 * 3600, follow_ups=publish, stop=lambda: product.stored(owner) >= total
        )
        product.close(owner)
        hours = (product.clock.monotonic() - 300) / 3600  # from the first run (at :05)
        rate = total / hours
        how = "published with their delay" if publish else "left to the hourly dispatcher"
        print(
            f"  follow-ups {how:<30}"
            f" {total:,} events in {hours:5.2f} h: {rate:9,.0f} events/h,"
            f" {product.lookups() / hours:6,.0f} requests/h, {runs} deliveries"
        )
        return rate, product.lookups()


def quiet_cost(sim: SimulatedAws, db: Any, settings: Settings) -> float:
    sim.reset()
    settings = _our_user(sim, settings)
    with connect(db.app_url) as conn, connect(db.owner_url) as owner:
        product = Product(sim, conn, settings)
        start = product.clock.now()
        product.put_events(
            start - timedelta(days=1), start + timedelta(days=2), QUIET_PER_DAY * 3, 2
        )
        product.run_until(2 * 3600)  # the first sync and one hourly run
        before = product.lookups()
        product.run_until(26 * 3600)
        per_day = product.lookups() - before
        product.close(owner)
        print(
            f"  quiet region ({QUIET_PER_DAY} events/day): {per_day} LookupEvents requests per day"
            " (live pass hourly + late-event sweep every 3 h)"
        )
        return per_day


def busy_cost(sim: SimulatedAws, db: Any, settings: Settings) -> float:
    sim.reset()
    settings = _our_user(sim, settings)
    with connect(db.app_url) as conn, connect(db.owner_url) as owner:
        product = Product(sim, conn, settings)
        start = product.clock.now()
        product.put_events(
            start - timedelta(hours=1),
            start + timedelta(hours=BUSY_HOURS),
            BUSY_PER_HOUR * (BUSY_HOURS + 1),
            3,
        )
        product.run_until(10 * 3600)  # past the backfill; the sweep is running
        before = product.lookups()
        product.run_until(BUSY_HOURS * 3600)
        per_hour = (product.lookups() - before) / (BUSY_HOURS - 10)
        product.close(owner)
        pages = BUSY_PER_HOUR / 50
        print(
            f"  busy region ({BUSY_PER_HOUR:,} events/h = {pages:.0f} pages/h): {per_hour:.0f}"
            f" requests/h ({per_hour / pages:.2f} x the pages: live pass + sweep)"
        )
        return per_hour


def _our_user(sim: SimulatedAws, settings: Settings) -> Settings:
    key, secret = sim.create_user_with_key(OUR_ACCOUNT, "cao-service")
    return Settings(
        {
            "CAO_AWS_ENDPOINT_URL": sim.endpoint_url,
            "CAO_AWS_ACCESS_KEY_ID": key,
            "CAO_AWS_SECRET_ACCESS_KEY": secret,
        }
    )


def main() -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "LOG_LEVEL": "WARNING",
    }.items():
        os.environ[name] = value
    began = time.monotonic()
    with SimulatedAws() as sim, database() as db:
        settings = Settings({})
        print("\nOne account-region read from a backlog (the ceiling):")
        new, _ = ceiling(sim, db, settings, publish=True)
        old, _ = ceiling(sim, db, settings, publish=False)
        print(f"  ceiling raised {new / old:.1f}x")
        print("\nWhat reading costs, after the first sync:")
        quiet_cost(sim, db, settings)
        busy_cost(sim, db, settings)
    print(f"\n(bench took {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
