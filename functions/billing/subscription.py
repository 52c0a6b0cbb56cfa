"""The subscription state machine (pure): what a Polar event does to an agency's billing state.

The subscription events and `order.paid` map to billing state by `transition`; an event older
than the state's last applied one (by the event's own timestamp) changes nothing, so a late
delivery never rolls state back, and an old subscription's late news never undoes the one the
agency has now. service.apply_event runs it inside the transaction that records the delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from functions.billing.schemas import Event, OrderData, SubscriptionData
from shared.store.billing import BillingState

# Polar subscription status -> ours. `incomplete` and `incomplete_expired` are a first payment
# that never completed: they neither end a trial nor grant anything, so they change no status.
_FROM_POLAR_STATUS = {
    "trialing": "trialing",
    "active": "active",
    "past_due": "past_due",
    "canceled": "canceled",
    "unpaid": "unpaid",
    "paused": "paused",
}
_LIVE = frozenset({"trialing", "active"})
# States an `order.paid` (money arrived) turns into `active`.
_PAYABLE = frozenset({"trialing", "past_due", "unpaid", "incomplete"})


def _status_for(
    event_type: str, polar_status: str | None, cancel_at_period_end: bool
) -> str | None:
    if event_type == "subscription.revoked":
        return "revoked"  # access ends now, whatever the period
    if event_type == "subscription.canceled":
        return "canceled"  # access until the period ends
    if event_type == "subscription.past_due":
        return "past_due"
    if event_type == "subscription.active":
        status: str | None = "active"
    else:  # created, updated, uncanceled: Polar's status says it
        status = _FROM_POLAR_STATUS.get(polar_status or "")
    if status in _LIVE and cancel_at_period_end:
        return "canceled"  # canceled at period end: the same entitlement as canceled
    return status


@dataclass(frozen=True)
class Transition:
    """What an event does to a state: the new state, or why nothing changes."""

    state: BillingState | None
    reason: str
    stale: bool = False


PlanLookup = Callable[[str | None], str | None]


def transition(current: BillingState, event: Event, plan_for: PlanLookup) -> Transition:
    """The billing state after `event`, or (state None) why the event changes nothing."""
    if current.billing_event_at is not None and event.timestamp < current.billing_event_at:
        return Transition(None, "older than the state it would change", stale=True)
    if isinstance(event.data, SubscriptionData):
        return _subscription(current, event, event.data, plan_for)
    if isinstance(event.data, OrderData):
        return _order_paid(current, event, event.data, plan_for)
    return Transition(None, "event type not handled")


def _subscription(
    current: BillingState, event: Event, sub: SubscriptionData, plan_for: PlanLookup
) -> Transition:
    status = _status_for(event.type, sub.status, bool(sub.cancel_at_period_end))
    foreign = current.polar_subscription_id not in (None, sub.id)
    if foreign and not (status in _LIVE and event.type != "subscription.canceled"):
        # An old subscription's late news (its revocation at period end, say) must not undo
        # the one the agency has now; only a new live subscription replaces the current one.
        return Transition(None, "not the agency's current subscription")
    if status is None:
        # Incomplete payment or a status we do not know: remember who the customer is only.
        return Transition(
            replace(
                current,
                polar_customer_id=sub.customer_id or current.polar_customer_id,
                billing_event_at=event.timestamp,
            ),
            f"subscription status {sub.status!r} changes no entitlement",
        )
    period_end = sub.current_period_end or current.current_period_end
    if status == "canceled":
        period_end = sub.ends_at or period_end
    trial_ends = current.trial_ends_at
    if status == "trialing":
        trial_ends = sub.trial_end or sub.current_period_end or trial_ends
    return Transition(
        BillingState(
            status=status,
            plan=plan_for(sub.product_id) or current.plan,
            trial_ends_at=trial_ends,
            polar_customer_id=sub.customer_id or current.polar_customer_id,
            polar_subscription_id=sub.id,
            current_period_end=period_end,
            billing_event_at=event.timestamp,
        ),
        f"{event.type} -> {status}",
    )


def _order_paid(
    current: BillingState, event: Event, order: OrderData, plan_for: PlanLookup
) -> Transition:
    customer = order.customer_id or current.polar_customer_id
    if order.subscription_id is None:
        # A one-time purchase: nothing to entitle; remember the customer.
        return Transition(
            replace(current, polar_customer_id=customer, billing_event_at=event.timestamp),
            "one-time order",
        )
    if current.polar_subscription_id not in (None, order.subscription_id):
        return Transition(None, "not the agency's current subscription")
    snapshot = order.subscription
    status: str | None = None
    if snapshot is not None and snapshot.status:
        status = _status_for("order.paid", snapshot.status, bool(snapshot.cancel_at_period_end))
    if status is None:
        status = "active" if current.status in _PAYABLE else current.status
    period_end = current.current_period_end
    if snapshot is not None:
        period_end = snapshot.current_period_end or period_end
        if status == "canceled":
            period_end = snapshot.ends_at or period_end
    trial_ends = current.trial_ends_at
    if status == "trialing" and snapshot is not None:
        trial_ends = snapshot.trial_end or snapshot.current_period_end or trial_ends
    return Transition(
        BillingState(
            status=status,
            plan=plan_for(order.product_id) or current.plan,
            trial_ends_at=trial_ends,
            polar_customer_id=customer,
            polar_subscription_id=order.subscription_id,
            current_period_end=period_end,
            billing_event_at=event.timestamp,
        ),
        f"order.paid -> {status}",
    )
