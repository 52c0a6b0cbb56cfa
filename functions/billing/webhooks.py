"""Polar webhooks: verify a delivery, parse the event, and apply it to the agency's billing state.

Verification follows Standard Webhooks as Polar signs: HMAC-SHA256 over the raw bytes
`{webhook-id}.{webhook-timestamp}.{body}`, base64, sent as `v1,<sig>` (several, space-separated,
during a secret rotation; one valid is enough), compared in constant time, the timestamp within
5 minutes. Polar keys the HMAC with the raw UTF-8 bytes of the dashboard secret, the Standard
Webhooks libraries with the base64-decoded `whsec_...` secret: both derivations are accepted. The
body is bounded before any hashing, and every malformed header is a 4xx, never a 500.

Parsing uses our own models of only the fields we read (extra fields ignored, so Polar can add
fields without breaking us). Effects: the subscription events and `order.paid` map to billing
state by the pure `transition`; `apply` records the delivery by webhook-id in the SAME
transaction as the effect, so a redelivery (also a concurrent one) changes nothing, and an
event older than the agency's last applied one (by the event's own timestamp) does not roll
state back. Unknown event types and unknown or deleted agencies: 2xx, no effect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.db import Connection, system_tx, tenant_tx
from shared.errors import BadRequestError, PayloadTooLargeError, UnauthorizedError
from shared.logs import get_logger
from shared.store import audit
from shared.store import billing as store
from shared.store.billing import BillingState

MAX_BODY_BYTES = 64 * 1024
TOLERANCE_SECONDS = 5 * 60
MAX_SIGNATURES = 10
MAX_SIGNATURE_HEADER = 2048

_WEBHOOK_ID = re.compile(r"[\x21-\x7e]{1,200}")  # visible ASCII; the table bounds it at 200
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class WebhookHeaderError(BadRequestError):
    """A webhook header is missing or malformed."""

    code = "invalid_webhook_headers"


class WebhookSignatureError(UnauthorizedError):
    """No signature matches, or the timestamp is outside the tolerance."""

    code = "invalid_webhook_signature"


class WebhookPayloadError(BadRequestError):
    """A validly signed body that is not the event it claims to be."""

    code = "invalid_webhook_payload"


# ---- verification ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its id, signed timestamp, and raw body."""

    webhook_id: str
    timestamp: int
    body: bytes


def check_size(declared_length: str | None) -> None:
    """Refuse a body whose declared length is over the bound, before reading it."""
    if declared_length is not None:
        if not declared_length.isdigit():
            raise WebhookHeaderError("content-length must be a number of bytes")
        if int(declared_length) > MAX_BODY_BYTES:
            raise PayloadTooLargeError(f"webhook bodies are limited to {MAX_BODY_BYTES} bytes")


def signing_keys(secret: str) -> tuple[bytes, ...]:
    """The HMAC keys a secret may stand for: its raw UTF-8 bytes (Polar) and, when the part
    after an optional `whsec_` prefix is valid base64, the decoded bytes (Standard Webhooks)."""
    keys = [secret.encode()]
    encoded = secret.removeprefix("whsec_")
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if decoded and decoded not in keys:
        keys.append(decoded)
    return tuple(keys)


def _mac(key: bytes, webhook_id: str, timestamp: int | str, body: bytes) -> bytes:
    # The timestamp is signed as sent (its header text), not as we would print the number.
    return hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of a delivery under one HMAC key."""
    return "v1," + base64.b64encode(_mac(key, webhook_id, timestamp, body)).decode()


def _signatures(header: str) -> list[bytes]:
    if len(header) > MAX_SIGNATURE_HEADER:
        raise WebhookHeaderError("webhook-signature header is too long")
    entries = header.split()
    if not entries or len(entries) > MAX_SIGNATURES:
        raise WebhookHeaderError(
            f"webhook-signature must hold 1 to {MAX_SIGNATURES} space-separated 'v1,<base64>'"
        )
    found: list[bytes] = []
    for entry in entries:
        version, sep, value = entry.partition(",")
        if not sep or version != "v1":
            continue  # another scheme (e.g. v1a) or junk: never a match
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(raw) == hashlib.sha256().digest_size:
            found.append(raw)
    if not found:
        raise WebhookHeaderError("webhook-signature holds no well-formed 'v1,<base64>' signature")
    return found


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> Delivery:
    """The delivery, when its headers are well-formed, its timestamp within 5 minutes of `now`
    and one of its signatures valid for the raw `body` under `secret`; else a 4xx error."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"webhook bodies are limited to {MAX_BODY_BYTES} bytes")
    webhook_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signature = headers.get("webhook-signature")
    if not (webhook_id and timestamp and signature):
        raise WebhookHeaderError(
            "webhook-id, webhook-timestamp and webhook-signature headers are required"
        )
    if not _WEBHOOK_ID.fullmatch(webhook_id):
        raise WebhookHeaderError("webhook-id must be 1 to 200 visible ASCII characters")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise WebhookHeaderError("webhook-timestamp must be whole seconds since the epoch")
    sent_at = int(timestamp)
    signatures = _signatures(signature)
    if abs(now - sent_at) > TOLERANCE_SECONDS:
        raise WebhookSignatureError("webhook-timestamp is more than 5 minutes from our clock")
    for key in signing_keys(secret):
        expected = _mac(key, webhook_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            return Delivery(webhook_id, sent_at, body)
    raise WebhookSignatureError("no webhook signature matches")


# ---- parsing ---------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class PolarCustomer(_Model):
    id: str | None = Field(default=None, max_length=128)
    external_id: str | None = Field(default=None, max_length=200)


class _Dates(_Model):
    @field_validator("*", mode="after")
    @classmethod
    def _utc(cls, value: Any) -> Any:
        return _aware(value) if isinstance(value, datetime) else value


class SubscriptionData(_Dates):
    """The fields of Polar's Subscription we read."""

    id: str = Field(min_length=1, max_length=128)
    status: str = Field(max_length=64)
    customer_id: str | None = Field(default=None, max_length=128)
    customer: PolarCustomer | None = None
    product_id: str | None = Field(default=None, max_length=128)
    current_period_end: datetime | None = None
    cancel_at_period_end: bool | None = False
    ends_at: datetime | None = None
    trial_end: datetime | None = None


class OrderSubscription(_Dates):
    """The subscription snapshot an order carries."""

    status: str | None = Field(default=None, max_length=64)
    current_period_end: datetime | None = None
    cancel_at_period_end: bool | None = False
    ends_at: datetime | None = None
    trial_end: datetime | None = None


class OrderData(_Dates):
    """The fields of Polar's Order we read."""

    id: str = Field(min_length=1, max_length=128)
    customer_id: str | None = Field(default=None, max_length=128)
    customer: PolarCustomer | None = None
    product_id: str | None = Field(default=None, max_length=128)
    subscription_id: str | None = Field(default=None, max_length=128)
    subscription: OrderSubscription | None = None


class Envelope(_Dates):
    """Every Polar event: `{type, timestamp, data}`."""

    type: str = Field(min_length=1, max_length=100)
    timestamp: datetime
    data: dict[str, Any]


SUBSCRIPTION_EVENTS = frozenset(
    {
        "subscription.created",
        "subscription.active",
        "subscription.updated",
        "subscription.canceled",
        "subscription.uncanceled",
        "subscription.past_due",
        "subscription.revoked",
    }
)
HANDLED_EVENTS = SUBSCRIPTION_EVENTS | {"order.paid"}


@dataclass(frozen=True)
class Event:
    """A parsed event we act on (or `data` None: a type we do not handle)."""

    type: str
    timestamp: datetime
    data: SubscriptionData | OrderData | None

    @property
    def agency_id(self) -> uuid.UUID | None:
        """Our agency id, which checkout set as the Polar customer's external id."""
        customer = self.data.customer if self.data is not None else None
        if customer is None or not customer.external_id:
            return None
        try:
            return uuid.UUID(customer.external_id)
        except ValueError:
            return None


def parse_event(body: bytes) -> Event:
    """The event in a verified body; 400 when it is not JSON or not the event it claims."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise WebhookPayloadError("the webhook body is not JSON") from None
    try:
        envelope = Envelope.model_validate(raw)
        if envelope.type in SUBSCRIPTION_EVENTS:
            data: SubscriptionData | OrderData | None = SubscriptionData.model_validate(
                envelope.data
            )
        elif envelope.type in HANDLED_EVENTS:
            data = OrderData.model_validate(envelope.data)
        else:
            data = None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise WebhookPayloadError(f"the webhook event is malformed at {where}") from None
    assert envelope.timestamp.tzinfo is not None
    return Event(envelope.type, envelope.timestamp, data)


# ---- the state machine (pure) ------------------------------------------------------------------

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


# ---- applying ----------------------------------------------------------------------------------

Outcome = Literal["applied", "duplicate", "stale", "ignored"]


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str


def ignored_without_database(event: Event) -> Result | None:
    """The answer for an event that needs no database at all (unknown type, no agency id)."""
    if event.data is None:
        return Result("ignored", f"event type {event.type!r} is not handled")
    if event.agency_id is None:
        return Result("ignored", "the customer carries no agency id (external_id)")
    return None


def apply(conn: Connection, delivery: Delivery, event: Event, plan_for: PlanLookup) -> Result:
    """Apply a verified event to its agency, once per webhook-id."""
    early = ignored_without_database(event)
    if early is not None:
        return early
    agency_id = event.agency_id
    assert agency_id is not None
    with system_tx(conn):
        exists = store.agency_exists(conn, agency_id)
    if not exists:
        result = Result("ignored", "no such agency (unknown or deleted)")
    else:
        with tenant_tx(conn, agency_id):
            current = store.lock_state(conn, agency_id)
            if current is None:  # deleted since the check above
                result = Result("ignored", "no such agency (unknown or deleted)")
            elif not store.record_delivery(conn, delivery.webhook_id, event.type, agency_id):
                result = Result("duplicate", "this webhook-id was already processed")
            else:
                change = transition(current, event, plan_for)
                if change.state is None:
                    result = Result("stale" if change.stale else "ignored", change.reason)
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
                    result = Result("applied", change.reason)
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


def now_seconds() -> float:
    return datetime.now(UTC).timestamp()
