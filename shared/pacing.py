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

What AWS counts is when a request arrives, not when we let it go. A request on a warm
(keep-alive) connection arrives within milliseconds of its start; the first one on a new
connection arrives only after the TCP and TLS handshakes (two round trips: ~200 ms to a far
region). So even spacing alone could put the third request within one second of the arrival of a
late first one. The bucket therefore also keeps, for the last `rate` requests, the latest moment
each can have arrived (its start, or for a request on a new connection its end, reported with
`Slot.landed_by`), and starts a request only a second (plus the margin) after the one `rate`
requests before it arrived.

Throttling. The quota is shared with every other caller of the account-region (the client's own
scripts, other tools), so a ThrottlingException means that someone else took part of it. Every
HTTP attempt takes a slot (`shared.aws` retries through the bucket, never around it), and a
throttle (`throttled`) both pauses the bucket and spaces its slots further apart, twice as far
per throttle up to MAX_SLOWDOWN; the slowdown halves every SLOWDOWN_HALF_LIFE_S without a new
throttle. The bucket is the process-wide one of that account-region, so the slowdown applies to
every run reading it, not only to the call that was refused.

`CallLimits` is the other half of "when may a request go": the time a run has left. An attempt
starts only if its worst case (connect + read timeout) ends by the run's deadline, so no AWS call
outlives the run (see `shared.aws.Client`).

Clock and sleep are injectable, so tests drive the bucket with a fake clock.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

RATE_PER_S = 2.0
SPACING_MARGIN_S = 0.02
MAX_BUCKETS = 10_000  # idle buckets are dropped beyond this (a long-lived instance)
MAX_SLOWDOWN = 8.0  # after throttles, slots at most 8x further apart (0.24 requests/s at 2/s)
SLOWDOWN_HALF_LIFE_S = 30.0


@dataclass(frozen=True)
class CallLimits:
    """How long each HTTP attempt of an AWS call may take, how often it is tried, and by when
    every attempt must have ended (`deadline`, on `clock`).

    An attempt starts only if `deadline` is at least `attempt_s` (connect + read timeout) away,
    so a call that hangs is cut by its timeouts before the deadline, and a retry that no longer
    fits is not made. (The read timeout bounds each wait for data, so a server trickling bytes
    could still stretch one attempt; AWS does not, and the simulator's stall does not either.)
    Backoff between attempts: `base_backoff_s` doubling per attempt, at most `max_backoff_s`,
    with equal jitter.
    """

    deadline: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 10.0
    max_attempts: int = 4
    base_backoff_s: float = 1.0
    max_backoff_s: float = 8.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("call limits need at least one attempt and positive timeouts")

    @property
    def attempt_s(self) -> float:
        """The longest one attempt can take: connecting, then waiting for the answer."""
        return self.connect_timeout_s + self.read_timeout_s

    @property
    def latest_start(self) -> float:
        """The last moment an attempt may start."""
        return self.deadline - self.attempt_s

    def backoff(self, attempt: int) -> float:
        """The jittered wait after failed attempt number `attempt` (0-based)."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2**attempt)
        return ceiling * (0.5 + self.rng.random() / 2)


class Slot:
    """One request let go by a bucket; `landed_by` tells the bucket when it had surely reached
    AWS (its end, for a request that had to open a connection first)."""

    def __init__(self, bucket: TokenBucket, at: float, before: Slot | None) -> None:
        self._bucket = bucket
        self.at = at  # when the request may start (and, until told otherwise, arrived)
        self.before = before  # the slot `rate` requests earlier: this one starts 1 s after it

    def landed_by(self, moment: float) -> None:
        with self._bucket._lock:
            self.at = max(self.at, moment)


class TokenBucket:
    """Slots at least 1/rate apart (a token bucket of capacity one), and never more than `rate`
    arrivals within one second (see the module docstring)."""

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
        self._slowdown = 1.0  # the interval's multiplier after throttles, as of _slowdown_at
        self._slowdown_at = 0.0
        self._recent: deque[Slot] = deque(maxlen=max(1, math.floor(rate)))
        self._mine = threading.local()  # the start of the last slot each thread took

    def _factor(self, at: float) -> float:
        """The slowdown at `at`: halved every SLOWDOWN_HALF_LIFE_S since the last throttle."""
        if self._slowdown <= 1.0:
            return 1.0
        decayed = self._slowdown * 0.5 ** (max(0.0, at - self._slowdown_at) / SLOWDOWN_HALF_LIFE_S)
        return max(1.0, decayed)

    def spacing(self) -> float:
        """The current distance between slots (the interval, stretched after throttles)."""
        with self._lock:
            return self.interval * self._factor(self._clock())

    def acquire(self, deadline: float | None = None) -> bool:
        """Wait for the next slot and take it. False (nothing taken, no wait) if that slot
        starts after `deadline`."""
        return self.take(deadline) is not None

    def take(self, deadline: float | None = None) -> Slot | None:
        """`acquire`, returning the slot taken (None: none before `deadline`)."""
        with self._lock:
            now = self._clock()
            slot = now if self._next_free is None else max(now, self._next_free)
            before = self._recent[0] if len(self._recent) == self._recent.maxlen else None
            if before is not None:
                slot = max(slot, before.at + 1.0 + SPACING_MARGIN_S)
            if deadline is not None and slot > deadline:
                return None
            spacing = self.interval * self._factor(slot)
            self._next_free = slot + spacing
            taken = Slot(self, slot, before)
            self._recent.append(taken)
        while slot > now:
            self._sleep(slot - now)
            with self._lock:
                now = self._clock()
                # Another thread's request may have turned out to land later than its start
                # (it opened a connection) while this one waited: then wait for that too.
                slot = max(now, before.at + 1.0 + SPACING_MARGIN_S) if before else now
                if deadline is not None and slot > deadline:
                    if taken in self._recent:
                        self._recent.remove(taken)  # never sent: it counts for nothing
                    return None
                if slot > taken.at or now > taken.at:  # later than planned: so are the next
                    taken.at = max(taken.at, slot)
                    self._next_free = max(self._next_free or 0.0, taken.at + spacing)
        self._mine.started = now
        return taken

    def last_start(self) -> float | None:
        """When the calling thread's last slot let its request go (None: it took none): a
        caller measures how long AWS took to answer, apart from the wait for the slot."""
        started: float | None = getattr(self._mine, "started", None)
        return started

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

    def throttled(self, pause_s: float) -> None:
        """AWS refused a request of this quota: no slot for `pause_s`, and slots twice as far
        apart as they were (at most MAX_SLOWDOWN times the interval) until that decays."""
        with self._lock:
            now = self._clock()
            self._slowdown = min(MAX_SLOWDOWN, 2.0 * self._factor(now))
            self._slowdown_at = now
        self.penalize(pause_s)


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
