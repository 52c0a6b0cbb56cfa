"""Session fixtures: network guard, a real Postgres database, settings, connections."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from shared import aws
from shared.settings import Settings, use_settings
from tests.support import netguard
from tests.support.database import TestDatabase, admin_url, create_test_database, truncate_all
from tests.support.factories import AgencyFixture, make_agency

# Our own (simulated) AWS account and principal. Fictional values.
CAO_ACCOUNT_ID = "123456789012"


def pytest_configure(config: pytest.Config) -> None:
    netguard.install()


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


@pytest.fixture
def settings(env: dict[str, str]) -> Iterator[Settings]:
    s = Settings(env)
    use_settings(s)
    yield s
    use_settings(None)


@pytest.fixture(autouse=True)
def _fresh_aws_session() -> Iterator[None]:
    aws.reset_session()
    yield
    aws.reset_session()


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
