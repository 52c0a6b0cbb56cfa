"""Redaction: secrets are masked by key name at any depth and by value pattern."""

from __future__ import annotations

import pytest

from shared.redaction import MASK, scrub, scrub_text


@pytest.mark.parametrize(
    "secret",
    [
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAZZZZZZZZZZZZZZZZ",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "postgresql://app:pa55@db.example.com/neondb",
        "Bearer cao_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "cao_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "IQoJb3JpZ2luX2VjE" + "A" * 120,
    ],
)
def test_secret_shaped_values_are_masked_in_text(secret: str) -> None:
    out = scrub_text(f"before {secret} after")
    assert secret not in out
    assert MASK in out


def test_ordinary_text_is_left_alone() -> None:
    text = "synced 12 months for account 123456789012 in us-east-1 (commit " + "a" * 40 + ")"
    assert scrub_text(text) == text


def test_sensitive_keys_are_masked_at_any_depth() -> None:
    event = {
        "request": {
            "headers": {"Authorization": "x", "webhook-signature": "v1,abc"},
            "data": [{"SecretAccessKey": "y", "nested": {"external_id": "z", "ok": "fine"}}],
        },
        "cron_secret": "w",
    }
    out = scrub(event)
    assert out["request"]["headers"] == {"Authorization": MASK, "webhook-signature": MASK}
    assert out["request"]["data"][0]["SecretAccessKey"] == MASK
    assert out["request"]["data"][0]["nested"] == {"external_id": MASK, "ok": "fine"}
    assert out["cron_secret"] == MASK
