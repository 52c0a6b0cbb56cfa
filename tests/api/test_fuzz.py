"""Schemathesis over every operation and method of the local server's OpenAPI document (all api
files, not only the read API): generated valid and invalid requests, sent with a live admin key
of a fresh agency per operation, must never get a 5xx nor a response that contradicts the
document. AWS is the simulator and Polar the fake (both on loopback), as in the other tests.

Bounded for `make test`: 25 examples per operation, no shrinking database, fixed seed.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance

from devstack.fake_polar import FakePolar
from devstack.server import create_local_app
from devstack.simaws import SimulatedAws
from shared.settings import Settings
from tests.conftest import CAO_ACCOUNT_ID, base_env
from tests.support.database import TestDatabase
from tests.support.deps import with_settings
from tests.support.factories import AgencyFixture, make_agency

EXAMPLES = 25
calls: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module")
def fake_polar() -> Iterator[FakePolar]:
    with FakePolar(token="polar_oat_testtoken0123456789") as polar:  # base_env's token
        yield polar


@pytest.fixture(scope="module")
def fuzz_settings(
    database: TestDatabase, sim: SimulatedAws, fake_polar: FakePolar
) -> Iterator[Settings]:
    """One environment for the module: the simulator with our cao-service key, the fake Polar."""
    sim.reset()
    key_id, secret = sim.create_user_with_key(CAO_ACCOUNT_ID, "cao-service")
    env = {
        **base_env(database),
        "CAO_AWS_ENDPOINT_URL": sim.endpoint_url,
        "CAO_AWS_ACCESS_KEY_ID": key_id,
        "CAO_AWS_SECRET_ACCESS_KEY": secret,
        "POLAR_API_URL": fake_polar.url,
        "POLAR_PRODUCT_STARTER": "11111111-1111-4111-8111-111111111111",
        "POLAR_PRODUCT_PRO": "22222222-2222-4222-8222-222222222222",
    }
    with with_settings(env) as deps:
        yield deps.settings


@pytest.fixture
def fuzz_agency(fuzz_settings: Settings, app_conn: psycopg.Connection[Any]) -> AgencyFixture:
    """A fresh agency per operation (one operation may delete its agency)."""
    return make_agency(app_conn)


# Loaded at collection (the lazy `from_fixture` loader does not run on this pytest); building
# the app imports every api file and connects nowhere.
schema = schemathesis.openapi.from_asgi(
    "/api/openapi.json",
    create_local_app(),
    config=SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}}),
)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_5xx_or_outside_its_documented_schema(
    case: Any, fuzz_agency: AgencyFixture
) -> None:
    calls[f"{case.method} {case.path}"] += 1
    headers = dict(case.headers or {})
    headers.setdefault("Authorization", fuzz_agency.headers["Authorization"])
    case.call_and_validate(
        headers=headers, checks=[not_a_server_error, response_schema_conformance]
    )


def test_every_operation_was_fuzzed_with_at_least_25_examples(local_app: FastAPI) -> None:
    """Operations that take input got 25 examples or more; those that take none (no
    parameter, no body) have exactly one possible request, sent at least once."""
    if not calls:
        pytest.skip("the fuzz test did not run in this session (deselected)")
    spec = local_app.openapi()
    wanted = {
        f"{method.upper()} {path}": EXAMPLES if op.get("parameters") or op.get("requestBody") else 1
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }
    short = {op: calls[op] for op, n in wanted.items() if calls[op] < n}
    assert not short, short
