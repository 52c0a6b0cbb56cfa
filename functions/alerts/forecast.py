"""Month-end forecast from month-to-date snapshots (pure; unit-tested with tables of examples).

For one series (an AWS account x service, in one currency), from the snapshots of the month
taken during it:

- **actual** is the latest snapshot's month-to-date amount;
- **run-rate** is the growth over the last 7 days of snapshots: from the earliest snapshot taken
  within 7 days before the latest one (at least 24 hours before it) to the latest, per hour.
  With less than a day of snapshots in the month, it is the month-to-date amount over the hours
  elapsed since the month began. A negative run-rate (credits, downward Estimated revisions)
  counts as zero: a forecast never lies below what is already spent;
- **forecast** = actual + run-rate x the hours left until the month ends;
- **short history**: while the month's snapshots span less than 7 days, the previous month's
  total for the series (its stored rows) is a floor of the forecast: early in a month, a
  run-rate read from a day or two is not trusted to forecast less than last month.

A forecast of a client, an account or a service is the sum of its series' forecasts. The
forecast does not correct for Cost Explorer's 24-48 h lag (the hours after the latest snapshot
are forecast at the run-rate, as the rest of the month).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from shared.kit.months import add_months

RUN_RATE_WINDOW = timedelta(days=7)
MIN_RATE_SPAN = timedelta(hours=24)
SHORT_HISTORY = timedelta(days=7)
_HOUR = Decimal(3600)
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Point:
    taken_at: datetime
    amount: Decimal


@dataclass(frozen=True)
class Forecast:
    actual: Decimal
    forecast: Decimal
    rate_per_day: Decimal  # the run-rate used, per day
    floored: bool  # the previous month's total was the forecast


def _hours(delta: timedelta) -> Decimal:
    return Decimal(int(delta.total_seconds())) / _HOUR


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end_month = add_months(month, 1)
    return start, datetime(end_month.year, end_month.month, 1, tzinfo=UTC)


def series_forecast(
    points: Sequence[Point], month: date, previous_total: Decimal | None = None
) -> Forecast:
    """The series' forecast for `month` from its snapshots of that month (time order)."""
    start, end = month_bounds(month)
    if not points:
        floor = previous_total if previous_total is not None and previous_total > 0 else _ZERO
        return Forecast(_ZERO, floor, _ZERO, floored=floor > 0)
    last = points[-1]
    actual = last.amount
    window = [p for p in points[:-1] if p.taken_at >= last.taken_at - RUN_RATE_WINDOW]
    ref = window[0] if window else None
    if ref is not None and last.taken_at - ref.taken_at >= MIN_RATE_SPAN:
        per_hour = (last.amount - ref.amount) / _hours(last.taken_at - ref.taken_at)
    else:
        elapsed = _hours(max(last.taken_at - start, timedelta(hours=1)))
        per_hour = actual / elapsed
    per_hour = max(per_hour, _ZERO)
    remaining = _hours(max(end - last.taken_at, timedelta(0)))
    forecast = actual + per_hour * remaining
    floored = False
    short = last.taken_at - points[0].taken_at < SHORT_HISTORY
    if short and previous_total is not None and previous_total > forecast:
        forecast, floored = previous_total, True
    return Forecast(
        actual,
        forecast.quantize(Decimal("0.0001")),
        (per_hour * 24).quantize(Decimal("0.0001")),
        floored,
    )
