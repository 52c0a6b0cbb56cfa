"""Models of /api/forecasts, /api/budgets and /api/anomalies. Amounts are decimal strings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from shared.kit.params import SafeText
from shared.web import Body

Amount = Annotated[
    str,
    Field(pattern=r"^[0-9]{1,12}(\.[0-9]{1,2})?$", description="a decimal string, e.g. 1500.00"),
]
_NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"
Name = Annotated[SafeText, Field(min_length=1, max_length=200, pattern=_NAME_PATTERN)]
ThresholdKind = Literal["forecast", "actual"]
ForecastGroupBy = Literal["client", "account", "service"]


class Threshold(Body):
    """`forecast`: the month-end forecast above `percent` of the budget; `actual`: the
    month-to-date amount at or above it. Each is raised at most once a month."""

    kind: ThresholdKind
    percent: int = Field(ge=1, le=1000)


DEFAULT_THRESHOLDS = [
    Threshold(kind="forecast", percent=100),
    Threshold(kind="actual", percent=80),
    Threshold(kind="actual", percent=100),
]


def _unique(value: list[Threshold] | None) -> list[Threshold] | None:
    if value is None:
        return None
    keys = [(t.kind, t.percent) for t in value]
    if len(set(keys)) != len(keys):
        raise ValueError("thresholds must be distinct (kind, percent) pairs")
    return value


Thresholds = Annotated[list[Threshold], Field(min_length=1, max_length=10)]


class BudgetCreate(Body):
    """A monthly budget for one client or one account (exactly one of the two)."""

    name: Name
    client_id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    amount: Amount
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    thresholds: Thresholds = Field(default_factory=lambda: list(DEFAULT_THRESHOLDS))

    _distinct = field_validator("thresholds")(_unique)


class BudgetPatch(Body):
    name: Name | None = None
    amount: Amount | None = None
    thresholds: Thresholds | None = None

    _distinct = field_validator("thresholds")(_unique)


class RaisedThreshold(BaseModel):
    kind: ThresholdKind
    percent: int
    raised_at: datetime
    actual: str
    forecast: str


class Budget(BaseModel):
    id: uuid.UUID
    name: str
    client_id: uuid.UUID | None
    account_id: uuid.UUID | None
    amount: str
    currency: str
    thresholds: list[Threshold]
    month: str
    actual: str
    forecast: str
    actual_percent: str
    forecast_percent: str
    raised: list[RaisedThreshold]
    created_at: datetime
    updated_at: datetime


class BudgetList(BaseModel):
    month: str
    items: list[Budget]


class ForecastItem(BaseModel):
    key: str
    label: str | None
    currency: str
    actual: str
    forecast: str
    rate_per_day: str
    previous_month_floor: bool


class ForecastReport(BaseModel):
    month: str
    group_by: ForecastGroupBy
    as_of: datetime | None
    items: list[ForecastItem]
    totals: list[ForecastItem]


class Anomaly(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    aws_account_id: str
    service: str
    currency: str
    span_start: datetime
    span_end: datetime
    growth: str
    rate_per_day: str
    baseline_per_day: str
    mad_per_day: str
    baseline_rates: int
    first_detected_at: datetime
    last_detected_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    note: str | None
    summary: str


class AnomalyPage(BaseModel):
    items: list[Anomaly]
    next_cursor: str | None


class ChangeGroup(BaseModel):
    principal_arn: str | None
    principal_name: str | None
    event_name: str
    count: int
    first_seen: datetime
    last_seen: datetime
    source_ips: list[str]
    regions: list[str]
    match: Literal["service", "shared", "other"]
    services_defining: int


class RegionRead(BaseModel):
    region: str
    read_until: datetime


class WhatChanged(BaseModel):
    since: datetime
    until: datetime
    rule: str
    regions_read: list[RegionRead]
    groups: list[ChangeGroup]


class AnomalyDetail(Anomaly):
    what_changed: WhatChanged


class Acknowledge(Body):
    note: Annotated[SafeText, Field(max_length=2000)] | None = None


class AnomalySettings(BaseModel):
    relative_floor_pct: int
    absolute_floor_per_day: str


class AnomalySettingsPatch(Body):
    relative_floor_pct: int | None = Field(default=None, ge=10, le=10000)
    absolute_floor_per_day: Amount | None = None
