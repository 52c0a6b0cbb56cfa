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
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from shared import schema
from tests.support.netguard import assert_loopback_url

OWNER_ROLE = "cao_owner"
APP_ROLE = "cao_app"
OWNER_PASSWORD = "owner-test-password"  # noqa: S105 - local test cluster only
APP_PASSWORD = "app-test-password"  # noqa: S105


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
    import pgserver  # noqa: PLC0415 - only when no server is given

    with tempfile.TemporaryDirectory(prefix="cao-pg-") as data:
        server = pgserver.get_server(data, cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


def _ensure_role(conn: psycopg.Connection[Any], role: str, password: str, extra: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(
        sql.SQL("{} ROLE {} LOGIN PASSWORD {} " + extra).format(
            sql.SQL(verb), sql.Identifier(role), sql.Literal(password)
        )
    )


@contextmanager
def create_test_database(url: str) -> Iterator[TestDatabase]:
    name = f"cao_test_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as admin:
        _ensure_role(admin, OWNER_ROLE, OWNER_PASSWORD, "NOSUPERUSER NOBYPASSRLS NOCREATEROLE")
        _ensure_role(admin, APP_ROLE, APP_PASSWORD, "NOSUPERUSER NOBYPASSRLS NOCREATEROLE")
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(OWNER_ROLE)
            )
        )
    db = TestDatabase(
        admin_url=make_conninfo(url, dbname=name),
        owner_url=make_conninfo(url, dbname=name, user=OWNER_ROLE, password=OWNER_PASSWORD),
        app_url=make_conninfo(url, dbname=name, user=APP_ROLE, password=APP_PASSWORD),
        name=name,
    )
    try:
        with db.owner() as conn:
            schema.apply(conn)
        yield db
    finally:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


TENANT_TABLES = [
    "agencies",
    "external_ids",
    "api_keys",
    "accounts",
    "discovered_accounts",
    "cost_rows",
    "cost_months",
    "access_events",
    "sync_jobs",
    "sync_cursors",
    "sync_runs",
    "runbooks",
    "runbook_versions",
    "audit_log",
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
