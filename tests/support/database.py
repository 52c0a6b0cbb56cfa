"""The test database: a real PostgreSQL, reached over a real connection.

`TEST_DATABASE_URL` (a superuser URL) when set; otherwise an embedded server (pgserver) in a
temporary directory. Each test session creates its own database, owned by the `cao_owner` role
which applies schema.sql, and the app code connects as `cao_app` (no superuser, no BYPASSRLS,
owns nothing), so row-level security is exercised for real.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from devstack import pg
from tests.support.netguard import assert_loopback_url

OWNER_ROLE = pg.OWNER_ROLE
APP_ROLE = pg.APP_ROLE
OWNER_PASSWORD = "owner-test-password"
APP_PASSWORD = "app-test-password"


@dataclass(frozen=True)
class TestDatabase:
    __test__ = False  # not a test class, despite the name

    admin_url: str
    owner_url: str
    app_url: str
    name: str

    def owner(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.owner_url, autocommit=True, prepare_threshold=None)

    def app(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.app_url, autocommit=True, prepare_threshold=None)


@contextmanager
def admin_url() -> Iterator[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        assert_loopback_url(url)
        yield url
        return
    with (
        tempfile.TemporaryDirectory(prefix="cao-pg-") as data,
        pg.embedded_server(Path(data), keep=False) as embedded,
    ):
        yield embedded


@contextmanager
def create_test_database(url: str) -> Iterator[TestDatabase]:
    name = f"cao_test_{secrets.token_hex(4)}"
    local = pg.bootstrap(url, name, OWNER_PASSWORD, APP_PASSWORD)
    try:
        yield TestDatabase(local.admin_url, local.owner_url, local.app_url, local.name)
    finally:
        pg.drop(url, name)


TENANT_TABLES = [
    "agencies",
    "external_ids",
    "api_keys",
    "accounts",
    "discovered_accounts",
    "cost_rows",
    "cost_months",
    "cost_account_months",
    "cost_pulls",
    "cost_pull_rows",
    "access_events",
    "access_principals",
    "access_principal_ips",
    "access_principal_totals",
    "access_vendor_sessions",
    "access_vendor_event_names",
    "access_vendor_ips",
    "sync_jobs",
    "sync_cursors",
    "sync_runs",
    "runbooks",
    "runbook_versions",
    "audit_log",
    "notice_deliveries",
    "users",
    "passkeys",
    "sessions",
    "invitations",
    "enrolments",
    "clients",
    "client_accounts",
    "cost_snapshots",
    "budgets",
    "budget_events",
    "anomalies",
    "anomaly_settings",
]


def truncate_all(db: TestDatabase) -> None:
    with db.owner() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'cao'"
                " AND tablename <> 'schema_migrations'"
            )
        ]
        conn.execute(
            sql.SQL("TRUNCATE {} CASCADE").format(
                sql.SQL(", ").join(sql.Identifier("cao", t) for t in tables)
            )
        )
