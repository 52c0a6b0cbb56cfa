"""Settings: read from a mapping, lazily, secrets masked, missing values named."""

from __future__ import annotations

import pytest

from shared import redaction
from shared.errors import ConfigError
from shared.settings import VARS, Secret, Settings


def test_a_secret_never_shows_its_value_in_repr_or_str() -> None:
    s = Secret("hunter2-very-secret")
    assert "hunter2" not in repr(s) and "hunter2" not in str(s) and "hunter2" not in f"{s}"
    assert s.reveal() == "hunter2-very-secret"


def test_a_missing_variable_raises_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError) as err:
        _ = Settings({}).database_url
    assert "DATABASE_URL" in err.value.message
    assert err.value.status == 503


def test_defaults_apply_only_to_variables_that_have_one() -> None:
    s = Settings({})
    assert s.get("POLAR_API_URL") == "https://api.polar.sh"
    assert s.aws_endpoint_url is None


@pytest.mark.parametrize("value", ["12345", "abcdefghijkl", "1234567890123"])
def test_our_account_id_must_be_twelve_digits(value: str) -> None:
    with pytest.raises(ConfigError, match="12-digit"):
        _ = Settings({"CAO_AWS_ACCOUNT_ID": value}).aws_account_id


def test_configured_secrets_are_scrubbed_from_text_by_value() -> None:
    value = "plain-looking-cron-value-7731"
    Settings({"CRON_SECRET": value})
    assert value not in redaction.scrub_text(f"oops {value} leaked")


def test_every_variable_is_documented() -> None:
    for var in VARS.values():
        assert var.doc.strip(), var.name
