"""Month-to-date snapshots: which months a sync snapshots, their retention, and what goes with
an unlinked account."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from shared.db import tenant_tx
from shared.store import snapshots
from shared.store.costs import CostRow
from tests.support.alerts import add_alert_rows
from tests.support.factories import AgencyFixture, make_account

Conn = psycopg.Connection[Any]
AT = datetime(2025, 3, 14, 3, 0, tzinfo=UTC)
JAN, FEB, MAR = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)


def row(month: date, metric: str = "UnblendedCost", amount: str = "5") -> CostRow:
    return CostRow("111111111111", month, "Amazon EC2", metric, Decimal(amount), "USD", True)


def stored(conn: Conn, agency: AgencyFixture) -> list[tuple[Any, ...]]:
    with tenant_tx(conn, agency.id):
        return conn.execute(
            "SELECT month, amount, taken_at FROM cao.cost_snapshots ORDER BY month"
        ).fetchall()


def test_a_sync_snapshots_this_month_and_last_month_while_estimated_unblended_only(
    agency: AgencyFixture, app_conn: Conn
) -> None:
    account = make_account(app_conn, agency.id, "111111111111")
    rows = [row(m) for m in (JAN, FEB, MAR)] + [row(MAR, "AmortizedCost", "9")]
    with tenant_tx(app_conn, agency.id):
        written = snapshots.record(
            app_conn, agency.id, account, {JAN: True, FEB: True, MAR: True}, rows, taken_at=AT
        )
    assert written == 2
    assert stored(app_conn, agency) == [(FEB, Decimal(5), AT), (MAR, Decimal(5), AT)]
    # Last month final: not snapshotted any more (its growth is not spend of the day).
    later = AT.replace(day=15)
    with tenant_tx(app_conn, agency.id):
        snapshots.record(
            app_conn, agency.id, account, {FEB: False, MAR: True}, rows, taken_at=later
        )
    assert [(m, t) for m, _, t in stored(app_conn, agency)] == [(FEB, AT), (MAR, AT), (MAR, later)]


def test_snapshots_older_than_the_retention_are_purged(
    agency: AgencyFixture, app_conn: Conn
) -> None:
    account = make_account(app_conn, agency.id, "111111111111")
    old, kept = date(2024, 2, 1), date(2024, 3, 1)  # 13 months up to March 2025: March 2024 on
    with tenant_tx(app_conn, agency.id):
        for month in (old, kept):
            taken = datetime(month.year, month.month, 10, tzinfo=UTC)
            snapshots.record(
                app_conn, agency.id, account, {month: True}, [row(month)], taken_at=taken
            )
        assert snapshots.purge(app_conn, agency.id, AT.date()) == 1
    assert [m for m, _, _ in stored(app_conn, agency)] == [kept]


def test_unlinking_an_account_deletes_its_snapshots_budgets_anomalies_and_assignment(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, owner_conn: Conn
) -> None:
    account = make_account(app_conn, agency.id, "111111111111")
    ids = add_alert_rows(app_conn, agency.id, account, "111111111111", "ours")
    account_budget = client.post(
        "/api/budgets",
        json={"name": "acct", "account_id": str(account), "amount": "10"},
        headers=agency.headers,
    )
    assert account_budget.status_code == 201

    assert client.delete(f"/api/accounts/{account}", headers=agency.headers).status_code == 204

    for table in ("cost_snapshots", "anomalies", "client_accounts"):
        left = owner_conn.execute(
            f"SELECT count(*) FROM cao.{table} WHERE agency_id = %s",
            (agency.id,),
        ).fetchone()
        assert left == (0,), table
    # The client and its budget stay (empty); the account's own budget went with it.
    budgets = owner_conn.execute(
        "SELECT id FROM cao.budgets WHERE agency_id = %s", (agency.id,)
    ).fetchall()
    assert budgets == [(ids["budget"],)]
    assert (
        client.get(f"/api/clients/{ids['client']}", headers=agency.headers).json()["account_ids"]
        == []
    )
