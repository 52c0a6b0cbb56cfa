"""Fixtures for the simulated AWS's own tests (the session `sim` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from devstack import simaws
from devstack.simaws import SimulatedAws

# The simulator's "now" in these tests: just after the week of CloudTrail events they store
# (test_simaws.START/END, well within the 90 days LookupEvents keeps), and with the cost
# ledger's Q1 2024 in Cost Explorer's history.
SIM_NOW = datetime(2024, 5, 9, tzinfo=UTC)


@pytest.fixture
def fresh_sim(sim: SimulatedAws) -> Iterator[SimulatedAws]:
    """The session simulator, emptied (moto state and the simulator's stores), its clock at
    SIM_NOW."""
    sim.reset()
    page_size, history, real_clock = sim.ce_page_size, sim.ce_history_months, sim.clock
    sim.clock = lambda: SIM_NOW
    yield sim
    sim.ce_page_size, sim.ce_history_months, sim.clock = page_size, history, real_clock
    sim.delivery_delay = None
    sim.lookup_token_ttl_s = simaws.LOOKUP_TOKEN_TTL_S
    sim.ce_token_ttl_s = simaws.CE_TOKEN_TTL_S
    sim.faults.clear()
    sim.latency.clear()
