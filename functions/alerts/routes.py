"""Routes: /api/forecasts, /api/budgets[/{budget_id}], /api/anomalies[/settings|/{anomaly_id}
[/acknowledge]] (api/alerts.py). Any key reads and acknowledges; admin keys change budgets and
the anomaly floors."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from functions.alerts import schemas
from functions.alerts import service as alerts
from shared.kit.http import Cursor, Limit, errors
from shared.kit.pages import DEFAULT_LIMIT, clamp_limit
from shared.web import AdminDep, CallerDep, Conn, Now

alerts_router = APIRouter(tags=["alerts"])
BudgetId = Annotated[uuid.UUID, Path()]
AnomalyId = Annotated[uuid.UUID, Path()]
ClientFilter = Annotated[uuid.UUID | None, Query(description="only this client's accounts")]
AccountFilter = Annotated[uuid.UUID | None, Query(description="only this account")]


@alerts_router.get("/api/forecasts", responses=errors(404))
def get_forecasts(
    *,
    caller: CallerDep,
    conn: Conn,
    now: Now,
    group_by: schemas.ForecastGroupBy = "client",
    client_id: ClientFilter = None,
    account_id: AccountFilter = None,
) -> schemas.ForecastReport:
    """This month's month-to-date UnblendedCost and month-end forecast per client, account or
    service (the README's forecast method), with totals per currency."""
    return alerts.forecasts(
        conn, caller.agency_id, now, group_by=group_by, client_id=client_id, account_id=account_id
    )


@alerts_router.get("/api/budgets")
def list_budgets(caller: CallerDep, conn: Conn, now: Now) -> schemas.BudgetList:
    """Every budget with this month's actual, forecast and the thresholds raised."""
    return alerts.list_budgets(conn, caller.agency_id, now)


@alerts_router.post("/api/budgets", status_code=201, responses=errors(403, 404, 409))
def create_budget(
    body: schemas.BudgetCreate, caller: AdminDep, conn: Conn, now: Now, response: Response
) -> schemas.Budget:
    """A monthly budget for a client or an account (admin). Thresholds default to: forecast
    above 100 %, actual at 80 % and at 100 %; each is raised at most once a month."""
    created = alerts.create_budget(conn, caller.agency_id, caller.actor, body, now)
    response.headers["Location"] = f"/api/budgets/{created.id}"
    return created


@alerts_router.get("/api/budgets/{budget_id}", responses=errors(404))
def get_budget(budget_id: BudgetId, caller: CallerDep, conn: Conn, now: Now) -> schemas.Budget:
    return alerts.get_budget(conn, caller.agency_id, budget_id, now)


@alerts_router.patch("/api/budgets/{budget_id}", responses=errors(403, 404))
def update_budget(
    budget_id: BudgetId, body: schemas.BudgetPatch, caller: AdminDep, conn: Conn, now: Now
) -> schemas.Budget:
    """Rename, change the amount or the thresholds (admin)."""
    return alerts.update_budget(conn, caller.agency_id, caller.actor, budget_id, body, now=now)


@alerts_router.delete("/api/budgets/{budget_id}", status_code=204, responses=errors(403, 404))
def delete_budget(budget_id: BudgetId, caller: AdminDep, conn: Conn) -> Response:
    alerts.delete_budget(conn, caller.agency_id, caller.actor, budget_id)
    return Response(status_code=204)


@alerts_router.get("/api/anomalies", responses=errors(404))
def list_anomalies(
    *,
    caller: CallerDep,
    conn: Conn,
    client_id: ClientFilter = None,
    account_id: AccountFilter = None,
    acknowledged: Annotated[bool | None, Query(description="only (un)acknowledged ones")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> schemas.AnomalyPage:
    """Spend anomalies, newest first (see the README for the rule and what stays quiet)."""
    return alerts.list_anomalies(
        conn,
        caller.agency_id,
        limit=clamp_limit(limit),
        cursor=cursor,
        client_id=client_id,
        account_id=account_id,
        acknowledged=acknowledged,
    )


@alerts_router.get("/api/anomalies/settings")
def get_anomaly_settings(caller: CallerDep, conn: Conn) -> schemas.AnomalySettings:
    """The agency's floors: a growth rate must exceed the usual rate by both to alert."""
    return alerts.get_settings(conn, caller.agency_id)


@alerts_router.patch("/api/anomalies/settings", responses=errors(403))
def update_anomaly_settings(
    body: schemas.AnomalySettingsPatch, caller: AdminDep, conn: Conn
) -> schemas.AnomalySettings:
    """Change the relative floor (percent of the usual rate, 10-10000) and the absolute floor
    (per day, at least 1.00) (admin; audited)."""
    return alerts.update_settings(conn, caller.agency_id, caller.actor, body)


@alerts_router.get("/api/anomalies/{anomaly_id}", responses=errors(404))
def get_anomaly(anomaly_id: AnomalyId, caller: CallerDep, conn: Conn) -> schemas.AnomalyDetail:
    """The anomaly and what changed: the account's CloudTrail write events in the window, by
    principal and event name, ranked; and the regions read."""
    return alerts.get_anomaly(conn, caller.agency_id, anomaly_id)


@alerts_router.post("/api/anomalies/{anomaly_id}/acknowledge", responses=errors(404))
def acknowledge_anomaly(
    anomaly_id: AnomalyId, body: schemas.Acknowledge, caller: CallerDep, conn: Conn, now: Now
) -> schemas.AnomalyDetail:
    """Acknowledge with an optional note (any key; audited). Acknowledging again replaces it."""
    return alerts.acknowledge(
        conn, caller.agency_id, caller.actor, anomaly_id, note=body.note, now=now
    )
