"""Test helpers of the CloudTrail sync: a fake clock, LookupEvents items, canary scans."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

# A fixed "now" for everything that runs on the fake clock.
NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A clock shared by threads: `sleep` wakes a thread at the time it asked for.

    Each thread remembers the time it last read; its sleep moves the clock to (at least) that
    time plus the delay, as real sleeping threads would see it. `now()` is the wall clock,
    `monotonic()` the pacing clock, on the same time line.
    """

    def __init__(self, start: datetime = NOW) -> None:
        self.start = start
        self._t = 0.0
        self._lock = threading.Lock()
        self._seen = threading.local()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        with self._lock:
            t = self._t
        self._seen.t = t
        return t

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.monotonic())

    def sleep(self, seconds: float) -> None:
        seen = getattr(self._seen, "t", None)
        with self._lock:
            self.sleeps.append(seconds)
            base = self._t if seen is None else seen
            self._t = max(self._t, base + seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds


def lookup_item(record: dict[str, Any]) -> dict[str, Any]:
    """A CloudTrail record as LookupEvents returns it through botocore."""
    return {
        "EventId": record["eventID"],
        "EventName": record["eventName"],
        "EventTime": datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00")),
        "EventSource": record["eventSource"],
        "CloudTrailEvent": json.dumps(record),
    }


def tables_containing(owner: psycopg.Connection[Any], needle: str) -> list[str]:
    """Every cao table with a row whose text form (all columns) contains `needle`, as owner."""
    tables = [
        r[0] for r in owner.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'cao'")
    ]
    found = []
    for table in tables:
        query = sql.SQL("SELECT 1 FROM cao.{} AS r WHERE strpos(r::text, %s) > 0 LIMIT 1").format(
            sql.Identifier(table)
        )
        if owner.execute(query, (needle,)).fetchone():
            found.append(table)
    return found
