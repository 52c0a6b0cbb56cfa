"""shared.kit.params: decimals, percent changes, content negotiation, text, UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from shared.kit.params import as_utc, check_text, dec_str, negotiate, percent_change


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("12.5000000000"), "12.5"),
        (Decimal("0E-10"), "0"),
        (Decimal("-0.0000000001"), "-0.0000000001"),
        (Decimal("100"), "100"),
        (Decimal("1E+2"), "100"),
        (Decimal("123456789.1234567891"), "123456789.1234567891"),
    ],
)
def test_amounts_are_plain_decimal_strings(amount: Decimal, text: str) -> None:
    assert dec_str(amount) == text


@pytest.mark.parametrize(
    ("previous", "current", "percent"),
    [("100", "150", "50"), ("200", "100", "-50"), ("0", "5", None), ("3", "4", "33.33")],
)
def test_percent_change(previous: str, current: str, percent: str | None) -> None:
    assert percent_change(Decimal(previous), Decimal(current)) == percent


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "json"),
        ("", "json"),
        ("*/*", "json"),
        ("application/json", "json"),
        ("text/csv", "csv"),
        ("text/*", "csv"),
        ("text/csv, application/json", "json"),
        ("text/csv;q=0.9, application/json;q=0.5", "csv"),
        ("application/json;q=0, text/csv", "csv"),
        ("text/csv, */*;q=0.1", "csv"),
        ("*/*, text/csv;q=0", "json"),
        ("application/xml", None),
        ("text/html, application/xml;q=0.9", None),
        ("application/json;q=nonsense, text/csv;q=0.2", "csv"),
    ],
)
def test_content_negotiation_picks_json_unless_csv_is_asked_for(
    accept: str | None, chosen: str | None
) -> None:
    assert negotiate(accept) == chosen


def test_text_with_nul_or_a_lone_surrogate_is_refused() -> None:
    assert check_text("ok é 日本") == "ok é 日本"
    for bad in ("a\x00b", "a\ud800b"):
        with pytest.raises(ValueError, match="must"):
            check_text(bad)


def test_datetimes_become_utc_and_stay_in_range() -> None:
    assert as_utc(datetime(2025, 1, 1, 12)) == datetime(2025, 1, 1, 12, tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    assert as_utc(datetime(2025, 1, 1, 12, tzinfo=plus_two)) == datetime(2025, 1, 1, 10, tzinfo=UTC)
    for bad in (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, tzinfo=plus_two)):
        with pytest.raises(ValueError, match=r"range|between"):
            as_utc(bad)
