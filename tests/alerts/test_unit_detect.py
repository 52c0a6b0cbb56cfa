"""The anomaly rule (functions/alerts/detect.py), with tables of examples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from functions.alerts.detect import MIN_BASELINE_RATES, Floors, Point, evaluate, rates

FLOORS = Floors(relative_pct=100, absolute_per_day=Decimal(10))
FEB = datetime(2025, 2, 1, tzinfo=UTC)


def series(per_day: list[str], start_day: int = 6, month: datetime = FEB) -> list[Point]:
    """Daily snapshots at 06:00 from `start_day`, each day growing by the next amount."""
    amount = Decimal(100)
    out = []
    for n, grow in enumerate(per_day):
        amount += Decimal(grow)
        out.append(Point(month, month + timedelta(days=start_day - 1 + n, hours=6), amount))
    return out


def verdict(per_day: list[str], floors: Floors = FLOORS) -> bool:
    points = series(per_day)
    return evaluate(rates(points), points[-1].taken_at, floors) is not None


STEADY = ["60", "62", "58", "61", "59", "60", "63", "57", "60", "61", "59", "60", "62", "58"]


@pytest.mark.parametrize(
    ("per_day", "alert"),
    [
        (STEADY, False),
        ([*STEADY, "460"], True),  # the example: $400 over a usual $60/day
        ([*STEADY, "180"], False),  # the rate +67 %: below the 100 % relative floor
        ([*STEADY, "-200"], False),  # a credit
        ([*STEADY, "0", "120"], False),  # the lag: a day not refreshed, then two
        ([*STEADY[:8], "460"], False),  # too little history: 4 baseline rates
    ],
)
def test_the_latest_rate_against_the_baseline(per_day: list[str], alert: bool) -> None:
    assert verdict(per_day) is alert


def test_cents_never_alert_whatever_the_relative_growth() -> None:
    cents = ["0.10", "0.11", "0.09", "0.10", "0.12", "0.10", "0.11", "0.09", "0.10", "0.11"] * 2
    assert verdict([*cents, "9"]) is False  # 90x the usual, but under 10.00 a day
    assert verdict([*cents, "9"], Floors(100, Decimal(1))) is True  # the agency's lower floor


def test_the_relative_floor_is_the_agency_s() -> None:
    # The latest 3-day rate: (62 + 58 + 400) / 3 = 173.3 a day, 113 over the usual 60.
    assert verdict([*STEADY, "400"], Floors(200, Decimal(10))) is False
    assert verdict([*STEADY, "400"], Floors(100, Decimal(10))) is True


def test_no_rate_starts_in_the_first_days_of_a_month_nor_spans_two_months() -> None:
    # Snapshots of February from the 1st: rates start from a snapshot on or after the 6th.
    points = series(["500", *["60"] * 12], start_day=1)
    found = rates(points)
    assert found and min(r.start for r in found) >= FEB + timedelta(days=5)
    # A snapshot of January taken in February (AWS's late charges) has no rate.
    late = Point(datetime(2025, 1, 1, tzinfo=UTC), FEB + timedelta(days=9), Decimal(5000))
    assert rates([*points[:9], late]) == rates(points[:9])


def test_a_rate_spans_three_daily_syncs_and_is_per_day() -> None:
    points = series(["60"] * 6)
    (first, *_) = rates(points)
    assert first.end - first.start == timedelta(days=3)
    assert first.per_day == Decimal(60) and first.growth == Decimal(180)


def test_the_minimum_history_is_stated() -> None:
    assert MIN_BASELINE_RATES == 10
    needed = 3 + MIN_BASELINE_RATES + 1  # the first rate needs 3 days, then 10 more and one
    assert verdict([*["60"] * (needed - 1), "460"]) is True
    assert verdict([*["60"] * (needed - 2), "460"]) is False
