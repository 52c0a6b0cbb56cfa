"""/api/forecasts, /api/budgets and /api/anomalies through the real app, over snapshots stored
as the cost sync stores them; thresholds and anomalies are raised by the evaluation the costs
job runs after a sync (`after_cost_sync`), never by a read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from functions.alerts import service as alerts
from shared.bootstrap import Deps
from shared.db import tenant_tx
from tests.support import seed
from tests.support.deps import override
from tests.support.factories import AgencyFixture, make_account, make_api_key

Conn = psycopg.Connection[Any]
NOW = datetime(2025, 3, 21, 6, 0, tzinfo=UTC)
MAR = date(2025, 3, 1)
EC2 = "Amazon Elastic Compute Cloud - Compute"


@pytest.fixture(autouse=True)
def frozen(deps: Deps) -> Iterator[None]:
    with override(clock=lambda: NOW):
        yield


def snapshot_days(
    conn: Conn,
    agency: AgencyFixture,
    account: uuid.UUID,
    aws_id: str,
    service: str,
    per_day: list[str],
    *,
    last: datetime = NOW,
) -> None:
    """Daily snapshots ending at `last`, the month-to-date growing by each amount in turn."""
    amount = Decimal(0)
    first = last - timedelta(days=len(per_day) - 1)
    for n, grow in enumerate(per_day):
        amount += Decimal(grow)
        taken = first + timedelta(days=n)
        seed.insert(
            conn,
            agency.id,
            "cost_snapshots",
            account_id=account,
            usage_account_id=aws_id,
            service=service,
            month=taken.date().replace(day=1),
            taken_at=taken,
            amount=amount,
            currency="USD",
            estimated=True,
        )


@pytest.fixture
def globex(client: TestClient, agency: AgencyFixture, app_conn: Conn) -> dict[str, Any]:
    """Globex (one account spending 60/day on EC2 since the 1st), and an account of no client."""
    prod = make_account(app_conn, agency.id, "111111111111", alias="Globex prod")
    other = make_account(app_conn, agency.id, "222222222222", alias="Internal")
    snapshot_days(app_conn, agency, prod, "111111111111", EC2, ["60"] * 21)
    snapshot_days(app_conn, agency, other, "222222222222", "Amazon S3", ["2"] * 21)
    made = client.post(
        "/api/clients", json={"name": "Globex", "account_ids": [str(prod)]}, headers=agency.headers
    )
    return {"client": made.json()["id"], "prod": prod, "other": other}


def evaluate(conn: Conn, agency: AgencyFixture, account: uuid.UUID, now: datetime = NOW) -> None:
    alerts.after_cost_sync(conn, agency.id, account, since=now, now=now)


def test_forecasts_per_client_account_and_service_agree(
    client: TestClient, agency: AgencyFixture, globex: dict[str, Any]
) -> None:
    def report(**params: Any) -> Any:
        r = client.get("/api/forecasts", params=params, headers=agency.headers)
        assert r.status_code == 200, r.text
        return r.json()

    by_client = report(group_by="client")
    assert by_client["month"] == "2025-03"
    (globex_row,) = [i for i in by_client["items"] if i["key"] == globex["client"]]
    # 1,260 by the 21st (21 snapshots of 60), then 60/day for the 10 days 18 hours left.
    assert globex_row["label"] == "Globex"
    assert globex_row["actual"] == "1260.00" and globex_row["forecast"] == "1905.00"
    assert {i["key"] for i in by_client["items"]} == {globex["client"], "none"}
    totals = by_client["totals"][0]
    for group_by in ("account", "service"):
        assert report(group_by=group_by)["totals"][0] == totals
    only = report(group_by="service", client_id=globex["client"])
    assert [(i["key"], i["forecast"]) for i in only["items"]] == [(EC2, "1905.00")]


def test_a_budget_raises_each_threshold_once_a_month(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, globex: dict[str, Any]
) -> None:
    r = client.post(
        "/api/budgets",
        json={"name": "Globex monthly", "client_id": globex["client"], "amount": "1500.00"},
        headers=agency.headers,
    )
    assert r.status_code == 201, r.text
    budget = r.json()
    assert [(t["kind"], t["percent"]) for t in budget["thresholds"]] == [
        ("forecast", 100),
        ("actual", 80),
        ("actual", 100),
    ]
    assert budget["actual"] == "1260.00" and budget["forecast_percent"] == "127.0"
    assert budget["raised"] == []  # a read raises nothing

    evaluate(app_conn, agency, globex["prod"])
    evaluate(app_conn, agency, globex["prod"])  # a second sync the same month: nothing new

    got = client.get(f"/api/budgets/{budget['id']}", headers=agency.headers).json()
    # Forecast 1,905 > 100 % of 1,500; actual 1,260 >= 80 % (1,200) but < 100 %.
    assert {(t["kind"], t["percent"]) for t in got["raised"]} == {("forecast", 100), ("actual", 80)}
    with tenant_tx(app_conn, agency.id):
        (events,) = app_conn.execute("SELECT count(*) FROM cao.budget_events").fetchone() or (0,)
    assert events == 2
    # The next month starts afresh (its snapshots: 60 a day since April 1st).
    april = datetime(2025, 4, 20, 6, 0, tzinfo=UTC)
    snapshot_days(app_conn, agency, globex["prod"], "111111111111", EC2, ["60"] * 20, last=april)
    evaluate(app_conn, agency, globex["prod"], april)
    with tenant_tx(app_conn, agency.id):
        months = app_conn.execute(
            "SELECT month, count(*) FROM cao.budget_events GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert months == [(MAR, 2), (date(2025, 4, 1), 2)]


def test_budget_input_is_checked_and_changes_are_audited(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, globex: dict[str, Any]
) -> None:
    bad = [
        ({"name": "x", "amount": "10"}, 422),  # neither client nor account
        (
            {
                "name": "x",
                "amount": "10",
                "client_id": globex["client"],
                "account_id": str(globex["prod"]),
            },
            422,
        ),
        ({"name": "x", "amount": "0", "client_id": globex["client"]}, 422),
        ({"name": "x", "amount": "1.234", "client_id": globex["client"]}, 422),
        ({"name": "x", "amount": "10", "account_id": str(uuid.uuid4())}, 404),
        (
            {
                "name": "x",
                "amount": "10",
                "client_id": globex["client"],
                "thresholds": [{"kind": "actual", "percent": 80}] * 2,
            },
            422,
        ),
    ]
    for body, status in bad:
        r = client.post("/api/budgets", json=body, headers=agency.headers)
        assert r.status_code == status, (body, r.text)
    assert client.get("/api/budgets", headers=agency.headers).json()["items"] == []
    made = client.post(
        "/api/budgets",
        json={"name": "Internal", "account_id": str(globex["other"]), "amount": "50"},
        headers=agency.headers,
    ).json()
    r = client.patch(
        f"/api/budgets/{made['id']}",
        json={"amount": "80", "thresholds": [{"kind": "actual", "percent": 50}]},
        headers=agency.headers,
    )
    assert r.status_code == 200 and r.json()["amount"] == "80.00"
    r = client.patch(
        f"/api/budgets/{made['id']}",
        json={"name": "Renamed", "thresholds": None},
        headers=agency.headers,
    )
    assert r.status_code == 200 and r.json()["thresholds"] == [{"kind": "actual", "percent": 50}]
    member = {"Authorization": f"Bearer {make_api_key(app_conn, agency.id, 'member')}"}
    assert client.delete(f"/api/budgets/{made['id']}", headers=member).status_code == 403
    assert client.delete(f"/api/budgets/{made['id']}", headers=agency.headers).status_code == 204
    r = client.get("/api/audit", params={"action": "budget.*"}, headers=agency.headers)
    assert [e["action"] for e in r.json()["items"]] == [
        "budget.deleted",
        "budget.updated",
        "budget.updated",
        "budget.created",
    ]


def test_an_anomaly_is_listed_filtered_acknowledged_with_a_note_and_audited(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, globex: dict[str, Any]
) -> None:
    # Globex's EC2 jumps on the last day (a second series, in April, keeps March untouched).
    spike = datetime(2025, 4, 25, 6, 0, tzinfo=UTC)
    snapshot_days(
        app_conn, agency, globex["prod"], "111111111111", EC2, ["60"] * 24 + ["500"], last=spike
    )
    assert client.get("/api/anomalies", headers=agency.headers).json()["items"] == []
    evaluate(app_conn, agency, globex["prod"], spike)

    page = client.get("/api/anomalies", headers=agency.headers).json()
    (item,) = page["items"]
    assert item["aws_account_id"] == "111111111111" and item["service"] == EC2
    assert item["summary"].startswith(f"Globex prod (111111111111): {EC2} grew 620.00 USD in 72 h")
    assert client.get(
        "/api/anomalies", params={"client_id": globex["client"]}, headers=agency.headers
    ).json()["items"]
    assert (
        client.get(
            "/api/anomalies", params={"account_id": str(globex["other"])}, headers=agency.headers
        ).json()["items"]
        == []
    )
    member = {"Authorization": f"Bearer {make_api_key(app_conn, agency.id, 'member')}"}
    r = client.post(
        f"/api/anomalies/{item['id']}/acknowledge",
        json={"note": "load test, expected"},
        headers=member,
    )
    assert r.status_code == 200, r.text
    assert r.json()["note"] == "load test, expected" and r.json()["acknowledged_at"]
    assert r.json()["what_changed"]["groups"] == []  # no CloudTrail events stored
    assert (
        client.get(
            "/api/anomalies", params={"acknowledged": "false"}, headers=agency.headers
        ).json()["items"]
        == []
    )
    audit = client.get("/api/audit", params={"action": "anomaly.*"}, headers=agency.headers)
    assert [e["action"] for e in audit.json()["items"]] == ["anomaly.acknowledged"]


def test_the_anomaly_floors_are_the_agency_s_settings(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    got = client.get("/api/anomalies/settings", headers=agency.headers).json()
    assert got == {"relative_floor_pct": 100, "absolute_floor_per_day": "10.00"}
    for body in (
        {"absolute_floor_per_day": "0.50"},
        {"absolute_floor_per_day": "291739264227"},
        {"relative_floor_pct": 5},
        {"x": 1},
    ):
        r = client.patch("/api/anomalies/settings", json=body, headers=agency.headers)
        assert r.status_code == 422, body
    r = client.patch(
        "/api/anomalies/settings", json={"relative_floor_pct": 300}, headers=agency.headers
    )
    assert r.json() == {"relative_floor_pct": 300, "absolute_floor_per_day": "10.00"}
    member = {"Authorization": f"Bearer {make_api_key(app_conn, agency.id, 'member')}"}
    r = client.patch("/api/anomalies/settings", json={"relative_floor_pct": 100}, headers=member)
    assert r.status_code == 403
    # A 3x rate is not above a 300 % floor: quiet.
    account = make_account(app_conn, agency.id, "333333333333")
    spike = datetime(2025, 4, 25, 6, 0, tzinfo=UTC)
    snapshot_days(app_conn, agency, account, "333333333333", EC2, ["60"] * 24 + ["400"], last=spike)
    evaluate(app_conn, agency, account, spike)
    assert client.get("/api/anomalies", headers=agency.headers).json()["items"] == []
