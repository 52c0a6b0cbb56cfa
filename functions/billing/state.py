"""What an admin sees of the agency's billing: state, plan and limits, and whether it may sync.

`entitled` is not computed here: it is the value of the SQL function `cao.is_entitled`, the same
function the sync dispatcher filters on, selected beside the columns (see shared/store/billing),
so what the admin is shown and what the dispatcher does cannot disagree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from functions.billing import plans
from shared.db import Connection, tenant_tx
from shared.errors import NotFoundError
from shared.store import billing as store


class PlanInfo(BaseModel):
    name: str
    title: str
    max_accounts: int
    purchasable: bool


class BillingView(BaseModel):
    """The agency's billing state."""

    status: str = Field(
        description="trialing, active, past_due, canceled, revoked, incomplete, unpaid or paused"
    )
    entitled: bool = Field(description="whether the agency's accounts sync now")
    plan: str
    max_accounts: int = Field(description="linked accounts the plan allows")
    linked_accounts: int
    trial_ends_at: datetime | None = Field(description="end of the trial, while trialing")
    current_period_end: datetime | None = Field(
        description="end of the paid period; a canceled subscription syncs until then"
    )
    polar_customer_id: str | None
    polar_subscription_id: str | None
    last_event_at: datetime | None = Field(description="timestamp of the last Polar event applied")
    plans: list[PlanInfo]


def view(conn: Connection, agency_id: uuid.UUID, now: datetime | None = None) -> BillingView:
    at = now or datetime.now(UTC)
    with tenant_tx(conn, agency_id):
        row = store.read_state(conn, agency_id, at)
    if row is None:
        raise NotFoundError("agency not found")
    state = row.state
    return BillingView(
        status=state.status,
        entitled=row.entitled,
        plan=state.plan,
        max_accounts=plans.plan_named(state.plan).max_accounts,
        linked_accounts=row.linked_accounts,
        trial_ends_at=state.trial_ends_at if state.status == "trialing" else None,
        current_period_end=state.current_period_end,
        polar_customer_id=state.polar_customer_id,
        polar_subscription_id=state.polar_subscription_id,
        last_event_at=state.billing_event_at,
        plans=[
            PlanInfo(
                name=p.name,
                title=p.title,
                max_accounts=p.max_accounts,
                purchasable=p.product_setting is not None,
            )
            for p in plans.PLANS
        ],
    )
