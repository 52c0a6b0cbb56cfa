"""The reader of the CloudTrail sync: LookupEvents per region -> redacted rows + cursors.

`run` reads every region of the account from its cursor up to now, in the windows
`windows.plan` lays out, and stores the allowlisted fields of each event (`redact`). Always read
besides the account's regions:
- us-east-1, in full: IAM, CloudFront and global-endpoint STS events are recorded there, and so
  are root sign-ins and IAM-user sign-ins without an account-alias cookie;
- the sign-in events (event source signin.amazonaws.com only, one LookupAttribute) of the
  regions where AWS records an IAM user's console sign-in through the global endpoint when an
  account-alias cookie is present: us-east-2, eu-north-1, ap-southeast-2 (CloudTrail user guide,
  "AWS Management Console sign-in events"). A region the account reads in full needs no
  separate sign-in read. These reads are quiet: about one request per window.
Sign-ins through a regional sign-in endpoint, and calls to regional STS endpoints, are recorded
in that region: read when it is one of the account's regions.

Each read (a "stream": a region, or a region's sign-in events) has its own cursor, keyed by the
region, or `<region>/signin` for a sign-in read (`Stream.key`).

Concurrency: one thread per region reads AWS (paced per account and region by
`shared.pacing`; under slow AWS, that region's slice threads too: "Slow AWS" below), and the
calling thread is the only one that touches the database connection:
region threads hand it batches through a bounded queue, and it writes each batch in its own
short transaction. So there is one connection (serverless: one per invocation), no transaction
is ever open across an AWS call, and writes are serialised, which costs nothing here: a batch
commits in milliseconds while a LookupEvents page takes hundreds of them.

Two passes per region (`windows`): the live pass up to now, then, once it is done, the sweep
that re-reads what is LATE old, for late deliveries. Exactly once, per batch transaction:
`fence(conn)` first (it raises if our job lease was lost, and the transaction rolls back), then
the rows (events already stored are skipped, unique on (account_id, event_id): overlap, sweep
and reruns are harmless), then the pass's cursor. A window read completely moves the cursor to
its end; rows of a window read partly are committed with the cursor left where it was and the
window's end, how far down it was read and since when remembered, so the next run reads only
the rest of it, whatever stopped this one (budget, throttle, error, or the process dying between
two batches). These commits do not wait for the WAL flush (`defer_commit_flush`): a database
crash could lose one only together with its cursor, and the events are read again.

Requests and time: every HTTP attempt, retries included, takes a slot of the account-region's
token bucket (`shared.pacing`) and starts only if its worst case (connect + read timeout) ends
within the time budget (`time_budget_s`, less a reserve for the final commit): the clients are
bounded by `CallLimits` and retry in `shared.aws`, not in botocore. So no request outlives the
run, and a stalled connection costs one read timeout, not 6 x 30 s. When the budget is spent the
region commits what it read and the outcome says `backlog_remaining`, for the caller to queue a
delayed follow-up. A throttled attempt slows the shared bucket down; throttling that outlasts
the retries stops that region with its cursor where it was, pushes its bucket back by a
jittered delay and suggests that delay as `retry_after_s`. An expired session mid-pagination is
assumed again once (`reassume`) and the same page is asked again with the same token.

Slow AWS: parallel slices. One sequential reader gets at most 1/latency pages per second, below
the 2/s quota once a call takes more than half a second. So while reading a window, when AWS
took longer to answer its last three pages (their median) than the bucket's spacing of
requests (from the request's slot to its answer: a bucket shared with another run only delays
slots, and then the quota, not the calls, is the bottleneck), the rest of the window below
what was read, [start, oldest read], is cut into slices of about SLICE_PAGES pages (sized
from the event density read so far) and read by SLICE_WORKERS threads, newest slice first,
every request still through the same account-region bucket. The slices share their boundary seconds
(deduplicated like the overlap). The window is first recorded as read down to where the
slices start; rows of a slice are committed as it goes, with no cursor change; the window's
cursor moves only when every slice is read. Since slices are taken newest first, everything
above the newest unfinished slice is read: a run that stops (budget, throttle, error) records
the window as partly read down to that slice's oldest read event (or its top), exactly like a
sequential partial read, and the next run reads the rest; what other unfinished slices below
it had read is read again then, stored once. Quiet windows (one page) and windows AWS answers
faster than the quota allows never slice.

Nothing of an event but the redacted row outlives the page it came in: pages are dropped as
soon as they are redacted, and logs carry counts, never event content.
"""

from __future__ import annotations

import itertools
import math
import queue
import random
import statistics
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.sync_cloudtrail import windows
from functions.sync_cloudtrail.redact import Row, redact
from shared.db import Connection, tenant_tx
from shared.errors import (
    AccessDeniedError,
    AwsError,
    ExpiredCredentialsError,
    OutOfTimeError,
    ThrottledError,
)
from shared.kit.clock import Clock, utc_now
from shared.logs import get_logger
from shared.pacing import CallLimits, Pacer, TokenBucket
from shared.store import access as store

if TYPE_CHECKING:  # types only
    from shared.aws import Client, ClientFactory

LIVE, SWEEP = "live", "sweep"  # the two read passes (functions/sync_cloudtrail/windows.py)
GLOBAL_REGION = "us-east-1"
SIGNIN_REGIONS = ("us-east-2", "eu-north-1", "ap-southeast-2")
SIGNIN_SOURCE = "signin.amazonaws.com"
MAX_REGIONS = 32
PAGE_SIZE = 50  # LookupEvents' maximum
# Rows of a partly read window committed together: ~40 pages, 20 s of reading at 2/s (what a
# crash can cost), and big enough that a commit per batch stays cheap (bench/cloudtrail_insert).
BATCH_ROWS = 2000
DEFAULT_TIME_BUDGET_S = 240.0
RESERVE_S = 3.0  # left of the budget for the final commit (requests end before it starts)
THROTTLE_BACKOFF_S = 30.0
# Per HTTP attempt: LookupEvents answers in well under a second; 10 s without a byte is a stall.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 4  # per call, each through the pacer
# Parallel slices (see "Slow AWS" in the module docstring): a window whose pages AWS answers
# slower than its bucket spaces requests (the median of SLOW_PAGES answers above SLOW_FACTOR x
# the spacing) reads the
# rest of itself as slices, SLICE_WORKERS at a time, each sized for about SLICE_PAGES pages.
# 3 workers keep 2 requests/s in flight up to 1.5 s per call.
SLICE_WORKERS = 3
SLICE_PAGES = 8
MAX_SLICES = 64  # per window and run: each slice costs at least one request
SLOW_FACTOR = 1.1
SLOW_PAGES = 3  # the median of the last pages' answer times decides (one slow answer does not)

# Error classes (as the cost sync names them in run records), most severe first: the run's
# error class is the most severe of its regions'.
ACCESS_DENIED = "AccessDenied"
EXPIRED = "ExpiredToken"
THROTTLED = "Throttled"
_SEVERITY = (ACCESS_DENIED, EXPIRED, THROTTLED)


def error_class(exc: AwsError) -> str:
    """The run-record name of an AWS failure: ours for the classified ones, else AWS's code."""
    if isinstance(exc, AccessDeniedError):
        return ACCESS_DENIED
    if isinstance(exc, ExpiredCredentialsError):
        return EXPIRED
    if isinstance(exc, ThrottledError):
        return THROTTLED
    return (exc.aws_code or exc.code)[:64]


@dataclass(frozen=True)
class Stream:
    """One read of one region: all its management events, or only its sign-in events."""

    region: str
    signin_only: bool = False

    @property
    def key(self) -> str:
        """The cursor's name (and the name in outcomes and run records)."""
        return f"{self.region}/signin" if self.signin_only else self.region

    def lookup_attributes(self) -> list[dict[str, str]] | None:
        if not self.signin_only:
            return None
        return [{"AttributeKey": "EventSource", "AttributeValue": SIGNIN_SOURCE}]


@dataclass
class RegionOutcome:
    region: str  # the stream's key: a region, or `<region>/signin`
    api_calls: int = 0
    events_read: int = 0
    events_written: int = 0
    events_skipped: int = 0  # without id, time or name: unusable
    windows_completed: int = 0
    position: datetime | None = None  # the cursor after the run
    complete: bool = False  # read up to the planned end
    stopped_by: str | None = None  # "budget", "throttled", "error", "stopped"
    error_class: str | None = None
    lag_s: float | None = None
    # Event time left to read (windows.unread), when the live cursor was last written (if it
    # existed) and after this run: growing means the region is falling behind.
    unread_before_s: float | None = None
    unread_s: float | None = None


@dataclass
class Outcome:
    """What a run did, for the run record and the follow-up decision."""

    regions: list[RegionOutcome]
    events_written: int
    api_calls: dict[str, int]
    lag_s: float | None  # the worst region's lag behind now, after the run
    backlog_remaining: bool  # some region stopped before now: queue a delayed follow-up
    error_class: str | None
    retry_after_s: float | None  # after throttling: when to try again
    reassumed: bool = False

    @property
    def total_api_calls(self) -> int:
        return sum(self.api_calls.values())


@dataclass
class _Batch:
    key: str  # the stream's cursor
    pass_: str
    rows: list[Row]
    cursor: windows.Position | None  # None: rows of a slice only, the cursor stays as it is
    window_done: bool
    sweep_to: datetime | None = None  # live batches: where the sweep may move (never back)


class _Stopped(Exception):
    """Internal: the run is being abandoned (the writer failed)."""


class _ClientSource:
    """The account's client factory, assumed again at most once per run on expiry."""

    def __init__(
        self, clients: ClientFactory, reassume: Callable[[], ClientFactory] | None
    ) -> None:
        self._clients = clients
        self._reassume = reassume
        self._generation = 0
        self._lock = threading.Lock()
        self.reassumed = False

    def client(self, region: str, limits: CallLimits, bucket: TokenBucket) -> tuple[Client, int]:
        with self._lock:
            clients, generation = self._clients, self._generation
        return clients.client("cloudtrail", region, limits=limits, bucket=bucket), generation

    def renew(self, seen_generation: int) -> bool:
        """After an expiry seen on `seen_generation`: True when newer credentials exist (some
        region may have renewed them already), False when the one re-assume is used up."""
        with self._lock:
            if self._generation != seen_generation:
                return True
            if self._reassume is None or self.reassumed:
                return False
            self.reassumed = True
            self._clients = self._reassume()
            self._generation += 1
            return True


@dataclass
class _Shared:
    """What every region thread of one run shares."""

    aws_account_id: str
    source: _ClientSource
    pacer: Pacer
    limits: CallLimits
    batches: queue.Queue[_Batch | None]  # None: a region is done
    stop: threading.Event
    batch_rows: int
    rng: random.Random
    throttle_backoff_s: float
    now: datetime
    window_size: timedelta
    late: timedelta
    sweep_every: timedelta
    slice_workers: int = SLICE_WORKERS
    retry_after: list[float] = field(default_factory=list)


@dataclass
class _ClientState:
    """A region thread's client, and the credentials' generation it was made from."""

    client: Client
    generation: int


@dataclass
class _Slice:
    """A part [start, end] of a window read by one slice thread (`_RegionReader._sliced`)."""

    start: datetime
    end: datetime
    rows: list[Row] = field(default_factory=list)  # read, not yet handed to the writer
    oldest: datetime | None = None  # the oldest event time read in it
    done: bool = False


class _RegionReader:
    """One stream's live pass, then its sweep, in one thread; batches go to the writer."""

    def __init__(
        self,
        shared: _Shared,
        stream: Stream,
        plan: list[windows.Window],
        base: datetime,
        sweep: windows.Position,
    ):
        self.s = shared
        self.region = stream.region
        self.key = stream.key
        self.attributes = stream.lookup_attributes()
        self.plan = plan
        self.position = base  # the live cursor as committed (or to be created at the first write)
        self.sweep = sweep  # the sweep's cursor, moved along in memory while the live pass reads
        self.out = RegionOutcome(stream.key)
        self._lock = threading.Lock()  # the outcome's counters, shared with slice threads
        self._idle: list[_ClientState] = []  # slice threads' clients, between windows

    def _emit(self, batch: _Batch) -> None:
        while True:
            if self.s.stop.is_set():
                raise _Stopped
            try:
                self.s.batches.put(batch, timeout=0.1)
                return
            except queue.Full:
                continue

    def run(self) -> RegionOutcome:
        try:
            self._read()
        except _Stopped:
            self.out.stopped_by = "stopped"
        return self.out

    def _read(self) -> None:
        bucket = self.s.pacer.bucket(self.s.aws_account_id, self.region)
        state = _ClientState(*self.s.source.client(self.region, self.s.limits, bucket))
        if not self._pass(LIVE, self.plan, state, bucket):
            return
        sweep_plan = windows.plan(
            self.s.now,
            self.sweep,
            end=min(self.s.now - self.s.late, self.position),
            overlap=timedelta(0),
            size=self.s.window_size,
            min_span=self.s.sweep_every,
        )
        if self._pass(SWEEP, sweep_plan, state, bucket):
            self.out.complete = True

    def _cursor(self, pass_: str) -> datetime:
        return self.position if pass_ == LIVE else self.sweep.position

    def _pass(
        self, pass_: str, plan: list[windows.Window], state: _ClientState, bucket: TokenBucket
    ) -> bool:
        """Read the windows of one pass; False when the region stopped before their end."""
        return all(self._window(pass_, window, state, bucket) for window in plan)

    def _fetch(
        self, state: _ClientState, bucket: TokenBucket, params: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, str | None, AwsError | None]:
        """One page (None, with why and the error, when the region must stop here). An
        expired session is assumed again (once per run) and the same page asked again."""
        while True:
            if self.s.stop.is_set():
                raise _Stopped
            try:
                return self._lookup(state.client, params), None, None
            except OutOfTimeError:
                return None, "budget", None
            except ExpiredCredentialsError as exc:
                try:
                    renewed = self.s.source.renew(state.generation)
                except AwsError as again:  # e.g. the role was removed meanwhile
                    return None, "error", again
                if not renewed:
                    return None, "error", exc
                state.client, state.generation = self.s.source.client(
                    self.region, self.s.limits, bucket
                )
            except ThrottledError as exc:
                delay = self.s.throttle_backoff_s * (0.5 + self.s.rng.random() / 2)
                bucket.penalize(delay)
                with self._lock:
                    self.s.retry_after.append(delay)
                return None, "throttled", exc
            except AwsError as exc:
                return None, "error", exc

    def _window(
        self, pass_: str, window: windows.Window, state: _ClientState, bucket: TokenBucket
    ) -> bool:
        """Read one window to its end (False: the region stopped in it). Sequential, unless its
        pages come slower than the bucket allows: then the rest is read in slices."""
        rows: list[Row] = []
        token: str | None = None
        oldest: list[datetime] = []  # the oldest event time read in this window, if any
        read = 0  # events of this window read so far
        answered: deque[float] = deque(maxlen=SLOW_PAGES)  # AWS's answer times, last pages
        while True:
            page, why, error = self._fetch(state, bucket, self._params(window, token))
            if page is None:
                self._stop_in(pass_, window, rows, oldest, why or "error", error)
                return False
            before = len(rows)
            token = self._take(page, rows, oldest)
            read += len(rows) - before
            del page  # the raw events are not kept past their page
            if token is None:
                self._done(pass_, window, rows)
                return True
            started = bucket.last_start()
            if started is not None:
                answered.append(self.s.pacer.clock() - started)
            slow = (
                len(answered) == SLOW_PAGES
                and statistics.median(answered) > bucket.interval * SLOW_FACTOR
            )
            if slow and self.s.slice_workers > 1 and oldest and oldest[0] > window.start:
                return self._sliced(pass_, window, rows, oldest[0], read, bucket)
            if len(rows) >= self.s.batch_rows:
                self._emit(self._partial(pass_, window, rows, oldest))
                rows = []

    def _slices(self, window: windows.Window, below: datetime, read: int) -> list[_Slice]:
        """[window.start, below] cut into slices of about SLICE_PAGES pages (from the density
        of [below, window.end], read so far), oldest first; at least one per worker."""
        span = (below - window.start).total_seconds()
        seen = max(1.0, (window.end - below).total_seconds())
        pages = read / PAGE_SIZE * span / seen
        count = max(self.s.slice_workers, math.ceil(pages / SLICE_PAGES))
        count = max(1, min(count, MAX_SLICES, int(span)))
        bounds = [
            windows.whole_seconds(window.start + (below - window.start) * i / count)
            for i in range(count)
        ] + [below]
        return [_Slice(a, b) for a, b in itertools.pairwise(bounds) if b > a]

    def _sliced(  # noqa: PLR0917 - private; the window and what it gave travel together
        self,
        pass_: str,
        window: windows.Window,
        rows: list[Row],
        below: datetime,
        read: int,
        bucket: TokenBucket,
    ) -> bool:
        """The rest of `window`, [start, below], read as parallel slices (module docstring)."""
        slices = self._slices(window, below, read)
        # What the head pages read, and the window as read down to `below`, first: a run that
        # dies while the slices read resumes below it (and a first sync has its cursor).
        self._emit(self._partial(pass_, window, rows, [below]))
        rows = []
        todo = deque(reversed(slices))  # newest first
        halt = threading.Event()
        stops: list[tuple[str, AwsError | None]] = []

        def work() -> None:
            with self._lock:  # a client (and its open connection) kept from an earlier window
                state = self._idle.pop() if self._idle else None
            if state is None:
                state = _ClientState(*self.s.source.client(self.region, self.s.limits, bucket))
            try:
                while not halt.is_set():
                    with self._lock:
                        if not todo:
                            return
                        piece = todo.popleft()
                    if not self._read_slice(piece, state, bucket, pass_, halt, stops):
                        return
            finally:
                with self._lock:
                    self._idle.append(state)

        workers = min(self.s.slice_workers, len(slices))
        with ThreadPoolExecutor(workers, thread_name_prefix=f"cloudtrail-{self.key}") as pool:
            futures = [pool.submit(work) for _ in range(workers)]
            try:
                for future in futures:
                    future.result()
            finally:
                halt.set()
        unfinished = [piece for piece in slices if not piece.done]
        if not unfinished:
            self._done(pass_, window, rows)
            return True
        for piece in unfinished:  # stored now; read again by the next run, stored once
            if piece.rows:
                self._emit(_Batch(self.key, pass_, piece.rows, None, False))
        top = unfinished[-1]  # everything above it is read
        read_to = top.oldest if top.oldest is not None else top.end
        self._emit(self._partial(pass_, window, rows, [read_to]))
        why, error = stops[0] if stops else ("stopped", None)
        self.out.stopped_by = why
        if error is not None:
            self.out.error_class = error_class(error)
        return False

    def _read_slice(  # noqa: PLR0917 - private
        self,
        piece: _Slice,
        state: _ClientState,
        bucket: TokenBucket,
        pass_: str,
        halt: threading.Event,
        stops: list[tuple[str, AwsError | None]],
    ) -> bool:
        """Read one slice to its end (True), or stop every slice of the window (False)."""
        window = windows.Window(piece.start, piece.end, piece.end, piece.end)
        token: str | None = None
        oldest: list[datetime] = []
        while True:
            if halt.is_set():
                return False
            page, why, error = self._fetch(state, bucket, self._params(window, token))
            if page is None:
                with self._lock:
                    stops.append((why or "error", error))
                halt.set()
                return False
            token = self._take(page, piece.rows, oldest)
            del page
            if oldest:
                piece.oldest = oldest[0]
            if token is None:
                piece.done = True
            if len(piece.rows) >= self.s.batch_rows or (piece.done and piece.rows):
                self._emit(_Batch(self.key, pass_, piece.rows, None, False))
                piece.rows = []
            if piece.done:
                return True

    def _params(self, window: windows.Window, token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "StartTime": window.start,
            "EndTime": window.end,
            "MaxResults": PAGE_SIZE,
        }
        if self.attributes is not None:
            params["LookupAttributes"] = self.attributes
        if token is not None:
            params["NextToken"] = token  # with otherwise identical parameters, as AWS requires
        return params

    def _lookup(self, client: Client, params: dict[str, Any]) -> dict[str, Any]:
        """One LookupEvents call; every HTTP attempt it made counts as an API call."""
        sent = client.calls
        try:
            page: dict[str, Any] = client.lookup_events(**params)
        finally:
            with self._lock:
                self.out.api_calls += client.calls - sent
        return page

    def _done(self, pass_: str, window: windows.Window, rows: list[Row]) -> None:
        """A window read to its end: its rows, and its pass's cursor at its end."""
        if pass_ == LIVE:
            # Never backwards: with a long overlap a first window can end before it.
            self.position = max(self.position, window.cursor_to)
            sweep_to = None
            if self.sweep.partial_end is None:
                moved = windows.sweep_after(self.sweep.position, window, self.s.late)
                self.sweep = windows.Position(moved)
                sweep_to = moved
            cursor = windows.Position(self.position)
            self._emit(_Batch(self.key, pass_, rows, cursor, True, sweep_to))
        else:
            self.sweep = windows.Position(max(self.sweep.position, window.cursor_to))
            self._emit(_Batch(self.key, pass_, rows, self.sweep, True))
        self.out.windows_completed += 1

    def _take(self, page: dict[str, Any], rows: list[Row], oldest: list[datetime]) -> str | None:
        skipped = taken = 0
        for item in page.get("Events") or ():
            at = item.get("EventTime")
            if isinstance(at, datetime) and at.tzinfo is not None:
                at = windows.whole_seconds(at)
                if not oldest or at < oldest[0]:
                    oldest[:] = [at]
            row = redact(item, self.s.aws_account_id, self.region)
            if row is None:
                skipped += 1
            else:
                rows.append(row)
                taken += 1
        with self._lock:
            self.out.events_skipped += skipped
            self.out.events_read += taken
        token = page.get("NextToken")
        return token if isinstance(token, str) and token else None

    def _partial(
        self, pass_: str, window: windows.Window, rows: list[Row], oldest: list[datetime]
    ) -> _Batch:
        """Rows of a window read down to `oldest` so far; its pass's cursor remembers that."""
        position = self._cursor(pass_)
        if window.cursor_to > position and oldest:
            cursor = windows.Position(position, window.cursor_to, oldest[0], window.read_since)
        else:  # nothing to remember: the window lies below the cursor
            cursor = windows.Position(position)
        if pass_ == SWEEP:
            self.sweep = cursor
        return _Batch(self.key, pass_, rows, cursor, False)

    def _stop_in(  # noqa: PLR0917 - private; the window and what it gave travel together
        self,
        pass_: str,
        window: windows.Window,
        rows: list[Row],
        oldest: list[datetime],
        why: str,
        error: AwsError | None = None,
    ) -> None:
        """Commit what the unfinished window gave (cursor unchanged) and stop this region."""
        if oldest:
            self._emit(self._partial(pass_, window, rows, oldest))
        self.out.stopped_by = why
        if error is not None:
            self.out.error_class = error_class(error)


def streams(regions: Sequence[str], signin_regions: Sequence[str] = SIGNIN_REGIONS) -> list[Stream]:
    """What a run reads: us-east-1 and the account's regions in full, and the sign-in events
    of the documented sign-in regions not among them (see the module docstring)."""
    ordered = [GLOBAL_REGION]
    for region in regions:
        if region not in ordered:
            ordered.append(region)
    if len(ordered) > MAX_REGIONS:
        raise ValueError(f"at most {MAX_REGIONS} regions per account")
    signin = [Stream(r, signin_only=True) for r in signin_regions if r not in ordered]
    return [Stream(r) for r in ordered] + signin


@dataclass(frozen=True)
class ReadOptions:
    """One run's account, its AWS access, and how to read it (every `run` argument but conn).

    `clients` are already assumed into the account; `reassume` assumes the role again (at
    most once per run, on an expired session). `fence` is called inside every writing
    transaction and raises when the lease is lost (the exception propagates; nothing of that
    transaction is kept). `pacer` holds the clock and sleep of the pacing (the worker's is the
    process-wide pacer on the real clock); the time budget is measured on the pacer's clock.
    """

    agency_id: uuid.UUID
    account_id: uuid.UUID
    aws_account_id: str
    clients: ClientFactory
    regions: Sequence[str]
    fence: Callable[[Connection], None]
    pacer: Pacer
    clock: Clock = utc_now
    time_budget_s: float = DEFAULT_TIME_BUDGET_S
    reassume: Callable[[], ClientFactory] | None = None
    backfill_days: int | None = None
    retention_days: int | None = None
    rng: random.Random | None = None
    window_size: timedelta = windows.WINDOW
    overlap: timedelta = windows.OVERLAP
    late: timedelta = windows.LATE
    sweep_every: timedelta = windows.SWEEP_EVERY
    batch_rows: int = BATCH_ROWS
    reserve_s: float = RESERVE_S
    throttle_backoff_s: float = THROTTLE_BACKOFF_S
    connect_timeout_s: float = CONNECT_TIMEOUT_S
    read_timeout_s: float = READ_TIMEOUT_S
    max_attempts: int = MAX_ATTEMPTS
    signin_regions: Sequence[str] = SIGNIN_REGIONS
    slice_workers: int = SLICE_WORKERS  # 1: never read a window in parallel slices


def _position(cursor: store.Cursor | None) -> windows.Position | None:
    if cursor is None:
        return None
    return windows.Position(
        cursor.position, cursor.partial_end, cursor.partial_from, cursor.partial_since
    )


def _reader(
    o: ReadOptions,
    shared: _Shared,
    stream: Stream,
    cursors: dict[tuple[str, str], store.Cursor],
    now: datetime,
) -> _RegionReader:
    """A stream's reader, its live pass planned from its cursors."""
    live = _position(cursors.get((stream.key, LIVE)))
    plan = windows.plan(
        now,
        live,
        backfill_days=o.backfill_days,
        retention_days=o.retention_days,
        overlap=o.overlap,
        size=o.window_size,
    )
    base = live.position if live else windows.first_position(now, o.backfill_days, o.retention_days)
    # No sweep yet (a first sync, or a cursor older than the sweep): it starts where this run's
    # live pass starts, and follows it while that reads hours after the fact.
    sweep = _position(cursors.get((stream.key, SWEEP))) or windows.Position(
        plan[0].start if plan else base
    )
    reader = _RegionReader(shared, stream, plan, base, sweep)
    cursor = cursors.get((stream.key, LIVE))
    if cursor is not None:
        before = windows.unread(_position(cursor) or windows.Position(base), cursor.updated_at)
        reader.out.unread_before_s = before.total_seconds()
    return reader


def _limits(o: ReadOptions, rng: random.Random) -> CallLimits:
    """Every attempt of the run's calls: paced, and ending before the budget (less reserve)."""
    return CallLimits(
        deadline=o.pacer.clock() + o.time_budget_s - o.reserve_s,
        clock=o.pacer.clock,
        sleep=o.pacer.sleep,
        connect_timeout_s=o.connect_timeout_s,
        read_timeout_s=o.read_timeout_s,
        max_attempts=o.max_attempts,
        rng=rng,
    )


def _move_cursors(conn: Connection, o: ReadOptions, batch: _Batch, c: windows.Position) -> None:
    """The batch's pass cursor (and, for a live window, the sweep's when it moves along)."""
    at = o.clock()
    store.set_cursor(
        conn,
        o.agency_id,
        o.account_id,
        batch.key,
        pass_=batch.pass_,
        position=c.position,
        partial_end=c.partial_end,
        partial_from=c.partial_from,
        partial_since=c.partial_since,
        now=at,
    )
    if batch.sweep_to is not None:
        store.advance_cursor(
            conn,
            o.agency_id,
            o.account_id,
            batch.key,
            pass_=SWEEP,
            position=batch.sweep_to,
            now=at,
        )


def run(conn: Connection, options: ReadOptions) -> Outcome:
    """Sync one account's CloudTrail events; see the module docstring and `ReadOptions`."""
    o = options
    reads = streams(o.regions, o.signin_regions)
    now = windows.whole_seconds(o.clock())
    rng = o.rng or random.Random()  # noqa: S311 - jitter, not cryptography
    limits = _limits(o, rng)

    # Plan each region from its cursors (a short read transaction, before any AWS call).
    shared = _Shared(
        aws_account_id=o.aws_account_id,
        source=_ClientSource(o.clients, o.reassume),
        pacer=o.pacer,
        limits=limits,
        batches=queue.Queue(maxsize=2 * len(reads) * max(1, o.slice_workers)),
        stop=threading.Event(),
        batch_rows=max(1, min(o.batch_rows, store.MAX_BATCH_ROWS)),
        rng=rng,
        throttle_backoff_s=o.throttle_backoff_s,
        now=now,
        window_size=o.window_size,
        late=o.late,
        sweep_every=o.sweep_every,
        slice_workers=max(1, o.slice_workers),
    )
    with tenant_tx(conn, o.agency_id):
        cursors = store.get_cursors(conn, o.account_id)
    readers = [_reader(o, shared, stream, cursors, now) for stream in reads]

    keys = [stream.key for stream in reads]
    written = {key: 0 for key in keys}
    committed: dict[str, windows.Position] = {
        key: p for key in keys if (p := _position(cursors.get((key, LIVE))))
    }
    positions: dict[str, datetime | None] = {
        key: (c.position if (c := cursors.get((key, LIVE))) else None) for key in keys
    }

    def write(batch: _Batch) -> None:
        c = batch.cursor  # None: a slice's rows; the cursor moves when its window is read
        with tenant_tx(conn, o.agency_id):
            o.fence(conn)
            store.defer_commit_flush(conn)  # safe: rows and cursor are lost together or not
            new = store.insert_events(conn, o.agency_id, o.account_id, batch.rows)
            if c is not None:
                _move_cursors(conn, o, batch, c)
        written[batch.key] += new
        if c is not None and batch.pass_ == LIVE:
            positions[batch.key] = c.position
            committed[batch.key] = c

    def read(reader: _RegionReader) -> RegionOutcome:
        try:
            return reader.run()
        finally:  # tells the writer this region is done: no polling for it
            while not shared.stop.is_set():
                try:
                    shared.batches.put(None, timeout=0.1)
                    break
                except queue.Full:
                    continue

    with ThreadPoolExecutor(max_workers=len(readers), thread_name_prefix="cloudtrail") as pool:
        futures: list[Future[RegionOutcome]] = [pool.submit(read, r) for r in readers]
        try:
            running = len(readers)
            while running:
                batch = shared.batches.get()
                if batch is None:
                    running -= 1
                else:
                    write(batch)
        except BaseException:
            shared.stop.set()  # region threads stop at their next step; nothing more is written
            raise
        results = [f.result() for f in futures]  # a bug in a region thread surfaces here

    return _outcome(results, written, positions, committed, now, shared)


def _outcome(  # noqa: PLR0917 - private; what the run gathered, by kind
    results: list[RegionOutcome],
    written: dict[str, int],
    positions: dict[str, datetime | None],
    committed: dict[str, windows.Position],
    now: datetime,
    shared: _Shared,
) -> Outcome:
    lags: list[float] = []
    for result in results:
        if (cursor := committed.get(result.region)) is not None:
            result.unread_s = windows.unread(cursor, now).total_seconds()
        result.events_written = written[result.region]
        result.position = positions[result.region]
        lag = windows.lag(now, result.position)
        result.lag_s = None if lag is None else lag.total_seconds()
        if result.lag_s is not None:
            lags.append(result.lag_s)
    errors = {r.error_class for r in results if r.error_class}
    error_class = next((e for e in _SEVERITY if e in errors), next(iter(sorted(errors)), None))
    outcome = Outcome(
        regions=results,
        events_written=sum(written.values()),
        api_calls={r.region: r.api_calls for r in results},
        lag_s=max(lags) if len(lags) == len(results) else None,
        backlog_remaining=any(not r.complete for r in results),
        error_class=error_class,
        retry_after_s=max(shared.retry_after) if shared.retry_after else None,
        reassumed=shared.source.reassumed,
    )
    get_logger().info(
        "cloudtrail sync finished",
        extra={
            "events_written": outcome.events_written,
            "api_calls": outcome.api_calls,
            "lag_s": outcome.lag_s,
            "backlog_remaining": outcome.backlog_remaining,
            "error_class": outcome.error_class,
            "stopped_by": {r.region: r.stopped_by for r in results if r.stopped_by},
        },
    )
    return outcome
