"""Fixtures of the cost sync tests: no real sleeping in botocore's retries, small pages.

Settings pointed at the simulated AWS (`aws_settings`) and the frozen clock (`clock`) come from
tests/support/jobs.py, shared with tests/jobs."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import botocore.endpoint
import pytest

from devstack.simaws import SimulatedAws


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's retry sleeps, recorded instead of slept (endpoint.py only calls time.sleep)."""
    slept: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", SimpleNamespace(sleep=slept.append))
    return slept


@pytest.fixture
def small_pages(sim: SimulatedAws) -> Iterator[SimulatedAws]:
    """Cost Explorer pages of 2 groups, so that every sync pages."""
    before = sim.ce_page_size
    sim.ce_page_size = 2
    yield sim
    sim.ce_page_size = before
