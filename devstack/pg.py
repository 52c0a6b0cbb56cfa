"""Local Postgres for the demo and the tests: an embedded server, roles, a database, the schema.

Production uses Neon with two roles created in its console (see README). Locally the same shape
is built here: `cao_owner` owns the database and applies schema.sql; `cao_app` logs in for the
app and owns nothing. The embedded server (pgserver) is used when no server URL is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from shared import schema

OWNER_ROLE = "cao_owner"
APP_ROLE = "cao_app"


@dataclass(frozen=True)
class LocalDatabase:
    admin_url: str
    owner_url: str
    app_url: str
    name: str


@contextmanager
def embedded_server(data_dir: Path, *, keep: bool) -> Iterator[str]:
    """A superuser URL of an embedded Postgres whose data lives in `data_dir`."""
    import pgserver  # noqa: PLC0415 - a dev-only dependency, loaded only when used

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode="stop" if keep else "delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def _ensure_role(conn: psycopg.Connection[Any], role: str, password: str) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    conn.execute(
        sql.SQL("{} ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOBYPASSRLS NOCREATEROLE").format(
            sql.SQL("ALTER" if exists else "CREATE"), sql.Identifier(role), sql.Literal(password)
        )
    )


def bootstrap(admin_url: str, name: str, owner_password: str, app_password: str) -> LocalDatabase:
    """Roles, database `name` owned by the owner role, and the schema applied (idempotent)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        _ensure_role(admin, OWNER_ROLE, owner_password)
        _ensure_role(admin, APP_ROLE, app_password)
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(OWNER_ROLE)
                )
            )
    db = LocalDatabase(
        admin_url=make_conninfo(admin_url, dbname=name),
        owner_url=make_conninfo(admin_url, dbname=name, user=OWNER_ROLE, password=owner_password),
        app_url=make_conninfo(admin_url, dbname=name, user=APP_ROLE, password=app_password),
        name=name,
    )
    with psycopg.connect(db.owner_url, autocommit=True) as conn:
        schema.apply(conn)
    return db


def drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
