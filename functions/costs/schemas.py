"""The query vocabulary and the response models of /api/costs: amounts are decimal strings."""

from __future__ import annotations

import uuid
from typing import TypeAlias

from pydantic import BaseModel, Field

from shared.store import costs

# How a report groups (the store maps each to a column), and which Cost Explorer metric it sums:
# the vocabularies the sync stores with, declared once in shared/store/costs.py.
GroupBy: TypeAlias = costs.GroupBy
Metric: TypeAlias = costs.Metric


class Change(BaseModel):
    month: str
    previous_month: str
    amount: str = Field(description="month minus previous month")
    percent: str | None = Field(description="null when the previous month is 0")


class CostGroup(BaseModel):
    key: str = Field(description="the AWS account ID, service name or YYYY-MM")
    label: str | None = Field(description="account alias or organization name, when known")
    account_id: uuid.UUID | None = Field(description="the linked account, for account groups")
    currency: str
    total: str
    estimated: bool = Field(description="some amount in it is still Estimated by AWS")
    months: list[str] = Field(
        description="YYYY-MM: every month of the range (account and service groups, zero-filled)"
        " or the group's own month (month groups)"
    )
    amounts: list[str] = Field(description="one per entry of `months`")
    amounts_estimated: list[bool] = Field(description="one per entry of `months`")
    change: Change | None = Field(description="month-over-month: last month of the range")


class TotalMonth(BaseModel):
    month: str
    amount: str
    estimated: bool
    change_amount: str | None
    change_percent: str | None


class CostTotals(BaseModel):
    currency: str
    total: str
    estimated: bool
    months: list[TotalMonth]


class CostReport(BaseModel):
    metric: str
    group_by: str
    first_month: str
    last_month: str
    months: list[str]
    groups: list[CostGroup]
    totals: list[CostTotals] = Field(description="one entry per currency (usually USD only)")
    estimated_months: list[str]
