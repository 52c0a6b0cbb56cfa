"""schema.sql: idempotent, migratable, and tenant-isolated by row-level security."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pgserver
import psycopg
import pytest

from shared import schema
from tests.support.database import (
    APP_ROLE,
    TENANT_TABLES,
    TestDatabase,
    create_test_database,
)
from tests.support.factories import make_account, make_agency

PG_DUMP = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"


def dump_schema(url: str) -> str:
    out = subprocess.run(
        [
            str(PG_DUMP),
            "--schema-only",
            "--no-owner",
            "--schema=cao",
            # Month partitions of cao.access_events are made by data (the insert path, the
            # purge), not by the schema: whatever months a database holds, its schema is the same.
            "--exclude-table=cao.access_events_[0-9][0-9][0-9][0-9]_[0-9][0-9]",
            "--dbname",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # pg_dump prints a random \restrict token (since 16.10/17.6); it is not schema.
    out = re.sub(r"^\\(un)?restrict .*$", "", out, flags=re.M)
    # Some servers stamp a per-column version option (pg_attver) that is not ours either.
    return re.sub(r"^ALTER TABLE ONLY .* SET \(pg_attver=\d+\);$", "", out, flags=re.M)


def test_applying_the_schema_twice_changes_nothing(database: TestDatabase) -> None:
    before = dump_schema(database.admin_url)
    with database.owner() as conn:
        schema.apply(conn)
    assert dump_schema(database.admin_url) == before


def test_migrating_the_released_schema_equals_a_fresh_apply(database: TestDatabase) -> None:
    admin = database.admin_url.replace(f"dbname={database.name}", "dbname=postgres")
    with create_test_database(admin) as fresh:
        # `fresh` was built from schema.sql; rebuild a second one from the release baseline.
        with fresh.owner() as conn:
            conn.execute("DROP SCHEMA cao CASCADE")
            schema.apply(conn, (schema.MIGRATIONS / "baseline.sql").read_text())
            schema.apply(conn)  # the upgrade a deploy runs
        assert dump_schema(fresh.admin_url) == dump_schema(database.admin_url)


def test_every_tenant_table_has_row_security_enabled_and_forced(
    owner_conn: psycopg.Connection[Any],
) -> None:
    rows = owner_conn.execute(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'cao' AND c.relkind IN ('r', 'p')"
    ).fetchall()
    by_name = {r[0]: (r[1], r[2]) for r in rows}
    partitions = {
        r[0]
        for r in owner_conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'cao' AND c.relispartition"
        )
    }
    assert "access_events_default" in partitions
    assert set(TENANT_TABLES) <= set(by_name)
    # Every table that has an agency_id column is a tenant table.
    with_agency = {
        r[0]
        for r in owner_conn.execute(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = 'cao' AND column_name = 'agency_id'"
        )
    }
    # (Partitions of a tenant table are checked with every table below. Cross-tenant by nature,
    # invisible to the app role: webhook deliveries, and WebAuthn challenges, which exist before
    # a sign-in has a tenant.)
    assert with_agency - partitions - {"webhook_deliveries", "webauthn_challenges"} <= set(
        TENANT_TABLES
    )
    for table, (enabled, forced) in by_name.items():
        if table == "schema_migrations":
            continue
        assert enabled and forced, f"{table}: row security enabled={enabled} forced={forced}"


def test_the_app_role_is_no_superuser_has_no_bypassrls_and_owns_nothing(
    owner_conn: psycopg.Connection[Any],
) -> None:
    role = owner_conn.execute(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles"
        " WHERE rolname = %s",
        (APP_ROLE,),
    ).fetchone()
    assert role == (False, False, False, False)
    owned = owner_conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
        " WHERE r.rolname = %s",
        (APP_ROLE,),
    ).fetchone()
    assert owned == (0,)
    owned_functions = owner_conn.execute(
        "SELECT count(*) FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner WHERE r.rolname = %s",
        (APP_ROLE,),
    ).fetchone()
    assert owned_functions == (0,)


def test_a_transaction_with_no_tenant_sees_no_rows(app_conn: psycopg.Connection[Any]) -> None:
    a = make_agency(app_conn)
    make_account(app_conn, a.id)
    with app_conn.transaction():
        for table in TENANT_TABLES:
            count = app_conn.execute(f"SELECT count(*) FROM cao.{table}").fetchone()
            assert count == (0,), table


def test_a_query_without_an_agency_filter_returns_only_the_current_agency(
    app_conn: psycopg.Connection[Any],
) -> None:
    a = make_agency(app_conn)
    b = make_agency(app_conn)
    make_account(app_conn, a.id)
    b_account = make_account(app_conn, b.id)
    with app_conn.transaction():
        app_conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(a.id),))
        agencies = app_conn.execute("SELECT id FROM cao.agencies").fetchall()
        accounts = app_conn.execute("SELECT agency_id FROM cao.accounts").fetchall()
        assert agencies == [(a.id,)]
        assert accounts == [(a.id,)]
        # Writes are held to the tenant too: another agency's row cannot be touched...
        updated = app_conn.execute(
            "UPDATE cao.accounts SET alias = 'stolen' WHERE id = %s", (b_account,)
        )
        assert updated.rowcount == 0
    # ...nor can a row be written into another agency.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), app_conn.transaction():
        app_conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(a.id),))
        app_conn.execute(
            "INSERT INTO cao.audit_log (agency_id, actor, action) VALUES (%s, 'x', 'y')", (b.id,)
        )


def test_the_tenant_setting_does_not_outlive_its_transaction(
    app_conn: psycopg.Connection[Any],
) -> None:
    a = make_agency(app_conn)
    with app_conn.transaction():
        app_conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(a.id),))
        assert app_conn.execute("SELECT count(*) FROM cao.agencies").fetchone() == (1,)
    # A pooler may hand this connection to another request next: it must see nothing.
    assert app_conn.execute("SELECT count(*) FROM cao.agencies").fetchone() == (0,)


def test_the_app_role_cannot_read_cross_tenant_tables_directly(
    app_conn: psycopg.Connection[Any],
) -> None:
    for table in ("webhook_deliveries", "rate_limits"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_conn.execute(f"SELECT 1 FROM cao.{table}")
