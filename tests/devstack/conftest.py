"""Fixtures for the simulated AWS's own tests (the session `sim` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.simaws import SimulatedAws


@pytest.fixture
def fresh_sim(sim: SimulatedAws) -> Iterator[SimulatedAws]:
    """The session simulator, emptied (moto state and the simulator's stores)."""
    sim.reset()
    page_size = sim.ce_page_size
    yield sim
    sim.ce_page_size = page_size
    sim.faults.clear()
    sim.latency.clear()
