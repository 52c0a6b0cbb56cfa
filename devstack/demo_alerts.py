"""`make demo`'s clients, budget and anomaly (issue 19), seeded around the ordinary demo.

Before linking (`prepare`): Globex Production's EC2 spend of the last two months is posted to
the simulated Cost Explorer day by day (`devstack.spend`: about 60 a day with noise) instead of
as monthly totals, with a jump of 800 the day before the detection day, and CloudTrail holds
`deploy-bot`'s 14 RunInstances calls from 203.0.113.7 early that day.

After the first syncs (`seed`): the daily snapshot history the cost sync would have kept is
stored (the month-to-date amounts of each past day at 06:00, through the Globex payer that pulls
the member's costs), and the anomaly rule runs as each of those syncs would have run it
(`alerts.evaluate_anomalies_at`), so the jump is one anomaly with its "what changed". The
detection day is the latest past day on or after a month's 12th (the rule needs days 6 onwards
of a month: earlier in a month the demo shows the anomaly of the previous month). Then two
clients (Acme Retail, Globex) and a budget for Globex set just above its forecast (95 %).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import httpx

from devstack.simaws import SimulatedAws
from devstack.spend import Adjustment, Line, SpendScenario, run_instances_events
from functions.alerts import service as alerts
from shared.db import connect, tenant_tx
from shared.kit.months import add_months
from shared.settings import Secret
from shared.store import snapshots
from shared.store.costs import CostRow

EC2 = "Amazon Elastic Compute Cloud - Compute"
HISTORY_DAYS = 45
PRINCIPAL, SOURCE_IP = "deploy-bot", "203.0.113.7"


def detection_day(today: date) -> date:
    """The latest past day on or after the 12th of its month."""
    day = today - timedelta(days=1)
    while day.day < 12:
        day -= timedelta(days=1)
    return day


def first_day(today: date) -> date:
    return add_months(today.replace(day=1), -1)


def scenario(account: str, today: date) -> SpendScenario:
    spike = detection_day(today)
    return SpendScenario(
        lines=[Line(account, EC2, Decimal(60))],
        lags=(1,),
        adjustments=[Adjustment(spike - timedelta(days=1), account, EC2, Decimal(800))],
    )


def prepare(sim: SimulatedAws, account: str) -> None:
    """The member's EC2 day by day (its last two months), and the calls behind its jump."""
    today = datetime.now(UTC).date()
    scenario(account, today).post_through(sim, today, first_day(today))
    # The day before detection: at most 13 days ago, within the CloudTrail sync's 14-day
    # backfill (detection is at most 12 days back).
    day = detection_day(today) - timedelta(days=1)
    calls = [datetime.combine(day, time(1, 0), UTC) + timedelta(minutes=4 * k) for k in range(14)]
    events = run_instances_events(account, principal=PRINCIPAL, source_ip=SOURCE_IP, times=calls)
    sim.put_events(account, "us-east-1", events)


def seed(
    http: httpx.Client, key: str, agency_id: str, *, app_url: str, member: str, acme: str
) -> dict[str, Any]:
    """Snapshot history and its evaluation, clients, and a budget near its threshold."""
    auth = {"Authorization": f"Bearer {key}"}
    accounts = http.get("/api/accounts", headers=auth).json()["items"]
    payer = next(a for a in accounts if a["is_management"])
    agency = uuid.UUID(agency_id)
    link = uuid.UUID(payer["id"])
    today = datetime.now(UTC).date()
    spend = scenario(member, today)
    with connect(Secret(app_url)) as conn:
        day = today - timedelta(days=HISTORY_DAYS)
        while day < today:
            at = datetime.combine(day, time(6, 0), UTC)
            if day.day >= 2:  # the 1st shows nothing of the new month yet
                month = day.replace(day=1)
                amount = spend.month_to_date(member, EC2, day - timedelta(days=1))
                row = CostRow(member, month, EC2, "UnblendedCost", amount, "USD", True)
                with tenant_tx(conn, agency):
                    snapshots.record(conn, agency, link, {month: True}, [row], taken_at=at)
                alerts.evaluate_anomalies_at(conn, agency, link, at)
            day += timedelta(days=1)
    acme_ids = [a["id"] for a in accounts if a["aws_account_id"] == acme]
    globex_ids = [a["id"] for a in accounts if a["aws_account_id"] != acme]
    http.post(
        "/api/clients", headers=auth, json={"name": "Acme Retail", "account_ids": acme_ids}
    ).raise_for_status()
    globex = http.post(
        "/api/clients",
        headers=auth,
        json={"name": "Globex", "notes": "payer, production, staging", "account_ids": globex_ids},
    )
    globex.raise_for_status()
    client_id = globex.json()["id"]
    report = http.get("/api/forecasts", headers=auth, params={"group_by": "client"}).json()
    forecast = next(
        (Decimal(i["forecast"]) for i in report["items"] if i["key"] == client_id), Decimal(0)
    )
    amount = max(Decimal(100), Decimal(math.ceil(forecast / Decimal("0.95"))))
    budget = http.post(
        "/api/budgets",
        headers=auth,
        json={"name": "Globex monthly", "client_id": client_id, "amount": f"{amount:.2f}"},
    )
    budget.raise_for_status()
    return {"client_id": client_id, "budget": budget.json()}
