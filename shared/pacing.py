"""Pacing of AWS calls per (AWS account, region): today LookupEvents, at most 2 requests per
second per AWS account per region (used by functions/sync_cloudtrail/reader.py).

AWS throttles LookupEvents at 2 requests/s per account and region, whoever calls. So the bucket
is keyed by the AWS account id (not by our link: two agencies linking one account, or one
account linked twice, share it) and the region, and one Pacer serves the whole process (every
sync running in this function instance; the composition root, `shared.bootstrap`, holds it).
Across instances the queue's spread of one message per account keeps a second reader of the
same account rare; a throttle that still happens is handled by `penalize` and the caller's
reschedule.

A token bucket holding at most one token, refilled at `rate` per second: request slots are
handed out at least 1/rate apart, so no window of one second ever holds more than `rate`
requests (a bigger bucket would allow a burst of 2 right after an idle spell plus the next
refill, i.e. 3 in one second). Callers reserve a slot under a lock and sleep outside it. Slots
are spaced from when a request really starts, not from when it was meant to: a sleep that
overshoots (or a thread switch) moves the next slot too, and a small margin (SPACING_MARGIN_S)
covers the few milliseconds between taking a slot and the request leaving (signing, another
region's thread holding the GIL), so AWS never sees 3 in a second. While a backlog exists the
caller asks again as soon as its previous call returns, so with calls faster than the spacing
the achieved rate is 1 / (1/rate + margin): 1.92/s at 2/s.

Clock and sleep are injectable, so tests drive the bucket with a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

RATE_PER_S = 2.0
SPACING_MARGIN_S = 0.02
MAX_BUCKETS = 10_000  # idle buckets are dropped beyond this (a long-lived instance)


class TokenBucket:
    """Slots at least 1/rate apart (a token bucket of capacity one)."""

    def __init__(
        self,
        rate: float = RATE_PER_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate + SPACING_MARGIN_S
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free: float | None = None

    def acquire(self, deadline: float | None = None) -> bool:
        """Wait for the next slot and take it. False (nothing taken, no wait) if that slot
        starts after `deadline`."""
        with self._lock:
            now = self._clock()
            slot = now if self._next_free is None else max(now, self._next_free)
            if deadline is not None and slot > deadline:
                return False
            self._next_free = slot + self.interval
        if slot > now:
            self._sleep(slot - now)
            started = self._clock()
            if started > slot:  # overslept: the next slot counts from the real start
                with self._lock:
                    self._next_free = max(self._next_free or 0.0, started + self.interval)
        return True

    def idle(self) -> bool:
        """Whether forgetting this bucket would change nothing (its last slot has passed)."""
        with self._lock:
            return self._next_free is None or self._next_free <= self._clock()

    def penalize(self, seconds: float) -> None:
        """Hand out no slot for `seconds` (AWS throttled us: back off for everyone)."""
        with self._lock:
            until = self._clock() + max(0.0, seconds)
            if self._next_free is None or until > self._next_free:
                self._next_free = until


class Pacer:
    """Token buckets by (AWS account id, region), created on first use."""

    def __init__(
        self,
        rate: float = RATE_PER_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def bucket(self, aws_account_id: str, region: str) -> TokenBucket:
        key = (aws_account_id, region)
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._buckets = {k: b for k, b in self._buckets.items() if not b.idle()}
                found = TokenBucket(self.rate, clock=self.clock, sleep=self.sleep)
                self._buckets[key] = found
            return found
