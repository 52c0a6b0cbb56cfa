"""Starting a Polar checkout for a plan, and opening Polar's customer portal.

The checkout is created with the agency id as the customer's external id, so the webhooks that
follow find the agency. An agency that already has a live subscription is sent to the portal
instead (changing plan there keeps one subscription; a second checkout would create two).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from functions.billing import plans
from shared.db import Connection, tenant_tx
from shared.errors import ConflictError, NotFoundError
from shared.settings import Settings
from shared.store import audit
from shared.store import billing as store

if TYPE_CHECKING:  # httpx is loaded only by the functions that call Polar
    from functions.billing.polar import PolarClient


class CheckoutStarted(BaseModel):
    checkout_id: str
    checkout_url: str
    plan: str
    expires_at: datetime | None


class PortalOpened(BaseModel):
    portal_url: str
    expires_at: datetime | None


def start_checkout(
    conn: Connection,
    agency_id: uuid.UUID,
    plan_name: str,
    *,
    actor: str,
    polar: PolarClient,
    settings: Settings,
    success_url: str | None = None,
    now: datetime | None = None,
) -> CheckoutStarted:
    plan = plans.purchasable_plan(plan_name)
    product = plans.product_id(plan, settings)
    with tenant_tx(conn, agency_id):
        row = store.read_state(conn, agency_id, now or datetime.now(UTC))
    if row is None:
        raise NotFoundError("agency not found")
    state = row.state
    ended = state.status == "revoked" or (state.status == "canceled" and not row.entitled)
    if state.polar_subscription_id and not ended:
        raise ConflictError(
            f"the agency already has a Polar subscription ({state.status}): change plan or "
            "payment in the customer portal (POST /api/billing/portal)",
            code="already_subscribed",
        )
    # No database transaction is open during the call to Polar.
    session = polar.create_checkout(
        product_id=product, agency_id=agency_id, success_url=success_url
    )
    with tenant_tx(conn, agency_id):
        audit.record(
            conn, agency_id, actor, "billing.checkout_started", plan.name, {"checkout": session.id}
        )
    return CheckoutStarted(
        checkout_id=session.id,
        checkout_url=session.url,
        plan=plan.name,
        expires_at=session.expires_at,
    )


def open_portal(
    agency_id: uuid.UUID, *, polar: PolarClient, return_url: str | None = None
) -> PortalOpened:
    session = polar.create_portal_session(agency_id=agency_id, return_url=return_url)
    return PortalOpened(portal_url=session.customer_portal_url, expires_at=session.expires_at)
