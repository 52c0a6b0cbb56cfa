"""Apply schema.sql and the numbered migrations, as the owner role.

    python -m shared.schema apply      # uses DATABASE_OWNER_URL

Applying is serialised with a transaction-level advisory lock (two deploys at once are safe) and
idempotent. Each migration runs once and is recorded in `cao.schema_migrations`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from shared import bootstrap
from shared.db import Connection, connect
from shared.errors import CaoError

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "schema.sql"
MIGRATIONS = ROOT / "migrations"
_LOCK_KEY = 0x43414F  # "CAO"


def migration_files() -> list[Path]:
    return sorted(p for p in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def apply(conn: Connection, schema_sql: str | None = None) -> list[str]:
    """Apply the schema, then pending migrations; returns the migrations applied."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute((schema_sql if schema_sql is not None else SCHEMA.read_text()).encode())
        conn.execute(
            "CREATE TABLE IF NOT EXISTS cao.schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in conn.execute("SELECT name FROM cao.schema_migrations")}
        for path in migration_files():
            if path.name in done:
                continue
            conn.execute(path.read_text().encode())
            conn.execute("INSERT INTO cao.schema_migrations (name) VALUES (%s)", (path.name,))
            applied.append(path.name)
    return applied


def main(argv: list[str]) -> int:
    if argv != ["apply"]:
        sys.stderr.write("usage: python -m shared.schema apply\n")
        return 2
    try:
        with connect(bootstrap.current().settings.owner_database_url) as conn:
            names = apply(conn)
    except CaoError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    sys.stdout.write(f"schema applied; migrations run: {', '.join(names) or 'none'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
