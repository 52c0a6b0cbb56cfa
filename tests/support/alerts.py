"""Rows of the clients and alerts tables (issue 19) for tests that need one in every table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tests.support import seed

Conn = psycopg.Connection[Any]


def add_alert_rows(
    conn: Conn, agency_id: uuid.UUID, account: uuid.UUID, aws_id: str, marker: str
) -> dict[str, Any]:
    """A client holding `account`, a snapshot, a budget with a raised threshold, an anomaly
    and the anomaly floors; returns their ids (client, budget, anomaly)."""
    now = datetime.now(UTC)
    month = now.date().replace(day=1)
    client = seed.insert(conn, agency_id, "clients", name=f"{marker}-client", notes=f"{marker}-n")
    seed.insert(conn, agency_id, "client_accounts", client_id=client, account_id=account)
    seed.insert(
        conn,
        agency_id,
        "cost_snapshots",
        account_id=account,
        usage_account_id=aws_id,
        service=f"{marker}-service",
        month=month,
        taken_at=now,
        amount=Decimal("12.5"),
        currency="USD",
        estimated=True,
    )
    budget = seed.insert(
        conn,
        agency_id,
        "budgets",
        name=f"{marker}-budget",
        client_id=client,
        amount=Decimal(100),
        thresholds=Jsonb([{"kind": "actual", "percent": 80}]),
    )
    seed.insert(
        conn,
        agency_id,
        "budget_events",
        budget_id=budget,
        month=month,
        kind="actual",
        percent=80,
        raised_at=now,
        actual=Decimal(81),
        forecast=Decimal(120),
        budget=Decimal(100),
    )
    anomaly = seed.insert(
        conn,
        agency_id,
        "anomalies",
        account_id=account,
        usage_account_id=aws_id,
        service=f"{marker}-service",
        currency="USD",
        span_start=now - timedelta(hours=48),
        span_end=now,
        growth=Decimal(400),
        rate_per_day=Decimal(200),
        baseline_per_day=Decimal(60),
        mad_per_day=Decimal(3),
        baseline_rates=9,
        first_detected_at=now,
        last_detected_at=now,
        note=f"{marker}-note",
    )
    seed.insert(conn, agency_id, "anomaly_settings", relative_floor_pct=150)
    return {"client": client, "budget": budget, "anomaly": anomaly}
