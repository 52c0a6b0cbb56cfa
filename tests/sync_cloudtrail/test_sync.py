"""The CloudTrail reader (LookupEvents engine) against the simulated AWS and a real Postgres.

Time runs on a fake clock (`clock`): pacing sleeps advance it instead of waiting, and the time
budget is measured on it. The simulator answers LookupEvents for the assumed account.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import botocore.retries.standard as standard
import psycopg
import pytest

from devstack.simaws import SimulatedAws
from devstack.trailgen import make_events
from functions.sync_cloudtrail import reader
from shared import aws
from shared.errors import LeaseLostError
from shared.pacing import Pacer, Slot, TokenBucket
from shared.store import access
from tests.sync_cloudtrail.conftest import Linked
from tests.sync_cloudtrail.helpers import NOW, FakeClock, tables_containing

CANARY = "CANARY-s3cr3t-value-4b1d"
ATTEMPT_S = 2.5
DAY = timedelta(days=1)


def no_fence(conn: Any) -> None:
    return None


def do_sync(
    conn: psycopg.Connection[Any],
    linked: Linked,
    clock: FakeClock,
    pacer: Pacer,
    *,
    regions: tuple[str, ...] = (),
    fence: Callable[[Any], None] = no_fence,
    clients: aws.ClientFactory | None = None,
    reassume: Callable[[], aws.ClientFactory] | None = None,
    **kwargs: Any,
) -> reader.Outcome:
    kwargs.setdefault("time_budget_s", 10_000.0)
    kwargs.setdefault("reserve_s", 0.0)
    # A request may start only if its worst case (connect + read timeout: ATTEMPT_S here) ends
    # within the budget; budgets below add ATTEMPT_S to the reading time they mean.
    kwargs.setdefault("connect_timeout_s", 0.5)
    kwargs.setdefault("read_timeout_s", ATTEMPT_S - 0.5)
    # Only the regions a test names (tests of the sign-in regions pass reader.SIGNIN_REGIONS).
    kwargs.setdefault("signin_regions", ())
    kwargs.setdefault("backfill_days", 2)
    kwargs.setdefault("window_size", timedelta(hours=12))
    options = reader.ReadOptions(
        agency_id=linked.agency.id,
        account_id=linked.account_id,
        aws_account_id=linked.aws_account_id,
        clients=clients or linked.assume(),
        regions=regions,
        fence=fence,
        clock=clock.now,
        pacer=pacer,
        reassume=reassume or linked.assume,
        **kwargs,
    )
    return reader.run(conn, options)


def stored(owner: psycopg.Connection[Any], account_id: uuid.UUID) -> dict[str, tuple[Any, ...]]:
    rows = owner.execute(
        "SELECT event_id, region, event_time, event_name, principal_arn, principal_name,"
        " source_ip, is_vendor FROM cao.access_events WHERE account_id = %s",
        (account_id,),
    ).fetchall()
    return {r[0]: r for r in rows}


def cursors(owner: psycopg.Connection[Any], account_id: uuid.UUID) -> dict[str, tuple[Any, ...]]:
    rows = owner.execute(
        "SELECT region, position, partial_end FROM cao.sync_cursors"
        " WHERE account_id = %s AND pass = 'live'",
        (account_id,),
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def seed(
    sim: SimulatedAws,
    linked: Linked,
    region: str,
    start: datetime,
    end: datetime,
    count: int,
    seed: int,
    planted: str | None = None,
) -> list[dict[str, Any]]:
    events = make_events(linked.aws_account_id, region, start, end, count, seed, planted)
    sim.put_events(linked.aws_account_id, region, events)
    return events


def lookups(sim: SimulatedAws, region: str | None = None) -> list[dict[str, Any]]:
    return [
        c.params
        for c in sim.calls
        if c.operation == "LookupEvents" and (region is None or c.region == region)
    ]


# ---- personal data ---------------------------------------------------------------------------


def test_after_a_sync_planted_secrets_are_nowhere_in_the_database_or_the_logs(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    us = seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW, 300, 1, CANARY)
    eu = seed(fresh_sim, linked, "eu-west-1", NOW - DAY, NOW, 120, 2, CANARY)
    assert sum(CANARY in json.dumps(e) for e in us + eu) >= 8

    outcome = do_sync(app_conn, linked, clock, pacer, regions=("eu-west-1",))

    assert outcome.error_class is None and not outcome.backlog_remaining
    assert outcome.events_written == 420
    assert set(outcome.api_calls) == {"us-east-1", "eu-west-1"}  # us-east-1 always
    rows = stored(owner_conn, linked.account_id)
    assert set(rows) == {e["eventID"] for e in us + eu}
    assert tables_containing(owner_conn, CANARY) == []
    assert caplog.records  # the sync logged its summary...
    assert CANARY not in caplog.text + repr([r.__dict__ for r in caplog.records])  # ...not this
    # What is kept is what the allowlist names, faithfully.
    by_id = {e["eventID"]: e for e in us + eu}
    for event_id, row in rows.items():
        event = by_id[event_id]
        assert row[1] == event["awsRegion"]
        assert row[3] == event["eventName"]
        assert row[6] == event["sourceIPAddress"]
        assert row[4] == event["userIdentity"].get("arn")
    names = {r[5] for r in rows.values()}
    assert "root" in names and "config.amazonaws.com" in names | {"cloudformation.amazonaws.com"}
    vendor = {r[0] for r in rows.values() if r[7]}
    ours = {
        e["eventID"]
        for e in us + eu
        if e["userIdentity"].get("type") == "AssumedRole"
        and e["userIdentity"]["arn"].rsplit("/", 1)[-1].startswith(aws.SESSION_PREFIX)
    }
    assert vendor == ours and vendor


# ---- where AWS records sign-ins ------------------------------------------------------------


def _signin(event_id: str, region: str, at: datetime, user: str) -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "eventID": event_id,
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "eventType": "AwsConsoleSignIn",
        "awsRegion": region,
        "sourceIPAddress": "192.0.2.10",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLEUSERID0001",
            "arn": f"arn:aws:iam::210987654321:user/{user}",
            "userName": user,
        },
        "responseElements": {"ConsoleLogin": "Success"},
    }


def test_console_sign_ins_are_read_in_the_regions_aws_records_them(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    # An IAM user's sign-in through the global endpoint lands in us-east-2, eu-north-1 or
    # ap-southeast-2 (with an account-alias cookie); a root sign-in in us-east-1.
    account = linked.aws_account_id
    signins = {
        region: _signin(f"signin-{i}", region, NOW - timedelta(hours=i + 1), f"user{i}")
        for i, region in enumerate(("us-east-2", "eu-north-1", "ap-southeast-2"))
    }
    for region, event in signins.items():
        fresh_sim.put_events(account, region, [event])
    root = _signin("signin-root", "us-east-1", NOW - timedelta(hours=5), "root")
    root["userIdentity"] = {"type": "Root", "arn": f"arn:aws:iam::{account}:root"}
    # Identity Center users and other accounts have no ARN: AWS's ids name them (item 6).
    center = _signin("signin-center", "us-east-2", NOW - timedelta(hours=6), "-")
    center["eventName"] = "CredentialChallenge"
    center["userIdentity"] = {
        "type": "IdentityCenterUser",
        "accountId": account,
        "onBehalfOf": {"userId": "94d00cd8-e9e6-4810", "identityStoreArn": "arn:x"},
        "credentialId": "credential-id-never-stored",
    }
    fresh_sim.put_events(account, "us-east-2", [center])
    other = _signin("assume-other", "us-east-1", NOW - timedelta(hours=7), "-")
    other.update(eventSource="sts.amazonaws.com", eventName="AssumeRole")
    other["userIdentity"] = {
        "type": "AWSAccount",
        "principalId": "AIDAJ45Q7YFFAREXAMPLE",
        "accountId": "777788889999",
    }
    fresh_sim.put_events(account, "us-east-1", [root, other])
    # The rest of a sign-in region is not read unless the account reads that region.
    noise = seed(fresh_sim, linked, "us-east-2", NOW - DAY, NOW, 40, 41)

    outcome = do_sync(app_conn, linked, clock, pacer, signin_regions=reader.SIGNIN_REGIONS)

    assert outcome.error_class is None and not outcome.backlog_remaining
    rows = stored(owner_conn, linked.account_id)
    expected = {"signin-root", "signin-center", "assume-other"}
    assert set(rows) == expected | {e["eventID"] for e in signins.values()}
    assert {rows[e["eventID"]][1] for e in signins.values()} == set(signins)  # their region
    assert rows["signin-0"][5] == "user0" and rows["signin-root"][5] == "root"
    assert rows["signin-center"][4:6] == (None, "94d00cd8-e9e6-4810")
    assert rows["assume-other"][4:6] == (None, "777788889999")
    assert tables_containing(owner_conn, "credential-id-never-stored") == []
    for region in signins:
        calls = lookups(fresh_sim, region)
        assert calls and all(
            c["LookupAttributes"]
            == [{"AttributeKey": "EventSource", "AttributeValue": "signin.amazonaws.com"}]
            for c in calls
        )
        assert outcome.api_calls[f"{region}/signin"] == len(calls) == 4  # 2 days, 12 h windows
    assert set(cursors(owner_conn, linked.account_id)) == {
        "us-east-1",
        "us-east-2/signin",
        "eu-north-1/signin",
        "ap-southeast-2/signin",
    }

    # An account that reads us-east-2 reads all of it there, sign-ins included, once.
    clock.advance(3600)
    again = do_sync(
        app_conn,
        linked,
        clock,
        pacer,
        regions=("us-east-2",),
        signin_regions=reader.SIGNIN_REGIONS,
    )
    assert "us-east-2/signin" not in again.api_calls and "us-east-2" in again.api_calls
    assert {e["eventID"] for e in noise} <= set(stored(owner_conn, linked.account_id))
    assert not any("LookupAttributes" in c for c in lookups(fresh_sim, "us-east-2")[4:])


# ---- incremental, exactly once -------------------------------------------------------------


def test_late_events_inside_the_overlap_are_read_and_rereads_duplicate_nothing(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    first = seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW - timedelta(minutes=20), 200, 3)
    assert do_sync(app_conn, linked, clock, pacer).events_written == 200
    position = cursors(owner_conn, linked.account_id)["us-east-1"][0]
    assert position == NOW.replace(microsecond=0)

    # Events that happened before the cursor but were delivered late, then new ones.
    late = seed(fresh_sim, linked, "us-east-1", NOW - timedelta(minutes=12), NOW, 30, 4)
    clock.advance(3600)
    new = seed(fresh_sim, linked, "us-east-1", NOW, clock.now(), 40, 5)
    outcome = do_sync(app_conn, linked, clock, pacer)

    assert outcome.events_written == 70  # the re-read overlap counted nothing twice
    rows = stored(owner_conn, linked.account_id)
    assert set(rows) == {e["eventID"] for e in first + late + new}
    # The second run started at the cursor minus 15 minutes.
    starts = [p["StartTime"] for p in lookups(fresh_sim)]
    assert min(starts[-2:]) == pytest.approx((position - timedelta(minutes=15)).timestamp())

    again = do_sync(app_conn, linked, clock, pacer)
    assert again.events_written == 0
    assert len(stored(owner_conn, linked.account_id)) == 270


def test_a_backlog_is_worked_off_over_several_runs(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    events = seed(fresh_sim, linked, "us-east-1", NOW - 14 * DAY, NOW, 2500, 6)
    runs: list[reader.Outcome] = []
    while not runs or runs[-1].backlog_remaining:
        runs.append(
            do_sync(
                app_conn, linked, clock, pacer, backfill_days=None, time_budget_s=8.0 + ATTEMPT_S
            )
        )
        assert len(runs) < 40
        clock.advance(120)  # the delayed follow-up
    assert len(runs) > 3
    assert all(r.error_class is None for r in runs)
    # Each run stayed within its budget: 8 s at 2 requests/s.
    assert all(sum(r.api_calls.values()) <= 17 for r in runs)
    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}
    assert sum(r.events_written for r in runs) == 2500
    assert runs[-1].lag_s == 0
    # Lag fell run after run.
    lags = [r.lag_s for r in runs if r.lag_s is not None]
    assert lags == sorted(lags, reverse=True)


def test_a_run_stopped_mid_window_loses_nothing_and_the_next_reads_only_the_rest(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    events = seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW, 1000, 7)  # 20 pages
    one_window: dict[str, Any] = {"backfill_days": 1, "window_size": 2 * DAY, "batch_rows": 100}
    first = do_sync(app_conn, linked, clock, pacer, time_budget_s=2.65 + ATTEMPT_S, **one_window)

    assert first.backlog_remaining and first.api_calls == {"us-east-1": 6}
    assert first.events_written == 300  # the newest 6 pages, committed
    position, partial_end = cursors(owner_conn, linked.account_id)["us-east-1"]
    assert position == NOW - DAY  # the cursor did not move...
    assert partial_end == NOW  # ...and it remembers which window is half read

    second = do_sync(app_conn, linked, clock, pacer, **one_window)
    assert not second.backlog_remaining
    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}
    assert first.events_written + second.events_written == 1000
    # It asked only for what was missing: below the oldest stored event, then the new part.
    oldest = min(
        datetime.fromisoformat(e["eventTime"].replace("Z", "+00:00"))
        for e in events[-300:]  # newest first: the 300 newest were stored
    )
    resumed = lookups(fresh_sim)[6]
    assert resumed["EndTime"] == pytest.approx(oldest.timestamp())
    assert "NextToken" not in resumed
    assert sum(second.api_calls.values()) <= 16  # 14 pages for 700 events + the new window
    position, partial_end = cursors(owner_conn, linked.account_id)["us-east-1"]
    assert partial_end is None and position >= NOW


def test_a_crash_between_insert_and_commit_leaves_the_cursor_and_rows_as_they_were(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW - timedelta(hours=1), 150, 8)
    real_set_cursor = access.set_cursor

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("killed between insert and commit")

    monkeypatch.setattr(access, "set_cursor", crash)
    with pytest.raises(RuntimeError, match="killed"):
        do_sync(app_conn, linked, clock, pacer)
    assert stored(owner_conn, linked.account_id) == {}  # the inserted rows rolled back
    assert cursors(owner_conn, linked.account_id) == {}

    monkeypatch.setattr(access, "set_cursor", real_set_cursor)
    outcome = do_sync(app_conn, linked, clock, pacer)
    assert outcome.events_written == 150
    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}


def test_a_fence_that_raises_rolls_back_the_batch_and_stops_the_run(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    seed(fresh_sim, linked, "us-east-1", NOW - 2 * DAY, NOW, 300, 9)
    assert do_sync(app_conn, linked, clock, pacer).events_written == 300
    before = cursors(owner_conn, linked.account_id)
    clock.advance(7200)
    seed(fresh_sim, linked, "us-east-1", NOW, clock.now(), 80, 10)

    def lost(conn: Any) -> None:
        raise LeaseLostError("the job's lease was taken over by another delivery")

    with pytest.raises(LeaseLostError):
        do_sync(app_conn, linked, clock, pacer, fence=lost, regions=("eu-west-1",))
    assert cursors(owner_conn, linked.account_id) == before
    assert len(stored(owner_conn, linked.account_id)) == 300


# ---- AWS trouble -----------------------------------------------------------------------------


@pytest.fixture
def no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's retry backoff sleeps for real; tests do not wait for it."""
    monkeypatch.setattr(standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0.0)


def test_throttling_backs_off_with_jitter_and_leaves_the_cursor_unchanged(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
    no_retry_sleep: None,
) -> None:
    seed(fresh_sim, linked, "us-east-1", NOW - 2 * DAY, NOW, 100, 11)
    do_sync(app_conn, linked, clock, pacer)
    before = cursors(owner_conn, linked.account_id)
    clock.advance(3600)
    later = seed(fresh_sim, linked, "us-east-1", NOW, clock.now(), 60, 12)

    # Every attempt of the call (MAX_ATTEMPTS, each through the pacer) is throttled.
    fresh_sim.faults.add(
        "cloudtrail", "LookupEvents", "ThrottlingException", times=reader.MAX_ATTEMPTS
    )
    throttled = do_sync(app_conn, linked, clock, pacer, rng=random.Random(1))

    assert fresh_sim.faults.pending() == []
    assert throttled.error_class == "Throttled" and throttled.backlog_remaining
    assert throttled.retry_after_s is not None
    assert 15.0 <= throttled.retry_after_s <= 30.0  # 30 s with equal jitter
    assert cursors(owner_conn, linked.account_id) == before
    # The account-region's bucket backs off too: its next request waits the delay out.
    started = clock.monotonic()
    pacer.bucket(linked.aws_account_id, "us-east-1").acquire()
    assert clock.monotonic() - started == pytest.approx(throttled.retry_after_s, abs=0.01)
    # Another draw, another delay: jitter.
    fresh_sim.faults.add(
        "cloudtrail", "LookupEvents", "ThrottlingException", times=reader.MAX_ATTEMPTS
    )
    other = do_sync(app_conn, linked, clock, pacer, rng=random.Random(2))
    assert other.retry_after_s != throttled.retry_after_s

    recovered = do_sync(app_conn, linked, clock, pacer)
    assert recovered.error_class is None
    assert {e["eventID"] for e in later} <= set(stored(owner_conn, linked.account_id))


class _Hooked:
    """A client factory whose clients call `hook(operation)` before every request."""

    def __init__(self, inner: aws.ClientFactory, hook: Callable[[str], None]) -> None:
        self.inner = inner
        self.hook = hook

    def client(self, service: str, region: str = "us-east-1", **kwargs: Any) -> aws.Client:
        made = self.inner.client(service, region, **kwargs)
        made._on_call = self.hook
        return made


def test_an_expired_session_mid_pagination_is_assumed_again_once_and_the_page_reread(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    events = seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW, 200, 13)  # 4 pages
    count = {"calls": 0, "assumes": 0}

    def expire_second_page(operation: str) -> None:
        count["calls"] += 1
        if count["calls"] == 2:
            fresh_sim.faults.add("cloudtrail", "LookupEvents", "ExpiredTokenException")

    def reassume() -> Any:
        count["assumes"] += 1
        return _Hooked(linked.assume(), lambda op: None)

    outcome = do_sync(
        app_conn,
        linked,
        clock,
        pacer,
        clients=_Hooked(linked.assume(), expire_second_page),  # type: ignore[arg-type]
        reassume=reassume,
        backfill_days=1,
        window_size=2 * DAY,
    )
    assert outcome.error_class is None and outcome.reassumed and count["assumes"] == 1
    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}
    calls = lookups(fresh_sim)
    assert len(calls) == 5  # 4 pages + the one refused
    assert calls[1] == calls[2] and "NextToken" in calls[1]  # same page, same token


def test_a_second_expiry_after_the_one_reassume_stops_with_the_cursor_unchanged(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW, 200, 14)
    fresh_sim.faults.add("cloudtrail", "LookupEvents", "ExpiredTokenException", times=2)
    outcome = do_sync(app_conn, linked, clock, pacer, backfill_days=1, window_size=2 * DAY)
    assert outcome.error_class == "ExpiredToken" and outcome.reassumed
    assert outcome.backlog_remaining
    assert cursors(owner_conn, linked.account_id) == {}
    assert stored(owner_conn, linked.account_id) == {}


class _RecordingBucket(TokenBucket):
    """Remembers the slot of every request it let through (one thread per bucket here)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots: list[float] = []

    def take(self, deadline: float | None = None) -> Slot | None:
        taken = super().take(deadline)
        if taken is not None:
            self.slots.append(taken.at)
        return taken


class _RecordingPacer(Pacer):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock.monotonic, sleep=clock.sleep)
        self.made: dict[str, _RecordingBucket] = {}

    def bucket(self, aws_account_id: str, region: str) -> TokenBucket:
        if region not in self.made:
            self.made[region] = _RecordingBucket(self.rate, clock=self.clock, sleep=self.sleep)
        return self.made[region]


def test_regions_are_read_in_parallel_each_paced_to_2_requests_per_second(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    clock: FakeClock,
) -> None:
    regions = ("us-east-1", "eu-west-1", "ap-southeast-2")
    for i, region in enumerate(regions):
        seed(fresh_sim, linked, region, NOW - DAY, NOW, 400, 20 + i)
    pacer = _RecordingPacer(clock)

    outcome = do_sync(app_conn, linked, clock, pacer, regions=regions[1:], backfill_days=1)

    assert outcome.events_written == 1200
    assert set(pacer.made) == set(regions)
    for region, bucket in pacer.made.items():
        times = bucket.slots
        assert len(times) == outcome.api_calls[region] >= 9
        assert max(sum(1 for u in times if t <= u < t + 1.0) for t in times) <= 2, region
    # In parallel: the run took well under the time of reading the regions one after another.
    # (The achieved rate per region is measured on a real clock by bench/cloudtrail_rate.py: on
    # a fake clock shared by threads, a thread slow to come back loses slots to the others.)
    assert clock.monotonic() < 0.5 * sum(outcome.api_calls.values()) * 2 / 3


# ---- every attempt paced, no call outlives the run ------------------------------------------


def _most_in_one_second(times: list[float]) -> int:
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


def test_every_attempt_takes_a_pacer_slot_and_a_throttle_slows_the_shared_bucket(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
    no_retry_sleep: None,
) -> None:
    events = seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW, 1000, 31)  # 20 pages
    # Someone else (the client's own scripts) uses half of the account-region's quota: what is
    # left for us is 1 request/s, against our pacing at 2/s. The simulator measures the quota on
    # the clock the reader runs on.
    fresh_sim.lookup_events_rate, fresh_sim.monotonic = 1.0, clock.monotonic
    try:
        outcome = do_sync(app_conn, linked, clock, pacer, backfill_days=1, window_size=2 * DAY)
    finally:
        fresh_sim.lookup_events_rate, fresh_sim.monotonic = None, time.monotonic

    assert outcome.error_class is None and not outcome.backlog_remaining
    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}
    sent = [c.at for c in fresh_sim.calls if c.operation == "LookupEvents"]
    throttled = fresh_sim.throttled
    assert throttled, "the quota was exceeded at least once"
    # Retries went through the pacer too: never more than 2 requests in any second...
    assert _most_in_one_second(sent) <= 2
    # ...each of them is an API call of the run...
    assert outcome.api_calls == {"us-east-1": len(sent)} and len(sent) == 20 + len(throttled)
    # ...and after a throttle the bucket slowed down instead of hitting the quota every other
    # request, as pacing at 2/s against 1/s would (about 20 throttles here).
    assert len(throttled) <= 5
    assert pacer.bucket(linked.aws_account_id, "us-east-1").spacing() > 1 / 2 + 0.02


def test_a_request_starts_only_if_its_timeouts_end_within_the_budget(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
) -> None:
    seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW, 100, 32)
    outcome = do_sync(app_conn, linked, clock, pacer, time_budget_s=ATTEMPT_S - 0.1)
    assert lookups(fresh_sim) == [] and outcome.api_calls == {"us-east-1": 0}
    assert outcome.backlog_remaining and outcome.error_class is None
    assert outcome.regions[0].stopped_by == "budget"
    assert cursors(owner_conn, linked.account_id) == {}


def test_a_stalled_call_is_cut_by_its_read_timeout_and_retried_within_the_budget(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
) -> None:
    # Real time: the stall and the timeouts are real. Before the fix the first call waited the
    # whole stall out (botocore's read timeout was 30 s, retried up to 6 times).
    events = seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW, 100, 33)  # 2 pages
    fresh_sim.faults.add_stall("cloudtrail", "LookupEvents", 12.0)
    budget = 6.0
    began = time.monotonic()
    outcome = reader.run(
        app_conn,
        reader.ReadOptions(
            agency_id=linked.agency.id,
            account_id=linked.account_id,
            aws_account_id=linked.aws_account_id,
            clients=linked.assume(),
            regions=(),
            fence=no_fence,
            pacer=Pacer(),
            clock=lambda: NOW,
            time_budget_s=budget,
            reserve_s=0.0,
            backfill_days=1,
            window_size=2 * DAY,
            connect_timeout_s=0.5,
            read_timeout_s=1.0,
            signin_regions=(),
        ),
    )
    elapsed = time.monotonic() - began
    fresh_sim.release_stalls()
    assert elapsed < budget
    assert outcome.error_class is None and not outcome.backlog_remaining
    assert outcome.api_calls == {"us-east-1": 3}  # the stalled attempt, its retry, page 2
    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}


def test_a_run_stopped_inside_the_newest_window_reads_its_end_again_for_late_events(
    fresh_sim: SimulatedAws,
    linked: Linked,
    app_conn: psycopg.Connection[Any],
    owner_conn: psycopg.Connection[Any],
    clock: FakeClock,
    pacer: Pacer,
    no_retry_sleep: None,
) -> None:
    # Issue 13 item 1: the events of the last 10 minutes arrive 12 minutes late (inside the
    # 15-minute overlap), and the run at NOW is throttled after its first (newest) page.
    recent = NOW - timedelta(minutes=10)
    fresh_sim.delivery_delay = lambda record: (
        720.0 if datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00")) > recent else 0
    )
    events = seed(fresh_sim, linked, "us-east-1", NOW - DAY, NOW, 300, 27)
    late = {e["eventID"] for e in events if e["eventTime"] > recent.isoformat()[:19]}
    assert len(late) == 3
    one_window: dict[str, Any] = {"backfill_days": 1, "window_size": 2 * DAY}
    fresh_sim.interrupt_lookups(linked.aws_account_id, after=1, times=6)

    first = do_sync(app_conn, linked, clock, pacer, **one_window)
    assert first.error_class == "Throttled" and first.events_written == 50
    assert not late & set(stored(owner_conn, linked.account_id))  # not delivered yet

    for _ in range(2):  # the follow-up, then the next hourly run
        clock.advance(3600)
        assert do_sync(app_conn, linked, clock, pacer, **one_window).error_class is None

    assert set(stored(owner_conn, linked.account_id)) == {e["eventID"] for e in events}
