"""The month-end forecast (functions/alerts/forecast.py), with tables of examples."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from functions.alerts.forecast import Point, series_forecast

MARCH = date(2025, 3, 1)  # 31 days


def at(day: int, hour: int = 6) -> datetime:
    return datetime(2025, 3, day, hour, tzinfo=UTC)


def daily(first: int, last: int, per_day: str, start: str = "0") -> list[Point]:
    """One snapshot a day at 06:00, growing `per_day` a day from `start`."""
    return [
        Point(at(d), Decimal(start) + Decimal(per_day) * (d - first))
        for d in range(first, last + 1)
    ]


@pytest.mark.parametrize(
    ("points", "previous", "actual", "forecast", "floored"),
    [
        # Steady 10/day since the 1st, seen on the 21st at 06:00: 200 + 10 x (10 days 18 h).
        (daily(1, 21, "10"), None, "200", "307.5000", False),
        # The run-rate is the last 7 days only: 5/day before, 20/day since the 14th.
        (
            [*daily(1, 14, "5")[:-1], *daily(14, 21, "20", start="65")],
            None,
            "205",
            "420.0000",
            False,
        ),
        # Credits (negative growth) never forecast below what is spent.
        (daily(10, 21, "-3", start="300"), None, "267", "267.0000", False),
        # Short history (3 days): the previous month's total is a floor...
        (daily(1, 3, "10"), Decimal(900), "20", "900", True),
        # ...unless the run-rate forecasts more.
        (daily(1, 3, "10"), Decimal(100), "20", "307.5000", False),
        # A week or more of history: no floor.
        (daily(1, 10, "10"), Decimal(900), "90", "307.5000", False),
        # One snapshot: month-to-date over the hours since the month began (48 on the 3rd).
        ([Point(at(3, 0), Decimal(48))], None, "48", "744.0000", False),
    ],
)
def test_the_forecast_is_month_to_date_plus_the_last_week_s_run_rate(
    points: list[Point], previous: Decimal | None, actual: str, forecast: str, floored: bool
) -> None:
    result = series_forecast(points, MARCH, previous)
    assert result.actual == Decimal(actual)
    assert result.forecast == Decimal(forecast)
    assert result.floored is floored


def test_a_month_that_has_ended_forecasts_what_it_holds() -> None:
    points = [Point(datetime(2025, 4, 2, tzinfo=UTC), Decimal(310))]
    result = series_forecast(points, MARCH)
    assert result.forecast == Decimal(310)


def test_no_snapshot_forecasts_the_previous_month_or_nothing() -> None:
    assert series_forecast([], MARCH, Decimal(50)).forecast == Decimal(50)
    assert series_forecast([], MARCH).forecast == 0
    assert series_forecast([], MARCH, Decimal(50)).actual == 0


def test_the_run_rate_needs_a_day_between_its_snapshots() -> None:
    # Two snapshots an hour apart: not a run-rate (it would read one refresh as a day's spend).
    points = [Point(at(20), Decimal(190)), Point(at(20) + timedelta(hours=1), Decimal(200))]
    result = series_forecast(points, MARCH)
    elapsed = Decimal(19 * 24 + 7)
    assert result.rate_per_day == (Decimal(200) / elapsed * 24).quantize(Decimal("0.0001"))
