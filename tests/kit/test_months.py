"""shared.kit.months: months parsed, spanned and shifted."""

from __future__ import annotations

from datetime import date

import pytest

from shared.errors import UnprocessableError
from shared.kit.months import add_months, month_span, parse_month


def test_months_are_parsed_spanned_and_shifted() -> None:
    assert parse_month("2025-02") == date(2025, 2, 1)
    assert add_months(date(2025, 1, 1), -1) == date(2024, 12, 1)
    assert add_months(date(2024, 11, 1), 14) == date(2026, 1, 1)
    assert month_span(date(2024, 11, 1), date(2025, 2, 1)) == [
        date(2024, 11, 1),
        date(2024, 12, 1),
        date(2025, 1, 1),
        date(2025, 2, 1),
    ]
    for bad in ("2025-13", "2025-1", "25-01", "2025-00", "1800-01"):
        with pytest.raises(UnprocessableError):
            parse_month(bad)
