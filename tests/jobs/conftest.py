"""Fixtures of the job system tests: the dispatched kinds narrowed to 'costs', and no
process-wide publisher left behind. `aws_settings` and `clock` come from tests/support/jobs.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from functions.jobs import service
from shared import queue


@pytest.fixture(autouse=True)
def _no_installed_publisher() -> Iterator[None]:
    yield
    queue.use_publisher(None)


@pytest.fixture(autouse=True)
def _costs_kind_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the job model with the 'costs' kind: other kinds (their owners
    test them) are neither dispatched nor requested here, so that what is published is
    predictable."""
    monkeypatch.setattr(service, "JOB_KINDS", ("costs",))
