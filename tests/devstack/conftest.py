"""Fixtures for the simulated AWS's own tests (the session `sim` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devstack.simaws import SimulatedAws

# "Today" for the simulated Cost Explorer in these tests: the ledger's Q1 2024 is history.
SIM_NOW = datetime(2024, 4, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def fresh_sim(sim: SimulatedAws) -> Iterator[SimulatedAws]:
    """The session simulator, emptied (moto state and the simulator's stores), its clock at
    SIM_NOW."""
    sim.reset()
    page_size, history, clock = sim.ce_page_size, sim.ce_history_months, sim.clock
    sim.clock = lambda: SIM_NOW
    yield sim
    sim.ce_page_size, sim.ce_history_months, sim.clock = page_size, history, clock
    sim.faults.clear()
    sim.latency.clear()
