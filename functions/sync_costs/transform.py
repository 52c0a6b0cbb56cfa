"""Pure parts of the cost sync: which months to pull, the one request shape, pages -> rows.

No I/O here. Cost Explorer facts these encode (see the AWS notes):
- History reaches the current month and the 13 before it; a month stays Estimated until AWS
  finalises it, some days into the next month. So the first sync pulls all 14 months and later
  syncs the current month and earlier months still Estimated.
- A finalised month can still change: refunds, credits and support fees applied after the bill
  closed show up in Cost Explorer. So the previous month is pulled again every day until the
  15th of the month after it (REPULL_PREVIOUS_UNTIL_DAY), and the last REPULL_MONTHS months once
  a week (REPULL_EVERY, counted from when they were last pulled, so a missed week is caught up
  the next day).
- GetCostAndUsage has no paginator and bills every page ($0.01 each). NextPageToken must be sent
  back with otherwise identical parameters (else RequestChangedException), so a pull's request
  is built once by `cost_request` and every page adds only the token. Its End is the first day
  of next month, not tomorrow, so a pull resumed on a later day of the month (a retry) sends
  the very request its kept token belongs to.
- Results come in month order, so a month is complete once a page shows a later month (or the
  last page arrived): `MonthAssembler` hands complete months over as soon as they are, for the
  sync to store them before the next page is bought; `MonthAssembler.resume` takes over where
  an earlier run stopped (the months still pending and their rows so far).
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
from shared.store.costs import METRICS, CostRow, MonthRecord

HISTORY_MONTHS = 13  # months before the current one that Cost Explorer keeps by default
REPULL_PREVIOUS_UNTIL_DAY = 15  # the previous month is pulled daily up to this day included
REPULL_MONTHS = 3  # months before the current one pulled again weekly
REPULL_EVERY = timedelta(days=7)
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


def plan_months(today: date, known: Mapping[date, MonthRecord], now: datetime) -> list[date]:
    """The months to pull, oldest first, as one contiguous range ending with the current month.

    `known` maps months pulled before to whether AWS still called them Estimated and when they
    were pulled. With nothing known inside the window, this is a first sync: the whole window.
    Otherwise: the current month; months still Estimated; any month after the newest known one
    (a gap left while the sync was not running, or a first pull stopped part way); the previous
    month until the 15th; and the last 3 months when one of them was pulled a week ago or more.
    The range is contiguous because one request covers it; a final month inside it is simply
    pulled again.
    """
    window = history_window(today)
    current = window[-1]
    seen = {m: rec for m, rec in known.items() if m in window}
    if not seen:
        return window
    newest = max(seen)
    wanted = {m for m in window if m == current or m > newest}
    wanted |= {m for m, rec in seen.items() if rec.estimated}
    if today.day <= REPULL_PREVIOUS_UNTIL_DAY:
        wanted.add(add_months(current, -1))
    recent = [add_months(current, -n) for n in range(1, REPULL_MONTHS + 1)]
    if any(m in seen and seen[m].synced_at <= now - REPULL_EVERY for m in recent):
        wanted.update(recent)
    start = min(wanted)
    return [m for m in window if m >= start]


# ---- the request ------------------------------------------------------------------------------


def cost_request(
    months: Sequence[date],
    today: date,
    management: bool,
    token: str | None = None,
    *,
    accounts: Sequence[str] | None = None,
    exclude: bool = False,
) -> dict[str, Any]:
    """The GetCostAndUsage parameters for `months` (contiguous, oldest first).

    End is exclusive: the first day of next month, so the current month is included up to
    today, and the request is the same all month long: a pull resumed later in the month (a
    retry, the next run after a page budget) sends exactly the request its page token belongs
    to. A management account groups by LINKED_ACCOUNT then SERVICE, which covers every member
    in the same call; `accounts` narrows it to those linked accounts (a split pull), or with
    `exclude` to every other one.
    """
    if not months:
        raise ValueError("no months to request")
    group_by = [{"Type": "DIMENSION", "Key": "SERVICE"}]
    if management:
        group_by.insert(0, {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"})
    params: dict[str, Any] = {
        "TimePeriod": {
            "Start": months[0].isoformat(),
            "End": add_months(month_start(today), 1).isoformat(),
        },
        "Granularity": "MONTHLY",
        "Metrics": list(METRICS),
        "GroupBy": group_by,
    }
    if accounts is not None:
        dimension = {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": sorted(accounts)}}
        params["Filter"] = {"Not": dimension} if exclude else dimension
    if token is not None:
        params["NextPageToken"] = token
    return params


def request_months(params: Mapping[str, Any]) -> list[date]:
    """The months a `cost_request` covers (End exclusive)."""
    period = params["TimePeriod"]
    month = month_start(date.fromisoformat(period["Start"]))
    end = date.fromisoformat(period["End"])
    months = []
    while month < end:
        months.append(month)
        month = add_months(month, 1)
    return months


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
    """Turn every page of one request into rows for `months` (see `MonthAssembler`)."""
    assembler = MonthAssembler(months, own_account, management, today)
    done = [assembler.add(page) for page in pages]
    done.append(assembler.finish())
    return CostData(
        {m: f for d in done for m, f in d.months.items()}, [r for d in done for r in d.rows]
    )


class MonthAssembler:
    """Pages of one request in, complete months out, as soon as each is complete.

    Without LINKED_ACCOUNT grouping every row belongs to `own_account`. A month split across
    pages is merged; a group seen twice is an error (a paging bug must not double costs), and
    so is a result for a month already handed over (results come in month order). A month is
    complete when a page shows a later month; `finish` hands over the rest after the last page.
    A requested month AWS did not mention at all is recorded empty, Estimated only if current.
    """

    def __init__(
        self, months: Sequence[date], own_account: str, management: bool, today: date
    ) -> None:
        self._pending = sorted(set(months))
        self._own = own_account
        self._management = management
        self._current = month_start(today)
        self._estimated: dict[date, bool] = {}
        self._rows: dict[date, list[CostRow]] = {}
        self._seen: set[tuple[str, date, str]] = set()
        self._handed: set[date] = set()
        self.staged: list[CostRow] = []  # the last page's rows of months still pending

    @classmethod
    def resume(
        cls,
        months: Sequence[date],
        own_account: str,
        management: bool,
        today: date,
        *,
        pending: Mapping[date, bool],
        rows: Iterable[CostRow],
    ) -> MonthAssembler:
        """An assembler in the state an earlier run left it: `pending` maps the months not
        handed over yet to the Estimated flag seen so far, `rows` their rows so far."""
        assembler = cls([m for m in months if m in pending], own_account, management, today)
        assembler._handed = {m for m in months if m not in pending}
        for month, flag in pending.items():
            if flag:
                assembler._estimated[month] = True
        for row in rows:
            if row.month not in pending:
                raise MalformedAnswerError("a stored row for a month not pending")
            key = (row.usage_account_id, row.month, row.service)
            assembler._seen.add(key)
            assembler._rows.setdefault(row.month, []).append(row)
        return assembler

    def accounts_of(self, month: date) -> set[str]:
        """The usage accounts of the rows received so far for a pending month."""
        return {r.usage_account_id for r in self._rows.get(month, [])}

    @property
    def pending(self) -> dict[date, bool]:
        """Months not handed over yet -> whether a page called them Estimated so far."""
        return {m: self._estimated.get(m, False) for m in self._pending}

    def add(self, page: Mapping[str, Any]) -> CostData:
        """Take one page; returns the months it completed (often none)."""
        latest: date | None = None
        new: list[CostRow] = []
        for entry in page.get("ResultsByTime") or []:
            month = _entry_month(entry)
            if month not in self._pending:
                if month in self._handed:
                    raise MalformedAnswerError("a result for a month already complete")
                raise MalformedAnswerError("a result for a month that was not requested")
            latest = month if latest is None else max(latest, month)
            flag = self._estimated.get(month, False) or bool(entry.get("Estimated"))
            self._estimated[month] = flag
            rows = self._rows.setdefault(month, [])
            for group in entry.get("Groups") or []:
                account, service = _group_keys(group, self._own, self._management)
                key = (account, month, service)
                if key in self._seen:
                    raise MalformedAnswerError("the same group appeared twice")
                self._seen.add(key)
                group_rows = _group_rows(group, account, month, service, flag)
                rows.extend(group_rows)
                new.extend(group_rows)
        done = (
            CostData({}, [])
            if latest is None
            else self._hand_over([m for m in self._pending if m < latest])
        )
        self.staged = [r for r in new if r.month in self._pending]
        return done

    def finish(self) -> CostData:
        """The last page arrived: every month not handed over yet is complete."""
        return self._hand_over(list(self._pending))

    def _hand_over(self, months: list[date]) -> CostData:
        flags: dict[date, bool] = {}
        rows: list[CostRow] = []
        for month in months:
            flag = self._estimated.get(month, month == self._current)
            flags[month] = flag
            # A month's Estimated flag can arrive on a later page than some of its groups.
            rows.extend(
                r if r.estimated == flag else _with_flag(r, flag) for r in self._rows.pop(month, [])
            )
            self._pending.remove(month)
            self._handed.add(month)
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
