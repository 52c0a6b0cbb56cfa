"""Fixtures of the cost sync tests: settings pointed at the simulated AWS, a frozen clock,
no real sleeping in botocore's retries, and no process-wide publisher left behind."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import botocore.endpoint
import pytest

from devstack.simaws import SimulatedAws
from functions.sync_costs import queue, registry
from shared.settings import Settings, use_settings
from tests.sync_costs.helpers import START, Clock


@pytest.fixture
def aws_settings(aws_env: dict[str, str]) -> Iterator[Settings]:
    """Process-wide settings with our cao-service key in an emptied simulator."""
    s = Settings(aws_env)
    use_settings(s)
    yield s
    use_settings(None)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


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


@pytest.fixture(autouse=True)
def _no_installed_publisher() -> Iterator[None]:
    yield
    queue.use_publisher(None)


@pytest.fixture(autouse=True)
def _costs_kind_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the 'costs' kind and the job model: other registered kinds (their
    owners test them) are left out, so that what is dispatched here is predictable."""
    monkeypatch.setattr(registry, "HANDLERS", {"costs": registry.HANDLERS["costs"]})
