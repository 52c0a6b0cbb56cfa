"""Fixtures of the CloudTrail sync tests: the simulated AWS, a linked account with its role."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from devstack.simaws import SimulatedAws
from shared import aws
from shared.bootstrap import Deps
from shared.pacing import Pacer
from shared.policy import ROLE_POLICY, trust_policy
from shared.settings import Settings
from tests.conftest import CAO_ACCOUNT_ID
from tests.support.factories import AgencyFixture, make_account
from tests.sync_cloudtrail.helpers import FakeClock

ROLE_NAME = "CloudAgencyOpsReadOnly"


@pytest.fixture
def fresh_sim(sim: SimulatedAws, clock: FakeClock) -> Iterator[SimulatedAws]:
    """The session simulator, emptied, answering LookupEvents as of the test's fake clock."""
    sim.reset()
    real_clock = sim.clock
    sim.clock = clock.now
    yield sim
    sim.clock = real_clock
    sim.delivery_delay = None
    sim.faults.clear()
    sim.latency.clear()


@pytest.fixture
def aws_settings(fresh_sim: SimulatedAws, env: dict[str, str]) -> Settings:
    key, secret = fresh_sim.create_user_with_key(CAO_ACCOUNT_ID, "cao-service")
    env.update(
        CAO_AWS_ENDPOINT_URL=fresh_sim.endpoint_url,
        CAO_AWS_ACCESS_KEY_ID=key,
        CAO_AWS_SECRET_ACCESS_KEY=secret,
    )
    return Settings(env)


@dataclass
class Linked:
    """A linked account: our row, its AWS id, and how to get clients assumed into it."""

    agency: AgencyFixture
    account_id: uuid.UUID
    aws_account_id: str
    role_arn: str
    settings: Settings

    def assume(self) -> aws.ClientFactory:
        return aws.assume_role(
            Deps(self.settings).our_clients(),
            self.role_arn,
            self.agency.external_id,
            aws.session_name(self.agency.id),
        )


@pytest.fixture
def linked(
    fresh_sim: SimulatedAws,
    aws_settings: Settings,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
) -> Linked:
    aws_account_id = f"{secrets.randbelow(10**11) + 10**11:012d}"
    role_arn = fresh_sim.create_role(
        aws_account_id, ROLE_NAME, trust_policy(CAO_ACCOUNT_ID, agency.external_id), ROLE_POLICY
    )
    account_id = make_account(app_conn, agency.id, aws_account_id, role_arn=role_arn)
    return Linked(agency, account_id, aws_account_id, role_arn, aws_settings)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pacer(clock: FakeClock) -> Pacer:
    return Pacer(clock=clock.monotonic, sleep=clock.sleep)
