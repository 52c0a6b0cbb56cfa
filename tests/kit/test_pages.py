"""shared.kit.pages: cursors round-trip and refuse what an endpoint did not produce; page sizes
are clamped."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.errors import BadRequestError
from shared.kit.pages import MAX_LIMIT, clamp_limit, decode_cursor, encode_cursor


def test_a_cursor_round_trips_its_position_to_the_microsecond() -> None:
    at = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    token = encode_cursor("events", at, "12345")
    assert decode_cursor("events", token) == (at, "12345")
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not base64 at all!",
        "bm90IGpzb24",  # "not json"
        encode_cursor("audit", datetime(2025, 1, 1, tzinfo=UTC), "1"),  # another endpoint's
        "WyJldmVudHMiLCAxLjUsICIxIl0",  # ["events", 1.5, "1"]: not an integer position
        "WyJldmVudHMiLCA5OTk5OTk5OTk5OTk5OTk5OTk5OTk5LCAiMSJd",  # out of range
        "WyJldmVudHMiLCB0cnVlLCAiMSJd",  # [.., true, ..]
    ],
)
def test_a_cursor_that_this_endpoint_did_not_produce_is_a_400(token: str) -> None:
    with pytest.raises(BadRequestError):
        decode_cursor("events", token)


@pytest.mark.parametrize(
    ("asked", "used"), [(1, 1), (100, 100), (500, 500), (501, 500), (10**9, 500)]
)
def test_page_sizes_are_clamped(asked: int, used: int) -> None:
    assert clamp_limit(asked) == used <= MAX_LIMIT
