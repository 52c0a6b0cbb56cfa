"""GET /api/accounts and /api/accounts/{id}: status in words, sync health, CE spend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from functions.accounts.service import STATUS_TEXT
from shared.kit.months import month_began
from tests.support import seed
from tests.support.factories import AgencyFixture, make_account

Conn = psycopg.Connection[Any]


def test_the_list_shows_alias_status_and_sync_health_per_job(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    now = datetime.now(UTC)
    account = make_account(app_conn, agency.id, alias="Acme prod")
    costs_ok = now - timedelta(hours=3)
    seed.insert(
        app_conn,
        agency.id,
        "sync_jobs",
        account_id=account,
        kind="costs",
        last_success_at=costs_ok,
        state="idle",
    )
    seed.insert(
        app_conn,
        agency.id,
        "sync_jobs",
        account_id=account,
        kind="cloudtrail",
        last_success_at=now - timedelta(minutes=5),
        last_error_class="ThrottledError",
        last_error_at=now - timedelta(minutes=1),
        consecutive_failures=2,
        state="failed",
    )
    # CloudTrail lag is that of the most lagging region, not of the last successful run.
    seed.insert(
        app_conn,
        agency.id,
        "sync_cursors",
        account_id=account,
        region="us-east-1",
        position=now - timedelta(minutes=20),
    )
    seed.insert(
        app_conn,
        agency.id,
        "sync_cursors",
        account_id=account,
        region="eu-west-1",
        position=now - timedelta(hours=2),
    )

    body = client.get("/api/accounts", headers=agency.headers).json()

    [item] = body["items"]
    assert item["id"] == str(account)
    assert item["alias"] == "Acme prod"
    assert item["status"] == "active" and item["status_label"] == "Active"
    assert "cloudtrail sync failed (ThrottledError)" in item["human_status"]
    jobs = {j["kind"]: j for j in item["jobs"]}
    assert jobs["costs"]["last_error_class"] is None
    assert 3 * 3600 - 60 <= jobs["costs"]["lag_seconds"] <= 3 * 3600 + 60
    assert jobs["cloudtrail"]["last_error_class"] == "ThrottledError"
    assert jobs["cloudtrail"]["consecutive_failures"] == 2
    assert 2 * 3600 - 60 <= jobs["cloudtrail"]["lag_seconds"] <= 2 * 3600 + 60
    last = datetime.fromisoformat(item["last_successful_sync_at"])
    assert abs(last - (now - timedelta(minutes=5))) < timedelta(seconds=1)


def test_an_account_whose_cloudtrail_falls_behind_shows_its_lag_and_says_so(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    now = datetime.now(UTC)
    behind, fine = make_account(app_conn, agency.id), make_account(app_conn, agency.id)
    for account, lag in ((behind, timedelta(hours=5)), (fine, timedelta(minutes=40))):
        seed.insert(
            app_conn,
            agency.id,
            "sync_cursors",
            account_id=account,
            region="us-east-1",
            position=now - lag,
        )
        # The late-event sweep trails hours behind by design: it is not the account's lag.
        seed.insert(
            app_conn,
            agency.id,
            "sync_cursors",
            account_id=account,
            region="us-east-1",
            position=now - timedelta(hours=9),
            **{"pass": "sweep"},
        )

    items = {
        i["id"]: i for i in client.get("/api/accounts", headers=agency.headers).json()["items"]
    }

    late, ok = items[str(behind)], items[str(fine)]
    assert 5 * 3600 - 60 <= late["cloudtrail_lag_seconds"] <= 5 * 3600 + 60
    assert late["cloudtrail_behind"] is True
    assert "CloudTrail events are 5 hours behind" in late["human_status"]
    assert 40 * 60 - 60 <= ok["cloudtrail_lag_seconds"] <= 40 * 60 + 60
    assert ok["cloudtrail_behind"] is False
    detail = client.get(f"/api/accounts/{behind}", headers=agency.headers).json()
    assert detail["cloudtrail_behind"] is True


def test_cost_explorer_requests_spent_this_month_come_from_the_run_records(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    now = datetime.now(UTC)
    account = make_account(app_conn, agency.id)
    this_month = month_began(now)
    for started, requests in ((this_month + timedelta(seconds=1), 2), (now, 3)):
        seed.insert(
            app_conn,
            agency.id,
            "sync_runs",
            account_id=account,
            kind="costs",
            started_at=started,
            status="succeeded",
            ce_requests=requests,
            ce_cost_usd=Decimal(requests) / 100,
        )
    # Last month's requests are not this month's.
    seed.insert(
        app_conn,
        agency.id,
        "sync_runs",
        account_id=account,
        kind="costs",
        started_at=this_month - timedelta(seconds=1),
        status="succeeded",
        ce_requests=40,
        ce_cost_usd=Decimal("0.40"),
    )

    [item] = client.get("/api/accounts", headers=agency.headers).json()["items"]

    assert item["ce_requests_this_month"] == 5
    assert item["ce_cost_this_month_usd"] == "0.05"


@pytest.mark.parametrize("status", sorted(STATUS_TEXT))
def test_every_account_status_is_described_with_what_to_do(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, status: str
) -> None:
    make_account(app_conn, agency.id, status=status)

    [item] = client.get("/api/accounts", headers=agency.headers).json()["items"]

    label, action = STATUS_TEXT[status]
    assert item["status"] == status and item["status_label"] == label
    assert item["action"] == action
    assert item["human_status"].startswith(label)
    if status != "active":
        assert action and action in item["human_status"]


def test_an_account_never_synced_says_it_waits_for_its_first_sync(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    make_account(app_conn, agency.id)
    [item] = client.get("/api/accounts", headers=agency.headers).json()["items"]
    assert item["human_status"] == "Active: waiting for its first sync"
    assert item["last_successful_sync_at"] is None and item["ce_requests_this_month"] == 0


def test_the_list_pages_by_keyset_and_never_repeats_an_account(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    made = [make_account(app_conn, agency.id) for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/accounts", params=params, headers=agency.headers).json()
        assert len(body["items"]) <= 2
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [str(a) for a in made]


def test_the_detail_has_recent_runs_newest_first_and_discovered_members(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    now = datetime.now(UTC)
    management = make_account(app_conn, agency.id, is_management=True)
    for n in range(25):
        seed.insert(
            app_conn,
            agency.id,
            "sync_runs",
            account_id=management,
            kind="costs",
            started_at=now - timedelta(hours=n),
            finished_at=now - timedelta(hours=n),
            status="failed" if n == 0 else "succeeded",
            error_class="AccessDeniedError" if n == 0 else None,
            ce_requests=1,
            ce_cost_usd=Decimal("0.01"),
            months=[now.date().replace(day=1)],
        )
    for member in ("111111111111", "222222222222"):
        seed.insert(
            app_conn,
            agency.id,
            "discovered_accounts",
            management_id=management,
            aws_account_id=member,
            name=f"member {member}",
        )

    r = client.get(f"/api/accounts/{management}", headers=agency.headers)

    assert r.status_code == 200
    body = r.json()
    assert body["is_management"] is True and body["discovered_members"] == 2
    runs = body["recent_runs"]
    assert len(runs) == 20  # bounded
    assert runs[0]["status"] == "failed" and runs[0]["error_class"] == "AccessDeniedError"
    starts = [r["started_at"] for r in runs]
    assert starts == sorted(starts, reverse=True)
    assert runs[1]["ce_cost_usd"] == "0.01" and runs[1]["months"] == [now.strftime("%Y-%m")]


def test_another_agencys_account_is_not_found(
    client: TestClient, agency: AgencyFixture, other_agency: AgencyFixture, app_conn: Conn
) -> None:
    theirs = make_account(app_conn, other_agency.id, alias="not yours")
    r = client.get(f"/api/accounts/{theirs}", headers=agency.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.get("/api/accounts", headers=agency.headers).json()["items"] == []
