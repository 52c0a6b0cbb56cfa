"""Fixtures of the notices tests: the operator command run in-process against the test
database's owner URL, and an HTTP client on the local app (every api file's routers)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from functions.notices import operator
from shared.settings import Settings
from tests.support.database import TestDatabase

# The operator's clock in these tests: the 30-day rule counts from this day (UTC).
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str

    @property
    def notice_id(self) -> str:
        """The id the command printed alone on stdout."""
        assert self.code == 0, self.err
        return self.out.strip()


Operator = Callable[..., Outcome]


@pytest.fixture
def env(database: TestDatabase, env: dict[str, str]) -> dict[str, str]:
    # Operators connect as the schema owner; said explicitly, as the command reads it.
    env["DATABASE_OWNER_URL"] = database.owner_url
    return env


@pytest.fixture
def run_operator(settings: Settings, capsys: pytest.CaptureFixture[str]) -> Operator:
    """`functions.notices.operator.main(argv)` with the fixed clock; its exit code and output."""

    def run(*argv: str, now: datetime = NOW) -> Outcome:
        capsys.readouterr()
        code = operator.main(list(argv), clock=lambda: now)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run


def incident_args(*audience: str, title: str = "Credential exposure in logs") -> list[str]:
    return [
        "publish-incident",
        "--title",
        title,
        "--facts",
        "A log sink kept request headers for 3 hours.",
        "--data-categories",
        "API key prefixes, request paths",
        "--mitigation",
        "Keys rotated; the sink was purged.",
        "--contact",
        "security@cloudagencyops.com",
        *audience,
    ]
