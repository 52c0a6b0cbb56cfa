"""Pure parts of the cost sync: which months to pull, the one request shape, pages -> rows.

No I/O here. Cost Explorer facts these encode (see the AWS notes):
- History reaches the current month and the 13 before it; a month stays Estimated until AWS
  finalises it, some days into the next month. So the first sync pulls all 14 months and later
  syncs only the current month and earlier months still Estimated.
- GetCostAndUsage has no paginator and bills every page ($0.01 each). NextPageToken must be sent
  back with otherwise identical parameters (else RequestChangedException), so every page's
  request comes from `cost_request`, which differs between pages only in the token.
- Amounts are decimal strings; they stay Decimal (money is never float).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from shared.kit.months import add_months, month_start
from shared.store.costs import METRICS, CostRow

HISTORY_MONTHS = 13  # months before the current one that Cost Explorer keeps by default
MAX_SERVICE_CHARS = 256
_AMOUNT_QUANTUM = Decimal("1E-10")  # numeric(20, 10)
_AMOUNT_LIMIT = Decimal("1E10")
_CURRENCY = re.compile(r"[A-Z]{3}")


class MalformedAnswerError(ValueError):
    """A Cost Explorer answer we cannot store faithfully (it is stored not at all)."""


# ---- months -----------------------------------------------------------------------------------


def history_window(today: date) -> list[date]:
    """The months Cost Explorer can answer for: 13 before the current one, and the current."""
    current = month_start(today)
    return [add_months(current, -n) for n in range(HISTORY_MONTHS, -1, -1)]


def plan_months(today: date, known: Mapping[date, bool]) -> list[date]:
    """The months to pull, oldest first, as one contiguous range ending with the current month.

    `known` maps months pulled before to whether AWS still called them Estimated. With nothing
    known inside the window, this is a first sync: the whole window. Otherwise: the current
    month, months still Estimated, and any month after the newest known one (a gap left while
    the sync was not running). The range is contiguous because one request covers it; a final
    month inside it is simply pulled again unchanged.
    """
    window = history_window(today)
    current = window[-1]
    seen = {m: est for m, est in known.items() if m in window}
    if not seen:
        return window
    newest = max(seen)
    wanted = [m for m in window if m == current or seen.get(m) is True or m > newest]
    start = min(wanted)
    return [m for m in window if m >= start]


# ---- the request ------------------------------------------------------------------------------


def cost_request(
    months: Sequence[date], today: date, management: bool, token: str | None = None
) -> dict[str, Any]:
    """The GetCostAndUsage parameters for `months` (contiguous, oldest first).

    End is exclusive: tomorrow, so the current month is included up to today. A management
    account groups by LINKED_ACCOUNT then SERVICE, which covers every member in the same call.
    """
    if not months:
        raise ValueError("no months to request")
    group_by = [{"Type": "DIMENSION", "Key": "SERVICE"}]
    if management:
        group_by.insert(0, {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"})
    params: dict[str, Any] = {
        "TimePeriod": {
            "Start": months[0].isoformat(),
            "End": (today + timedelta(days=1)).isoformat(),
        },
        "Granularity": "MONTHLY",
        "Metrics": list(METRICS),
        "GroupBy": group_by,
    }
    if token is not None:
        params["NextPageToken"] = token
    return params


# ---- pages -> rows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CostData:
    """Everything one sync pulled: month -> Estimated, and the rows of those months."""

    months: dict[date, bool]
    rows: list[CostRow]

    @property
    def usage_accounts(self) -> set[str]:
        return {r.usage_account_id for r in self.rows}


def rows_from_pages(
    pages: Iterable[Mapping[str, Any]],
    months: Sequence[date],
    own_account: str,
    management: bool,
    today: date,
) -> CostData:
    """Turn GetCostAndUsage pages into rows for `months`.

    Without LINKED_ACCOUNT grouping every row belongs to `own_account`. A month split across
    pages is merged; a group seen twice is an error (a paging bug must not double costs). A
    requested month AWS did not mention at all is recorded empty, Estimated only if current.
    """
    wanted = set(months)
    estimated: dict[date, bool] = {}
    seen: set[tuple[str, date, str]] = set()
    rows: list[CostRow] = []
    for page in pages:
        for entry in page.get("ResultsByTime") or []:
            month = _entry_month(entry)
            if month not in wanted:
                raise MalformedAnswerError("a result for a month that was not requested")
            estimated[month] = estimated.get(month, False) or bool(entry.get("Estimated"))
            for group in entry.get("Groups") or []:
                account, service = _group_keys(group, own_account, management)
                key = (account, month, service)
                if key in seen:
                    raise MalformedAnswerError("the same group appeared twice")
                seen.add(key)
                rows.extend(_group_rows(group, account, month, service, estimated[month]))
    current = month_start(today)
    flags = {m: estimated.get(m, m == current) for m in months}
    # A month's Estimated flag can arrive on a later page than some of its groups.
    rows = [r if r.estimated == flags[r.month] else _with_flag(r, flags[r.month]) for r in rows]
    return CostData(flags, rows)


def _with_flag(row: CostRow, estimated: bool) -> CostRow:
    return CostRow(
        row.usage_account_id,
        row.month,
        row.service,
        row.metric,
        row.amount,
        row.currency,
        estimated,
    )


def _entry_month(entry: Mapping[str, Any]) -> date:
    try:
        start = date.fromisoformat(str(entry["TimePeriod"]["Start"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedAnswerError("a result without a valid TimePeriod") from exc
    return month_start(start)


def _group_keys(group: Mapping[str, Any], own_account: str, management: bool) -> tuple[str, str]:
    keys = group.get("Keys")
    expected = 2 if management else 1
    if not isinstance(keys, list) or len(keys) != expected:
        raise MalformedAnswerError("a group without the expected keys")
    account = str(keys[0]) if management else own_account
    if not (len(account) == 12 and account.isdigit()):
        raise MalformedAnswerError("a group for an invalid account id")
    service = str(keys[-1])[:MAX_SERVICE_CHARS]
    if not service:
        raise MalformedAnswerError("a group without a service name")
    return account, service


def _group_rows(
    group: Mapping[str, Any], account: str, month: date, service: str, estimated: bool
) -> list[CostRow]:
    metrics = group.get("Metrics") or {}
    rows = []
    for metric in METRICS:
        value = metrics.get(metric)
        if value is None:
            continue  # AWS leaves out metrics it has nothing for
        rows.append(
            CostRow(
                account,
                month,
                service,
                metric,
                parse_amount(value.get("Amount")),
                parse_currency(value.get("Unit")),
                estimated,
            )
        )
    return rows


def parse_amount(text: Any) -> Decimal:
    """A CE amount string as Decimal, fitted to numeric(20, 10)."""
    if not isinstance(text, str):
        raise MalformedAnswerError("an amount that is not a decimal string")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise MalformedAnswerError("an amount that is not a decimal string") from exc
    if not amount.is_finite() or abs(amount) >= _AMOUNT_LIMIT:
        raise MalformedAnswerError("an amount out of range")
    return amount.quantize(_AMOUNT_QUANTUM)


def parse_currency(unit: Any) -> str:
    if not (isinstance(unit, str) and _CURRENCY.fullmatch(unit)):
        raise MalformedAnswerError("a cost without an ISO currency code")
    return unit


# ---- scheduling -------------------------------------------------------------------------------

DAILY_AT = timedelta(hours=2)  # next day 02:00 UTC: taken by the hourly dispatch at 02:05


def next_daily_run(now: datetime) -> datetime:
    """When a successful cost sync is due again: 02:00 UTC the next day.

    Not `now + 24 h`: a sync finishing a little after the daily cron fired would otherwise not
    be due at the next day's firing and skip a day.
    """
    day = now.astimezone(UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + DAILY_AT


def backoff(now: datetime, failures: int, draw: float) -> datetime:
    """Retry time after `failures` throttled attempts: exponential from 15 min, capped at 6 h,
    with equal jitter (`draw` in [0, 1) from the caller's random source)."""
    base = timedelta(minutes=15) * (2 ** min(max(failures, 0), 5))
    capped = min(base, timedelta(hours=6))
    return now + capped / 2 + capped / 2 * draw
