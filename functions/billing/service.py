"""Billing's use cases: the admin's view, checkout and portal, and applying a Polar event.

- `view`: what an admin sees of the agency's billing: state, plan and limits, and whether it
  may sync. `entitled` is not computed here: it is the value of the SQL function
  `cao.is_entitled`, the same function the sync dispatcher filters on, selected beside the
  columns (see shared/store/billing), so what the admin is shown and what the dispatcher does
  cannot disagree.
- `start_checkout` / `open_portal`: the checkout is created with the agency id as the customer's
  external id, so the webhooks that follow find the agency. An agency that already has a live
  subscription is sent to the portal instead (changing plan there keeps one subscription; a
  second checkout would create two).
- `receive` / `apply_event`: a verified delivery (signature.py) parsed (schemas.parse_event)
  and applied by the pure state machine (subscription.transition). The delivery is recorded by
  webhook-id in the SAME transaction as the effect, so a redelivery (also a concurrent one)
  changes nothing, and an event older than the agency's last applied one does not roll state
  back. Unknown event types and unknown or deleted agencies: 2xx, no effect.
- the plans and the linking limit: plans.py (`check_account_limit`, called by onboarding).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from functions.billing import plans
from functions.billing.schemas import (
    BillingView,
    CheckoutStarted,
    Event,
    PlanInfo,
    PortalOpened,
    WebhookAnswer,
    parse_event,
)
from functions.billing.signature import Delivery
from functions.billing.subscription import PlanLookup, transition
from shared import db
from shared.db import Connection, system_tx, tenant_tx
from shared.errors import ConflictError, NotFoundError
from shared.logs import get_logger
from shared.settings import Settings
from shared.store import audit
from shared.store import billing as store

if TYPE_CHECKING:  # httpx is loaded only by the functions that call Polar
    from functions.billing.polar import PolarClient


# ---- the admin's view --------------------------------------------------------------------------


def view(conn: Connection, agency_id: uuid.UUID, now: datetime) -> BillingView:
    with tenant_tx(conn, agency_id):
        row = store.read_state(conn, agency_id, now)
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


# ---- checkout and portal -----------------------------------------------------------------------


def start_checkout(
    conn: Connection,
    agency_id: uuid.UUID,
    plan_name: str,
    *,
    actor: str,
    polar: PolarClient,
    settings: Settings,
    now: datetime,
    success_url: str | None = None,
) -> CheckoutStarted:
    plan = plans.purchasable_plan(plan_name)
    product = plans.product_id(plan, settings)
    with tenant_tx(conn, agency_id):
        row = store.read_state(conn, agency_id, now)
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


# ---- Polar webhooks ----------------------------------------------------------------------------


def ignored_without_database(event: Event) -> WebhookAnswer | None:
    """The answer for an event that needs no database at all (unknown type, no agency id)."""
    if event.data is None:
        return WebhookAnswer(outcome="ignored", reason=f"event type {event.type!r} is not handled")
    if event.agency_id is None:
        return WebhookAnswer(
            outcome="ignored", reason="the customer carries no agency id (external_id)"
        )
    return None


def receive(settings: Settings, delivery: Delivery) -> WebhookAnswer:
    """A verified delivery: parsed, then applied on a connection of its own, opened only when
    the event needs the database (a failure to connect is a 503, which Polar retries)."""
    event = parse_event(delivery.body)
    early = ignored_without_database(event)
    if early is not None:
        return early
    conn = db.connect(settings.database_url)
    try:
        return apply_event(
            conn, delivery, event, lambda product: plans.plan_for_product(product, settings)
        )
    finally:
        conn.close()


def apply_event(
    conn: Connection, delivery: Delivery, event: Event, plan_for: PlanLookup
) -> WebhookAnswer:
    """Apply a verified event to its agency, once per webhook-id."""
    early = ignored_without_database(event)
    if early is not None:
        return early
    agency_id = event.agency_id
    assert agency_id is not None
    with system_tx(conn):
        exists = store.agency_exists(conn, agency_id)
    if not exists:
        result = WebhookAnswer(outcome="ignored", reason="no such agency (unknown or deleted)")
    else:
        with tenant_tx(conn, agency_id):
            current = store.lock_state(conn, agency_id)
            if current is None:  # deleted since the check above
                result = WebhookAnswer(
                    outcome="ignored", reason="no such agency (unknown or deleted)"
                )
            elif not store.record_delivery(conn, delivery.webhook_id, event.type, agency_id):
                result = WebhookAnswer(
                    outcome="duplicate", reason="this webhook-id was already processed"
                )
            else:
                change = transition(current, event, plan_for)
                if change.state is None:
                    result = WebhookAnswer(
                        outcome="stale" if change.stale else "ignored", reason=change.reason
                    )
                else:
                    store.write_state(conn, agency_id, change.state)
                    audit.record(
                        conn,
                        agency_id,
                        "polar",
                        f"billing.{event.type}",
                        change.state.polar_subscription_id,
                        {
                            "webhook_id": delivery.webhook_id,
                            "status": [current.status, change.state.status],
                            "plan": [current.plan, change.state.plan],
                        },
                    )
                    result = WebhookAnswer(outcome="applied", reason=change.reason)
    get_logger().info(
        "polar webhook",
        extra={
            "webhook_id": delivery.webhook_id,
            "event_type": event.type,
            "agency_id": str(agency_id),
            "outcome": result.outcome,
            "reason": result.reason,
        },
    )
    return result
