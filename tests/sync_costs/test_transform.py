"""The pure parts of the cost sync, by tables of examples: month planning, the request shape,
pages -> rows, scheduling, and the queue message."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from functions.sync_costs import transform
from functions.sync_costs.transform import MalformedAnswerError
from shared.kit.months import add_months
from shared.store.costs import MonthRecord

TODAY = date(2025, 3, 14)
M = add_months


def months(first: date, last: date) -> list[date]:
    out = [first]
    while out[-1] < last:
        out.append(M(out[-1], 1))
    return out


MAR = date(2025, 3, 1)
FEB = date(2025, 2, 1)
JAN = date(2025, 1, 1)
WINDOW = months(date(2024, 2, 1), MAR)
FINAL_UP_TO_JAN = {m: False for m in months(date(2024, 2, 1), JAN)}


NOW = datetime(2025, 3, 14, 3, 0, tzinfo=UTC)
DEC = date(2024, 12, 1)


def pulled(flags: dict[date, bool], days_ago: float = 1) -> dict[date, MonthRecord]:
    """Months pulled `days_ago` days before NOW, with their Estimated flags."""
    return {m: MonthRecord(est, NOW - timedelta(days=days_ago)) for m, est in flags.items()}


@pytest.mark.parametrize(
    ("today", "known", "expected"),
    [
        # first sync: the current month and the 13 before it
        (TODAY, {}, WINDOW),
        # months known only outside the window count as nothing known
        (TODAY, pulled({date(2020, 1, 1): False}), WINDOW),
        # steady state after the 15th: February final, only March
        (date(2025, 3, 16), pulled({**FINAL_UP_TO_JAN, FEB: False, MAR: True}), [MAR]),
        # up to the 15th the previous month is pulled again, final or not
        (TODAY, pulled({**FINAL_UP_TO_JAN, FEB: False, MAR: True}), [FEB, MAR]),
        (date(2025, 3, 15), pulled({**FINAL_UP_TO_JAN, FEB: False, MAR: True}), [FEB, MAR]),
        # February still Estimated after the 15th: February and March
        (date(2025, 3, 20), pulled({**FINAL_UP_TO_JAN, FEB: True, MAR: True}), [FEB, MAR]),
        # a gap after the newest known month (the sync did not run): pulled too
        (
            date(2025, 3, 20),
            pulled({m: False for m in months(date(2024, 2, 1), DEC)}),
            [JAN, FEB, MAR],
        ),
        # an old month still Estimated: one contiguous range from it
        (
            date(2025, 3, 20),
            pulled({**FINAL_UP_TO_JAN, DEC: True, FEB: False, MAR: True}),
            [DEC, JAN, FEB, MAR],
        ),
        # the last three months were pulled a week ago: all three again (credits, refunds)
        (
            date(2025, 3, 20),
            pulled({**FINAL_UP_TO_JAN, FEB: False, MAR: True}, days_ago=7),
            [DEC, JAN, FEB, MAR],
        ),
        # ... but not six days after
        (
            date(2025, 3, 20),
            pulled({**FINAL_UP_TO_JAN, FEB: False, MAR: True}, days_ago=6),
            [MAR],
        ),
    ],
    ids=[
        "first",
        "stale",
        "steady",
        "previous-until-15th",
        "previous-on-15th",
        "feb-estimated",
        "gap",
        "old-estimated",
        "weekly",
        "not-weekly-yet",
    ],
)
def test_plan_months_pulls_what_can_still_change(
    today: date, known: dict[date, MonthRecord], expected: list[date]
) -> None:
    now = datetime(today.year, today.month, today.day, 3, 0, tzinfo=UTC)
    if known:  # the records' age is relative to `today`
        shift = now - NOW
        known = {m: MonthRecord(r.estimated, r.synced_at + shift) for m, r in known.items()}
    assert transform.plan_months(today, known, now) == expected


def test_the_history_window_is_fourteen_months_ending_with_the_current_one() -> None:
    window = transform.history_window(date(2025, 1, 31))
    assert len(window) == 14
    assert window[0] == date(2023, 12, 1) and window[-1] == date(2025, 1, 1)


@pytest.mark.parametrize(
    ("month", "count", "expected"),
    [
        (date(2025, 1, 1), -1, date(2024, 12, 1)),
        (date(2024, 12, 1), 1, date(2025, 1, 1)),
        (date(2025, 3, 1), -13, date(2024, 2, 1)),
        (date(2025, 3, 1), 0, date(2025, 3, 1)),
    ],
)
def test_add_months_crosses_years(month: date, count: int, expected: date) -> None:
    assert add_months(month, count) == expected


def test_pages_of_one_sync_differ_only_in_the_token() -> None:
    first = transform.cost_request(WINDOW, TODAY, management=False)
    later = transform.cost_request(WINDOW, TODAY, management=False, token="abc")
    assert "NextPageToken" not in first
    assert later.pop("NextPageToken") == "abc"
    assert later == first
    assert first == {
        "TimePeriod": {"Start": "2024-02-01", "End": "2025-04-01"},
        "Granularity": "MONTHLY",
        "Metrics": ["UnblendedCost", "AmortizedCost", "NetUnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }


def test_a_management_account_groups_by_linked_account_then_service() -> None:
    params = transform.cost_request([MAR], TODAY, management=True)
    assert params["GroupBy"] == [
        {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
        {"Type": "DIMENSION", "Key": "SERVICE"},
    ]
    assert params["TimePeriod"] == {"Start": "2025-03-01", "End": "2025-04-01"}


def _metrics(amount: str, unit: str = "USD") -> dict[str, Any]:
    return {m: {"Amount": amount, "Unit": unit} for m in transform.METRICS}


def _entry(month: date, groups: list[dict[str, Any]], estimated: bool) -> dict[str, Any]:
    return {
        "TimePeriod": {"Start": month.isoformat(), "End": M(month, 1).isoformat()},
        "Total": {},
        "Groups": groups,
        "Estimated": estimated,
    }


def test_pages_become_decimal_rows_with_a_month_split_across_pages_merged() -> None:
    pages = [
        {
            "ResultsByTime": [
                _entry(FEB, [{"Keys": ["Amazon EC2"], "Metrics": _metrics("10.125")}], False),
                _entry(MAR, [{"Keys": ["AWS Lambda"], "Metrics": _metrics("0.0000001")}], True),
            ],
            "NextPageToken": "t",
        },
        {
            "ResultsByTime": [
                _entry(MAR, [{"Keys": ["Amazon S3"], "Metrics": _metrics("-1.5")}], True),
            ]
        },
    ]
    data = transform.rows_from_pages(pages, [FEB, MAR], "111111111111", False, TODAY)
    assert data.months == {FEB: False, MAR: True}
    assert len(data.rows) == 9
    ec2 = [r for r in data.rows if r.service == "Amazon EC2"]
    assert {r.amount for r in ec2} == {Decimal("10.1250000000")}
    assert all(isinstance(r.amount, Decimal) for r in data.rows)
    assert {r.usage_account_id for r in data.rows} == {"111111111111"}
    assert {(r.service, r.estimated) for r in data.rows if r.month == MAR} == {
        ("AWS Lambda", True),
        ("Amazon S3", True),
    }


def test_management_rows_are_attributed_to_each_member() -> None:
    pages = [
        {
            "ResultsByTime": [
                _entry(
                    MAR,
                    [
                        {"Keys": ["222222222222", "Amazon EC2"], "Metrics": _metrics("1")},
                        {"Keys": ["333333333333", "Amazon EC2"], "Metrics": _metrics("2")},
                    ],
                    True,
                )
            ]
        }
    ]
    data = transform.rows_from_pages(pages, [MAR], "111111111111", True, TODAY)
    assert data.usage_accounts == {"222222222222", "333333333333"}


def test_a_requested_month_without_any_answer_is_recorded_empty() -> None:
    data = transform.rows_from_pages(
        [{"ResultsByTime": []}], [FEB, MAR], "111111111111", False, TODAY
    )
    assert data.months == {FEB: False, MAR: True}
    assert data.rows == []


@pytest.mark.parametrize(
    "page",
    [
        {"ResultsByTime": [_entry(JAN, [], False)]},  # a month not asked for
        {
            "ResultsByTime": [
                _entry(MAR, [{"Keys": ["S"], "Metrics": _metrics("1.0", "N/A")}], True)
            ]
        },
        {"ResultsByTime": [_entry(MAR, [{"Keys": ["S"], "Metrics": _metrics("NaN")}], True)]},
        {"ResultsByTime": [_entry(MAR, [{"Keys": ["S"], "Metrics": _metrics("1e12")}], True)]},
        {"ResultsByTime": [_entry(MAR, [{"Keys": [], "Metrics": _metrics("1")}], True)]},
        {"ResultsByTime": [{"TimePeriod": {"Start": "soon"}, "Groups": []}]},
        # the same group twice: a paging bug must not double the costs
        {"ResultsByTime": [_entry(MAR, [{"Keys": ["S"], "Metrics": _metrics("1")}] * 2, True)]},
    ],
    ids=["month", "unit", "nan", "range", "keys", "period", "duplicate"],
)
def test_answers_that_cannot_be_stored_faithfully_are_refused(page: dict[str, Any]) -> None:
    with pytest.raises(MalformedAnswerError):
        transform.rows_from_pages([page], [FEB, MAR], "111111111111", False, TODAY)


def test_months_are_handed_over_as_soon_as_a_page_shows_them_complete() -> None:
    def group(service: str) -> dict[str, Any]:
        return {"Keys": [service], "Metrics": _metrics("1")}

    assembler = transform.MonthAssembler([JAN, FEB, MAR], "111111111111", False, TODAY)
    first = assembler.add({"ResultsByTime": [_entry(JAN, [group("A"), group("B")], False)]})
    assert first.months == {}  # January may go on on the next page
    second = assembler.add(
        {"ResultsByTime": [_entry(JAN, [group("C")], False), _entry(FEB, [group("A")], False)]}
    )
    assert second.months == {JAN: False} and len(second.rows) == 3 * 3
    third = assembler.add({"ResultsByTime": [_entry(MAR, [group("A")], True)]})
    assert third.months == {FEB: False} and {r.service for r in third.rows} == {"A"}
    rest = assembler.finish()
    assert rest.months == {MAR: True} and all(r.estimated for r in rest.rows)
    out_of_order = transform.MonthAssembler([JAN, FEB], "111111111111", False, TODAY)
    assert out_of_order.add({"ResultsByTime": [_entry(FEB, [], False)]}).months == {JAN: False}
    with pytest.raises(MalformedAnswerError):  # January was handed over (empty) already
        out_of_order.add({"ResultsByTime": [_entry(JAN, [group("A")], False)]})


def test_a_pull_resumed_from_what_an_earlier_run_kept_gives_the_same_months() -> None:
    def group(service: str) -> dict[str, Any]:
        return {"Keys": [service], "Metrics": _metrics("1")}

    pages = [
        {"ResultsByTime": [_entry(JAN, [group("A"), group("B")], False)]},
        {"ResultsByTime": [_entry(JAN, [group("C")], False), _entry(FEB, [group("A")], False)]},
        {"ResultsByTime": [_entry(FEB, [group("B")], False), _entry(MAR, [group("A")], True)]},
        {"ResultsByTime": [_entry(MAR, [group("B")], True)]},
    ]
    whole = transform.rows_from_pages(pages, [JAN, FEB, MAR], "111111111111", False, TODAY)

    first = transform.MonthAssembler([JAN, FEB, MAR], "111111111111", False, TODAY)
    done = [first.add(pages[0]), first.add(pages[1])]
    kept_rows = [*first.staged]  # the rows of February so far, as stored after page 2
    assert {r.month for r in kept_rows} == {FEB} and first.pending == {FEB: False, MAR: False}
    later = transform.MonthAssembler.resume(
        [JAN, FEB, MAR], "111111111111", False, TODAY, pending=first.pending, rows=kept_rows
    )
    done += [later.add(pages[2]), later.add(pages[3]), later.finish()]
    assert {m: f for d in done for m, f in d.months.items()} == whole.months
    assert sorted((r for d in done for r in d.rows), key=repr) == sorted(whole.rows, key=repr)
    with pytest.raises(MalformedAnswerError):  # a kept group answered again: a paging bug
        later_again = transform.MonthAssembler.resume(
            [JAN, FEB, MAR], "111111111111", False, TODAY, pending=first.pending, rows=kept_rows
        )
        later_again.add({"ResultsByTime": [_entry(FEB, [group("A")], False)]})


@pytest.mark.parametrize("today", [date(2025, 3, 1), TODAY, date(2025, 3, 31)])
def test_the_request_is_the_same_every_day_of_the_month(today: date) -> None:
    assert transform.cost_request(WINDOW, today, management=False) == transform.cost_request(
        WINDOW, TODAY, management=False
    )
    assert transform.cost_request([MAR], today, management=True)["TimePeriod"]["End"] == (
        "2025-04-01"
    )


def test_a_split_pull_filters_on_linked_accounts() -> None:
    group = transform.cost_request([MAR], TODAY, True, accounts=["333333333333", "222222222222"])
    values = {"Key": "LINKED_ACCOUNT", "Values": ["222222222222", "333333333333"]}
    assert group["Filter"] == {"Dimensions": values}
    others = transform.cost_request([MAR], TODAY, True, accounts=["222222222222"], exclude=True)
    assert others["Filter"] == {
        "Not": {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": ["222222222222"]}}
    }
    assert transform.request_months(others) == [MAR]
    assert transform.request_months(transform.cost_request(WINDOW, TODAY, False)) == WINDOW


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2025, 3, 14, 3, 0, 20, tzinfo=UTC), datetime(2025, 3, 15, 2, 0, tzinfo=UTC)),
        (datetime(2025, 3, 14, 23, 59, tzinfo=UTC), datetime(2025, 3, 15, 2, 0, tzinfo=UTC)),
        (datetime(2025, 12, 31, 3, 0, tzinfo=UTC), datetime(2026, 1, 1, 2, 0, tzinfo=UTC)),
    ],
)
def test_the_next_daily_run_falls_before_the_next_cron(now: datetime, expected: datetime) -> None:
    assert transform.next_daily_run(now) == expected
    assert transform.next_daily_run(now) < now.replace(hour=3, minute=0, second=0) + timedelta(
        days=1
    )


@pytest.mark.parametrize(
    ("failures", "draw", "low", "high"),
    [
        (0, 0.0, 7.5, 7.5),
        (0, 0.999, 7.5, 15),
        (2, 0.5, 30, 60),
        (10, 0.0, 180, 180),
        (10, 0.999, 180, 360),
    ],
)
def test_backoff_grows_with_jitter_and_a_cap(
    failures: int, draw: float, low: float, high: float
) -> None:
    now = datetime(2025, 3, 14, tzinfo=UTC)
    minutes = (transform.backoff(now, failures, draw) - now).total_seconds() / 60
    assert low <= minutes <= high
