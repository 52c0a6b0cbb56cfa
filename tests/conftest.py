"""Session fixtures: network guard, a real Postgres database, settings, connections."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from devstack.server import create_local_app
from devstack.simaws import SimulatedAws
from shared import bootstrap
from shared.bootstrap import BotocoreSession, Database, Deps
from shared.settings import Settings
from tests.support import netguard
from tests.support.database import TestDatabase, admin_url, create_test_database, truncate_all
from tests.support.factories import AgencyFixture, make_agency

pytest_plugins = ["tests.support.jobs", "tests.support.onboarding"]

# Our own (simulated) AWS account and principal. Fictional values.
CAO_ACCOUNT_ID = "123456789012"

# Dummy credentials and no config files: nothing may fall back to a real profile, instance
# metadata or any endpoint but the simulator's.
_DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    # A proxy from the environment must not divert calls to the loopback simulator.
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def pytest_configure(config: pytest.Config) -> None:
    netguard.install()


# Fixtures that start a service: a test using none of them (directly or not) is a unit test,
# selected by `make unit` (-m unit).
_SERVICE_FIXTURES = frozenset({"database", "sim"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not _SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatedAws]:
    """The simulated AWS (moto on loopback, extended), one per session."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _DUMMY_AWS_ENV.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "MOTO_ACCOUNT_ID"):
            patch.delenv(name, raising=False)
        # LookupEvents throttling off: most tests run their code on a fake clock, which the
        # simulator's real-time quota would not see. Tests of throttling turn it on, on their clock.
        with SimulatedAws(lookup_events_rate=None) as simulator:
            yield simulator


@pytest.fixture
def aws_env(env: dict[str, str], sim: SimulatedAws) -> dict[str, str]:
    """`env` pointed at an emptied simulator, with our own cao-service user and its key."""
    sim.reset()
    sim.faults.clear()
    sim.latency.clear()
    key_id, secret = sim.create_user_with_key(CAO_ACCOUNT_ID, "cao-service")
    env.update(
        {
            "CAO_AWS_ENDPOINT_URL": sim.endpoint_url,
            "CAO_AWS_ACCESS_KEY_ID": key_id,
            "CAO_AWS_SECRET_ACCESS_KEY": secret,
        }
    )
    return env


@pytest.fixture(scope="session")
def database() -> Iterator[TestDatabase]:
    with admin_url() as url, create_test_database(url) as db:
        yield db


def base_env(db: TestDatabase) -> dict[str, str]:
    return {
        "DATABASE_URL": db.app_url,
        "DATABASE_OWNER_URL": db.owner_url,
        "CAO_AWS_ACCOUNT_ID": CAO_ACCOUNT_ID,
        "CRON_SECRET": "cron-secret-for-tests-0123456789",
        "POLAR_WEBHOOK_SECRET": "polar-webhook-secret-for-tests",
        "POLAR_ACCESS_TOKEN": "polar_oat_testtoken0123456789",
        "CAO_TEMPLATE_URL": "https://cao-templates.s3.amazonaws.com/role.yaml",
    }


@pytest.fixture
def env(database: TestDatabase) -> dict[str, str]:
    """The environment tests run the app with; tests may add to it before building apps."""
    return base_env(database)


@pytest.fixture(scope="session")
def botocore_session() -> BotocoreSession:
    """One botocore session for the whole run, as a deployed function has one per process (a
    new one per test would load each service model again, ~0.5 s). No test registers event
    hooks on it: faults are the simulator's."""
    return BotocoreSession()


@pytest.fixture(scope="session")
def pools() -> Iterator[Database]:
    """The connection pools of the whole run, as a deployed instance keeps one (a pool per test
    would open connections and threads each time); closed at the end."""
    database = Database()
    yield database
    database.close()


@pytest.fixture
def deps(env: dict[str, str], botocore_session: BotocoreSession, pools: Database) -> Iterator[Deps]:
    """The product's dependencies for this test, installed in the composition root: settings
    from `env`, the real clock, a fresh pacer, Vercel Queues as the publisher (tests that
    publish install their own)."""
    with bootstrap.use(Deps(Settings(env), botocore=botocore_session, database=pools)) as installed:
        yield installed


@pytest.fixture
def settings(deps: Deps) -> Settings:
    return deps.settings


@pytest.fixture
def app_conn(database: TestDatabase) -> Iterator[psycopg.Connection[Any]]:
    """A connection as the app role: row-level security applies."""
    with database.app() as conn:
        yield conn


@pytest.fixture
def owner_conn(database: TestDatabase) -> Iterator[psycopg.Connection[Any]]:
    """A connection as the schema owner: for inspecting what the app could not see."""
    with database.owner() as conn:
        yield conn


@pytest.fixture
def clean_db(database: TestDatabase) -> TestDatabase:
    """For tests that look across all agencies (dispatcher, purge): start from empty tables."""
    truncate_all(database)
    return database


@pytest.fixture
def agency(app_conn: psycopg.Connection[Any]) -> AgencyFixture:
    return make_agency(app_conn)


@pytest.fixture
def other_agency(app_conn: psycopg.Connection[Any]) -> AgencyFixture:
    return make_agency(app_conn)


@pytest.fixture(scope="session")
def local_app() -> FastAPI:
    """Every api file's routers in one app, as `make demo` serves them."""
    return create_local_app()


@pytest.fixture
def client(settings: Settings, local_app: FastAPI) -> Iterator[TestClient]:
    """A client of the local app (folders that need another app override this fixture)."""
    with TestClient(local_app) as c:
        yield c
