"""Helpers and fixtures of the job and cost sync tests (tests/jobs, tests/sync_costs): linked
accounts with their role, cost ledger edits, job runs through the worker; settings pointed at the
simulated AWS and a frozen clock (a plugin: tests/conftest.py lists it in `pytest_plugins`)."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from devstack.simaws import SimulatedAws
from functions.jobs import worker
from functions.jobs.schemas import JobMessage
from shared import bootstrap
from shared.db import tenant_tx
from shared.policy import ROLE_POLICY, trust_policy
from shared.settings import Settings
from shared.store import jobs
from tests.conftest import CAO_ACCOUNT_ID
from tests.support.deps import with_settings
from tests.support.factories import AgencyFixture, make_account

START = datetime(2025, 3, 14, 3, 0, tzinfo=UTC)
ROLE_NAME = "CloudAgencyOpsReadOnly"
METRICS = ("UnblendedCost", "AmortizedCost", "NetUnblendedCost")


class Clock:
    """A settable UTC clock shared by threads."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


@pytest.fixture
def aws_settings(aws_env: dict[str, str], sim: SimulatedAws) -> Iterator[Settings]:
    """Process-wide settings with our cao-service key in an emptied simulator (its "today",
    which Cost Explorer checks dates against, is the real one unless `clock` is used)."""
    before = sim.clock
    try:
        with with_settings(aws_env) as deps:
            yield deps.settings
    finally:
        sim.clock = before


@pytest.fixture
def clock(aws_settings: Settings, sim: SimulatedAws) -> Clock:
    """The frozen clock at START, also the simulated AWS's "today" (until `aws_settings`
    ends)."""
    frozen = Clock(START)
    sim.clock = frozen
    return frozen


def aws_id() -> str:
    return f"{secrets.randbelow(9 * 10**11) + 10**11:012d}"


@dataclass(frozen=True)
class Linked:
    agency: AgencyFixture
    account_id: uuid.UUID
    aws_account_id: str

    @property
    def agency_id(self) -> uuid.UUID:
        return self.agency.id


def link(
    sim: SimulatedAws | None,
    conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    *,
    management: bool = False,
    aws_account_id: str | None = None,
    due_at: datetime = START,
) -> Linked:
    """An account linked the way onboarding leaves it: its role in the simulator (unless `sim`
    is None), its row, and its jobs due at `due_at`."""
    account = aws_account_id or aws_id()
    if sim is not None:
        sim.create_role(
            account, ROLE_NAME, trust_policy(CAO_ACCOUNT_ID, agency.external_id), ROLE_POLICY
        )
    account_id = make_account(conn, agency.id, account, is_management=management)
    with tenant_tx(conn, agency.id):
        jobs.ensure_jobs(conn, agency.id, account_id, due_at=due_at)
    return Linked(agency, account_id, account)


def put_year(sim: SimulatedAws, account: str, services: dict[str, str], *, current: str) -> None:
    """Costs for the 14 months ending with `current` ("YYYY-MM"): the current month Estimated."""
    year, month = (int(p) for p in current.split("-"))
    for back in range(14):
        index = year * 12 + month - 1 - back
        label = f"{index // 12}-{index % 12 + 1:02d}"
        for service, amount in services.items():
            sim.put_cost(
                account, label, service, dict.fromkeys(METRICS, amount), estimated=back == 0
            )


def drop_cost(sim: SimulatedAws, account: str, month: str, service: str) -> None:
    """The service vanished from AWS's answer for that month (the simulator has no public
    call for it: edits its ledger under its lock)."""
    first = date.fromisoformat(month + "-01")
    with sim._lock:
        sim._stores.ledger[:] = [
            r
            for r in sim._stores.ledger
            if not (r.account_id == account and r.month == first and r.service == service)
        ]


def set_estimated(sim: SimulatedAws, account: str, month: str, estimated: bool) -> None:
    """AWS finalised (or not) the month: flips the ledger rows' Estimated flag."""
    first = date.fromisoformat(month + "-01")
    with sim._lock:
        for row in sim._stores.ledger:
            if row.account_id == account and row.month == first:
                row.estimated = estimated


def job_id(conn: psycopg.Connection[Any], linked: Linked, kind: str = "costs") -> uuid.UUID:
    with tenant_tx(conn, linked.agency_id):
        row = conn.execute(
            "SELECT id FROM cao.sync_jobs WHERE account_id = %s AND kind = %s",
            (linked.account_id, kind),
        ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def message(conn: psycopg.Connection[Any], linked: Linked, period: datetime = START) -> JobMessage:
    return JobMessage(job_id(conn, linked), linked.agency_id, "costs", period)


def run_costs(
    conn: psycopg.Connection[Any], linked: Linked, clock: Clock, delivery: int = 1
) -> float | None:
    """One delivery of the account's costs job, through the consumer, on the frozen clock."""
    deps = bootstrap.current().but(clock=clock)
    return worker.process(conn, message(conn, linked, clock()), delivery, deps)


def job(conn: psycopg.Connection[Any], linked: Linked, kind: str = "costs") -> dict[str, Any]:
    with tenant_tx(conn, linked.agency_id):
        cur = conn.execute(
            "SELECT * FROM cao.sync_jobs WHERE account_id = %s AND kind = %s",
            (linked.account_id, kind),
        )
        row = cur.fetchone()
        assert row is not None and cur.description is not None
        return dict(zip([c.name for c in cur.description], row, strict=True))


def account(conn: psycopg.Connection[Any], linked: Linked) -> dict[str, Any]:
    with tenant_tx(conn, linked.agency_id):
        cur = conn.execute("SELECT * FROM cao.accounts WHERE id = %s", (linked.account_id,))
        row = cur.fetchone()
        assert row is not None and cur.description is not None
        return dict(zip([c.name for c in cur.description], row, strict=True))


def runs(conn: psycopg.Connection[Any], linked: Linked) -> list[dict[str, Any]]:
    with tenant_tx(conn, linked.agency_id):
        cur = conn.execute(
            "SELECT * FROM cao.sync_runs WHERE account_id = %s ORDER BY started_at, id",
            (linked.account_id,),
        )
        assert cur.description is not None
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def cost_rows(
    conn: psycopg.Connection[Any], linked: Linked
) -> dict[tuple[str, str, str, str], tuple[Decimal, bool]]:
    """The account's rows: (usage account, YYYY-MM, service, metric) -> (amount, estimated)."""
    with tenant_tx(conn, linked.agency_id):
        rows = conn.execute(
            "SELECT usage_account_id, to_char(month, 'YYYY-MM'), service, metric, amount,"
            " estimated FROM cao.cost_rows WHERE account_id = %s",
            (linked.account_id,),
        ).fetchall()
    return {(r[0], r[1], r[2], r[3]): (r[4], r[5]) for r in rows}


def agency_total(
    conn: psycopg.Connection[Any], agency_id: uuid.UUID, usage_account: str, metric: str
) -> Decimal:
    """What the agency's reports would sum for one AWS account (every row, whatever link)."""
    with tenant_tx(conn, agency_id):
        row = conn.execute(
            "SELECT coalesce(sum(amount), 0) FROM cao.cost_rows"
            " WHERE agency_id = %s AND usage_account_id = %s AND metric = %s",
            (agency_id, usage_account, metric),
        ).fetchone()
    assert row is not None
    return Decimal(row[0])


def ce_calls(sim: SimulatedAws, account: str) -> list[dict[str, Any]]:
    return [
        c.params
        for c in sim.calls
        if c.service == "ce" and c.operation == "GetCostAndUsage" and c.account_id == account
    ]
