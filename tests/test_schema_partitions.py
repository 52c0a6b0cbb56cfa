"""migrations/0011: a database of the release before issue 21 (cao.access_events unpartitioned,
its summaries kept by the previous triggers) is upgraded by the deploy's `schema.apply`: every
event moves into its month partition with its id, the old table goes, the summaries (principals,
agency totals, and the new vendor ledger) equal a recomputation from the events, and new events
are numbered after the moved ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared import schema
from shared.db import tenant_tx
from shared.store import access
from tests.support.database import TestDatabase, create_test_database
from tests.support.factories import make_account, make_agency
from tests.support.principals import (
    assert_summaries_match_events,
    assert_vendor_ledger_matches_events,
)
from tests.sync_cloudtrail.test_store import event_row

FIRST_NEW = "0011"


def test_the_upgrade_moves_every_event_into_its_month_and_the_summaries_stay_right(
    database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = database.admin_url.replace(f"dbname={database.name}", "dbname=postgres")
    released = [p for p in schema.migration_files() if p.name < FIRST_NEW]
    with create_test_database(admin) as db:
        with db.owner() as conn:
            conn.execute("DROP SCHEMA cao CASCADE")
            with monkeypatch.context() as m:
                m.setattr(schema, "migration_files", lambda: list[Path](released))
                schema.apply(conn, (schema.MIGRATIONS / "baseline.sql").read_text())
            kind = conn.execute(
                "SELECT relkind FROM pg_class WHERE oid = 'cao.access_events'::regclass"
            ).fetchone()
            assert kind == ("r",)  # the released table

        with db.app() as app:
            agency = make_agency(app)
            account = make_account(app, agency.id)
            now = datetime.now(UTC)
            rows = [
                event_row(
                    f"e-{d}-{i}",
                    now - timedelta(days=d, minutes=i),
                    principal_arn=None if i % 3 else f"arn:aws:iam::210987654321:user/u{d % 4}",
                    principal_name=f"u{d % 4}",
                    source_ip=f"192.0.2.{i}",
                    is_vendor=i == 2,
                )
                for d in range(0, 80, 7)
                for i in range(3)
            ]
            columns = ", ".join(access.EVENT_COLUMNS)
            marks = ", ".join(["%s"] * (len(access.EVENT_COLUMNS) + 2))
            with tenant_tx(app, agency.id), app.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO cao.access_events (agency_id, account_id, {columns})"
                    f" VALUES ({marks})",
                    [(agency.id, account, *r) for r in rows],
                )

        with db.owner() as conn:
            before = dict(conn.execute("SELECT event_id, id FROM cao.access_events").fetchall())
            applied = schema.apply(conn)  # the deploy
            assert FIRST_NEW in " ".join(applied)

            kind = conn.execute(
                "SELECT relkind FROM pg_class WHERE oid = 'cao.access_events'::regclass"
            ).fetchone()
            assert kind == ("p",)
            assert conn.execute(
                "SELECT to_regclass('cao.access_events_unpartitioned')"
            ).fetchone() == (None,)
            after = dict(conn.execute("SELECT event_id, id FROM cao.access_events").fetchall())
            assert after == before and len(after) == len(rows)
            homes = conn.execute(
                "SELECT DISTINCT tableoid::regclass::text FROM cao.access_events"
            ).fetchall()
            assert ("cao.access_events_default",) not in homes and (
                "access_events_default",
            ) not in homes
            assert len(homes) >= 3  # about three months of events, one partition each
            assert assert_summaries_match_events(conn, agency.id) == 8  # by ARN and by name
            assert assert_vendor_ledger_matches_events(conn, agency.id) == 4

        with db.app() as app:
            with tenant_tx(app, agency.id):
                access.insert_events(app, agency.id, account, [event_row("new", now)])
                new_id = app.execute(
                    "SELECT id FROM cao.access_events WHERE event_id = 'new'"
                ).fetchone()
            assert new_id is not None and new_id[0] > max(before.values())
