"""Pacing on a fake clock: never more than 2 requests in any second, at least 1.8/s when busy."""

from __future__ import annotations

import itertools
import threading

import pytest

from shared.bootstrap import Deps
from shared.pacing import Pacer, TokenBucket
from shared.settings import Settings
from tests.sync_cloudtrail.helpers import FakeClock


def _max_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for u in times if t <= u < t + 1.0) for t in times)


@pytest.mark.parametrize("latency", [0.0, 0.05, 0.3, 0.49])
def test_a_backlog_is_read_at_2_per_second_and_never_more(latency: float) -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock=clock.monotonic, sleep=clock.sleep)
    starts = []
    for _ in range(200):
        assert bucket.acquire()
        starts.append(clock.monotonic())
        clock.advance(latency)  # the call itself
    assert _max_in_any_second(starts) <= 2
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 1.8 <= rate <= 2.0


def test_slow_calls_are_not_followed_by_a_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock=clock.monotonic, sleep=clock.sleep)
    starts = []
    for latency in [0.0, 3.0, 0.0, 0.0, 0.0, 2.2, 0.0, 0.0]:
        bucket.acquire()
        starts.append(clock.monotonic())
        clock.advance(latency)
    assert _max_in_any_second(starts) <= 2


def test_two_links_to_one_aws_account_share_its_bucket_and_regions_do_not() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock.monotonic, sleep=clock.sleep)
    assert pacer.bucket("111111111111", "us-east-1") is pacer.bucket("111111111111", "us-east-1")
    assert pacer.bucket("111111111111", "us-east-1") is not pacer.bucket(
        "111111111111", "eu-west-1"
    )
    assert pacer.bucket("111111111111", "us-east-1") is not pacer.bucket(
        "222222222222", "us-east-1"
    )
    # One pacer per process: the composition root's, kept by every copy of its dependencies.
    deps = Deps(Settings({}))
    assert deps.pacer is deps.pacer
    assert deps.but(clock=clock.now).pacer is deps.pacer


def test_threads_sharing_a_bucket_stay_under_2_per_second_together() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock.monotonic, sleep=clock.sleep)
    starts: list[float] = []
    lock = threading.Lock()

    def link() -> None:
        bucket = pacer.bucket("333333333333", "us-east-1")
        for _ in range(40):
            bucket.acquire()
            with lock:
                starts.append(clock.monotonic())

    threads = [threading.Thread(target=link) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(starts) == 120
    assert _max_in_any_second(starts) <= 2


def test_a_slot_past_the_deadline_is_refused_without_waiting_or_being_taken() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock=clock.monotonic, sleep=clock.sleep)
    assert bucket.acquire(deadline=10.0)
    assert not bucket.acquire(deadline=0.2)  # the next slot is at 0.52
    assert clock.monotonic() == 0.0 and clock.sleeps == []
    assert bucket.acquire(deadline=bucket.interval)
    assert clock.monotonic() == bucket.interval


def test_a_late_start_pushes_the_next_slot_back_so_starts_stay_spaced() -> None:
    clock = FakeClock()
    woke = {"count": 0}

    def sometimes_late(seconds: float) -> None:
        woke["count"] += 1
        clock.sleep(seconds + (0.3 if woke["count"] % 2 else 0.0))  # the thread woke up late

    bucket = TokenBucket(clock=clock.monotonic, sleep=sometimes_late)
    starts = []
    for _ in range(10):
        bucket.acquire()
        starts.append(clock.monotonic())
    assert min(b - a for a, b in itertools.pairwise(starts)) >= bucket.interval - 1e-9


def test_a_penalty_pushes_every_caller_of_the_bucket_back() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock=clock.monotonic, sleep=clock.sleep)
    bucket.acquire()
    bucket.penalize(12.5)
    bucket.acquire()
    assert clock.monotonic() == 12.5


def test_the_third_request_waits_a_second_after_a_first_that_had_to_connect() -> None:
    # AWS counts arrivals: a request opening a connection arrives after its handshakes, so it
    # counts as arrived at its end, and the request `rate` slots later waits a second after that.
    clock = FakeClock()
    bucket = TokenBucket(clock=clock.monotonic, sleep=clock.sleep)
    first = bucket.take()
    assert first is not None and first.at == 0.0
    clock.advance(0.4)  # TCP + TLS handshakes, then the request itself
    first.landed_by(clock.monotonic())
    second, third, fourth = bucket.take(), bucket.take(), bucket.take()
    assert second is not None and third is not None and fourth is not None
    assert second.at == pytest.approx(bucket.interval)  # warm spacing is unchanged
    assert third.at == pytest.approx(0.4 + 1.0 + 0.02)
    assert fourth.at == pytest.approx(third.at + bucket.interval)
    assert bucket.take(deadline=fourth.at) is None  # the next one is later than that


def test_a_throttle_pauses_the_bucket_and_spreads_its_slots_until_it_decays() -> None:
    clock = FakeClock()
    bucket = TokenBucket(clock=clock.monotonic, sleep=clock.sleep)
    assert bucket.acquire()
    bucket.throttled(1.0)
    assert bucket.spacing() == pytest.approx(2 * bucket.interval)
    started = clock.monotonic()
    assert bucket.acquire()
    assert clock.monotonic() - started == pytest.approx(1.0)  # the pause
    bucket.throttled(1.0)
    bucket.throttled(1.0)
    bucket.throttled(1.0)
    assert bucket.spacing() == pytest.approx(8 * bucket.interval)  # at most 8x
    clock.advance(30.0)
    assert bucket.spacing() == pytest.approx(4 * bucket.interval)  # half-life 30 s
    clock.advance(300.0)
    assert bucket.spacing() == pytest.approx(bucket.interval)
