"""Fixtures of the job system tests: the dispatched kinds narrowed to 'costs'.

`aws_settings` and `clock` come from tests/support/jobs.py."""

from __future__ import annotations

import pytest

from functions.jobs import service


@pytest.fixture(autouse=True)
def _costs_kind_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the job model with the 'costs' kind: other kinds (their owners
    test them) are neither dispatched nor requested here, so that what is published is
    predictable."""
    monkeypatch.setattr(service, "JOB_KINDS", ("costs",))
