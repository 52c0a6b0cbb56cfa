"""Fixtures for the simulated AWS's own tests (the session `sim` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devstack import simaws
from devstack.simaws import SimulatedAws

SIM_NOW = datetime(2024, 5, 9, tzinfo=UTC)


@pytest.fixture
def fresh_sim(sim: SimulatedAws) -> Iterator[SimulatedAws]:
    """The session simulator, emptied (moto state and the simulator's stores)."""
    sim.reset()
    page_size, real_clock = sim.ce_page_size, sim.clock
    # LookupEvents answers as of the simulator's clock: a fixed moment just after the week of
    # events these tests store (see test_simaws.START/END), well within the 90 days it keeps.
    sim.clock = lambda: SIM_NOW
    yield sim
    sim.clock = real_clock
    sim.delivery_delay = None
    sim.lookup_token_ttl_s = simaws.LOOKUP_TOKEN_TTL_S
    sim.ce_page_size = page_size
    sim.faults.clear()
    sim.latency.clear()
