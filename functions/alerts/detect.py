"""Spend anomalies from month-to-date snapshots (pure; unit-tested with tables of examples).

A series is one AWS account x service in one currency. Its **growth rate** at a snapshot is the
growth of the month-to-date amount since the newest earlier snapshot of the same month taken at
least `SPAN` (64 hours: three daily syncs) before it, per day. A rate is computed only when both
snapshots were taken during the month they measure, and the earlier one on or after the month's
6th day.

The latest rate (at the newest snapshot) is compared with the series' **baseline**: the rates
at its earlier snapshots of the last 28 days. It is an anomaly when all of these hold:

- the baseline has at least `MIN_BASELINE_RATES` (10) rates (minimum history: a new account, or
  one whose service is new, stays quiet until then; with daily syncs that is 14 days of
  snapshots, the rates of the previous month's last 28 days counting);
- the excess over the baseline's median exceeds `Z` (4) robust standard deviations
  (1.4826 x the median absolute deviation, at least 5 % of the median and 1 cent a day);
- the excess exceeds the agency's relative floor (default 100 % of the median: the rate at
  least doubled) and its absolute floor (default 10.00 a day: cents never alert).

Why each normal pattern of cost data stays quiet:

- **charges posted on the first days of a month** (support, tax, reservation and Savings Plans
  fees, posted on the 1st to the 3rd and shown up to 48 hours late): no rate starts before the
  6th, and the first snapshot of a month has no rate;
- **credits, refunds and downward Estimated revisions**: negative growth never alerts (and the
  median ignores the odd negative rate in the baseline);
- **Cost Explorer's 24-48 h lag**: a day's spend shows one or two days late, so one daily
  growth holds no day's spend and the next two; a rate spans at least 64 hours (three daily
  syncs), where that averages out instead of reading as a doubling (measured: with daily rates
  the 60-day test raises 11 false alarms; with 40-hour rates and 7 baseline rates, 2 in 400
  simulated series), and a rate is per elapsed hour, so a missed sync (an outage) spreads its
  growth;
- **a source switch** between a member account and its management account: the series is keyed
  by the AWS account, not by the link it was pulled through, and both pull the same numbers;
- **a new account with little history**: the minimum history above.

A spike that lasts is one anomaly: while a series' anomaly was last detected within
`CONTINUES` (72 hours), a new detection extends it rather than raising another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from statistics import median

SPAN = timedelta(hours=64)
MONTH_START_DAYS = 5  # rates start on the 6th
LOOKBACK = timedelta(days=28)
MIN_BASELINE_RATES = 10
Z = Decimal(4)
MAD_SCALE = Decimal("1.4826")
CONTINUES = timedelta(hours=72)
_DAY = Decimal(86400)
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Point:
    month: datetime  # the first instant of the month the amount is of (UTC)
    taken_at: datetime
    amount: Decimal


@dataclass(frozen=True)
class Rate:
    start: datetime
    end: datetime
    growth: Decimal
    per_day: Decimal


@dataclass(frozen=True)
class Floors:
    relative_pct: int
    absolute_per_day: Decimal


@dataclass(frozen=True)
class Finding:
    rate: Rate
    baseline_per_day: Decimal
    mad_per_day: Decimal
    baseline_rates: int


def month_of(at: datetime) -> datetime:
    at = at.astimezone(UTC)
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def rates(points: Sequence[Point]) -> list[Rate]:
    """The growth rates of one series (its snapshots in time order, any months)."""
    out: list[Rate] = []
    for j, p in enumerate(points):
        if month_of(p.taken_at) != p.month:
            continue  # a month seen after it ended: AWS's late charges, not spend of the day
        opens = p.month + timedelta(days=MONTH_START_DAYS)
        ref = None
        for q in reversed(points[:j]):
            if q.month != p.month or q.taken_at > p.taken_at - SPAN:
                continue
            if q.taken_at >= opens:
                ref = q
            break
        if ref is None:
            continue
        seconds = Decimal(int((p.taken_at - ref.taken_at).total_seconds()))
        growth = p.amount - ref.amount
        out.append(Rate(ref.taken_at, p.taken_at, growth, growth * _DAY / seconds))
    return out


def evaluate(series: Sequence[Rate], latest_at: datetime, floors: Floors) -> Finding | None:
    """Whether the rate at the series' latest snapshot (`latest_at`) is an anomaly."""
    if not series or series[-1].end != latest_at:
        return None
    latest = series[-1]
    baseline = [r.per_day for r in series[:-1] if r.end >= latest.end - LOOKBACK]
    if len(baseline) < MIN_BASELINE_RATES or latest.growth <= 0:
        return None
    mid = Decimal(median(baseline))
    mad = Decimal(median([abs(r - mid) for r in baseline]))
    spread = max(MAD_SCALE * mad, abs(mid) * Decimal("0.05"), Decimal("0.01"))
    excess = latest.per_day - mid
    if excess <= Z * spread:
        return None
    if excess <= max(mid, _ZERO) * Decimal(floors.relative_pct) / 100:
        return None
    if excess <= floors.absolute_per_day:
        return None
    return Finding(latest, mid, mad, len(baseline))
