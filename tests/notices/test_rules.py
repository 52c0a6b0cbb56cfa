"""The pure rules of notices: what a notice must hold, the 30-day rule, cursors. No I/O."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from functions.notices import rules
from shared.errors import AppError
from shared.policy import SUBPROCESSOR_NOTICE_DAYS

NOW = datetime(2026, 6, 1, 23, 59, tzinfo=UTC)


def change(effective: date, **overrides: Any) -> rules.ChangeDraft:
    fields: dict[str, Any] = {
        "title": "New sub-processor",
        "facts": "facts",
        "effective": effective,
        "data_categories": "",
        "contact": "security@cloudagencyops.com",
        "urgent": False,
        "reason": None,
        "now": NOW,
        **overrides,
    }
    return rules.change_draft(**fields)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b", ("a", "b")),
        (" a , b ,a,, ", ("a", "b")),
        ("contact email", ("contact email",)),
    ],
)
def test_data_categories_are_trimmed_and_deduplicated(text: str, expected: tuple[str]) -> None:
    assert rules.parse_categories(text, required=True) == expected


@pytest.mark.parametrize(
    "text", ["", " , ,", ",".join(f"c{n}" for n in range(21)), "x" * 101, "a\nb"]
)
def test_bad_data_categories_are_refused(text: str) -> None:
    with pytest.raises(AppError, match="--data-categories"):
        rules.parse_categories(text, required=True)


@pytest.mark.parametrize(
    ("days", "accepted"),
    [(-1, False), (0, False), (29, False), (SUBPROCESSOR_NOTICE_DAYS, True), (400, True)],
)
def test_the_30_day_rule_counts_whole_days_from_today_in_utc(days: int, accepted: bool) -> None:
    effective = NOW.date() + timedelta(days=days)
    if accepted:
        draft = change(effective)
        assert draft.effective_at == datetime.combine(effective, datetime.min.time(), UTC)
    else:
        with pytest.raises(AppError, match="--effective"):
            change(effective)


def test_the_day_is_the_utc_day_whatever_the_clock_zone() -> None:
    # 23:59 UTC on June 1st is already June 2nd in Tokyo: still June 1st for the rule.
    tokyo = NOW.astimezone(ZoneInfo("Asia/Tokyo"))
    assert rules.days_ahead(date(2026, 7, 1), tokyo) == 30


def test_urgent_changes_need_a_reason_and_may_be_sooner_but_never_past() -> None:
    soon = NOW.date() + timedelta(days=2)
    assert change(soon, urgent=True, reason="provider outage").urgent_reason == "provider outage"
    assert change(NOW.date(), urgent=True, reason="legal order").effective_at.date() == NOW.date()
    with pytest.raises(AppError, match="--urgent needs --reason"):
        change(soon, urgent=True)
    with pytest.raises(AppError, match="--reason is only for --urgent"):
        change(NOW.date() + timedelta(days=40), reason="why not")
    with pytest.raises(AppError, match="in the past"):
        change(NOW.date() - timedelta(days=1), urgent=True, reason="too late")
    with pytest.raises(AppError, match="more than"):
        change(NOW.date() + timedelta(days=rules.MAX_EFFECTIVE_DAYS + 1))


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("title", "  ", "--title"),
        ("title", "two\nlines", "--title"),
        ("title", "x" * 201, "--title"),
        ("facts", "x" * 8001, "--facts"),
        ("facts", "nul\x00", "--facts"),
        ("mitigation", "", "--mitigation"),
        ("contact", "", "--contact"),
        ("data_categories", ",", "--data-categories"),
    ],
)
def test_an_incident_without_what_the_page_promises_is_refused(
    field: str, value: str, flag: str
) -> None:
    fields: dict[str, Any] = {
        "title": "t",
        "facts": "f",
        "data_categories": "c",
        "mitigation": "m",
        "contact": "security@cloudagencyops.com",
        "confirmed_at": None,
        "now": NOW,
        field: value,
    }
    with pytest.raises(AppError, match=flag):
        rules.incident_draft(**fields)


def test_multi_line_facts_are_kept() -> None:
    draft = rules.incident_draft(
        title="t",
        facts="line one\nline two\n",
        data_categories="c",
        mitigation="m",
        contact="c@x",
        confirmed_at=None,
        now=NOW,
    )
    assert draft.known_facts == "line one\nline two"


@pytest.mark.parametrize(
    ("hours", "late"), [(None, None), (1, None), (24, None), (24.5, 24.5), (72, 72.0)]
)
def test_hours_late_counts_past_the_24_hour_target(hours: float | None, late: float | None) -> None:
    confirmed = None if hours is None else NOW - timedelta(hours=hours)
    assert rules.hours_late(confirmed, NOW) == late


def test_a_confirmation_in_the_future_is_refused() -> None:
    with pytest.raises(AppError, match="--confirmed-at"):
        rules.incident_draft(
            title="t",
            facts="f",
            data_categories="c",
            mitigation="m",
            contact="c@x",
            confirmed_at=NOW + timedelta(minutes=1),
            now=NOW,
        )


def test_a_cursor_round_trips() -> None:
    at = datetime(2026, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)
    notice_id = uuid.uuid4()
    assert rules.decode_cursor(rules.encode_cursor(at, notice_id)) == (at, notice_id)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'["notices", 1, "not-a-uuid"]',
        b'["events", 1, "00000000-0000-4000-8000-000000000000"]',
        b'["notices", true, "00000000-0000-4000-8000-000000000000"]',
        b'["notices", 1e300, "00000000-0000-4000-8000-000000000000"]',
        b'["notices", 99999999999999999999999, "00000000-0000-4000-8000-000000000000"]',
        b'["notices", -1, "00000000-0000-4000-8000-000000000000"]',
        b"\xff\xfe",
    ],
)
def test_forged_cursors_are_a_400(raw: bytes) -> None:
    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    with pytest.raises(AppError, match="cursor") as info:
        rules.decode_cursor(token)
    assert info.value.status == 400
