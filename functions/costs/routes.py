"""Route: GET /api/costs, JSON or CSV (served by api/costs.py)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import Field

from functions.costs import render, schemas
from functions.costs import service as costs
from shared.errors import AppError
from shared.kit.http import PRINTABLE, AccountIds, errors, json_response
from shared.kit.months import MONTH_PATTERN
from shared.kit.params import SafeText, negotiate
from shared.web import CallerDep, Conn, Now


class NotAcceptableError(AppError):
    """The Accept header allows none of the representations offered."""

    status = 406
    code = "not_acceptable"


ServiceName = Annotated[SafeText, Field(min_length=1, max_length=256, pattern=PRINTABLE)]
AwsAccountId = Annotated[str, Field(pattern=r"^[0-9]{12}$")]


costs_router = APIRouter(tags=["costs"])

_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "model": schemas.CostReport,
        "description": "the report; as CSV (one line per group and month) on Accept: text/csv",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


@costs_router.get(
    "/api/costs", response_model=None, responses={**_CSV_RESPONSE, **errors(404, 406)}
)
def get_costs(
    *,
    caller: CallerDep,
    conn: Conn,
    now: Now,
    account_id: AccountIds = None,
    client_id: Annotated[
        uuid.UUID | None, Query(description="only this client's accounts (with account_id: both)")
    ] = None,
    aws_account_id: Annotated[
        list[AwsAccountId] | None,
        Query(max_length=100, description="repeatable: costs attributed to these AWS accounts"),
    ] = None,
    service: Annotated[
        list[ServiceName] | None, Query(max_length=50, description="repeatable: these services")
    ] = None,
    first: Annotated[
        str | None,
        Query(alias="from", pattern=MONTH_PATTERN, description="YYYY-MM (default: 5 months ago)"),
    ] = None,
    last: Annotated[
        str | None,
        Query(alias="to", pattern=MONTH_PATTERN, description="YYYY-MM (default: this month)"),
    ] = None,
    group_by: schemas.GroupBy = "service",
    metric: schemas.Metric = "UnblendedCost",
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Costs per account, service or month over a month range, with totals, month-over-month
    change and Estimated flags. Amounts are decimal strings."""
    representation = negotiate(accept)
    if representation is None:
        raise NotAcceptableError("send Accept: application/json or text/csv")
    query = costs.make_query(
        now=now,
        first=first,
        last=last,
        group_by=group_by,
        metric=metric,
        account_ids=account_id,
        client_id=client_id,
        aws_account_ids=aws_account_id,
        services=service,
    )
    report = costs.report(conn, caller.agency_id, query)
    if representation == "csv":
        name = f"costs-{report.group_by}-{report.first_month}-{report.last_month}.csv"
        return Response(
            render.to_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return json_response(report)
