"""Billing's models: the admin API's requests and answers, and the Polar webhook payloads.

Payloads are our own models of only the fields we read (extra fields ignored, so Polar can add
fields without breaking us). `parse_event` turns a verified body into an `Event`; it bounds the
body's JSON nesting before parsing it, so a signed but absurdly nested body is a 400 and never
reaches the parser's recursion limit (a 500).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.billing import plans
from shared.errors import BadRequestError
from shared.kit.jsondepth import nests_deeper_than
from shared.web import Body

# ---- the admin API -----------------------------------------------------------------------------

# An https URL, or plain http on loopback for local development.
_RETURN_URL = r"^(https://[^\s]+|http://(localhost|127\.0\.0\.1)(:[0-9]{1,5})?(/[^\s]*)?)$"


class CheckoutRequest(Body):
    plan: str = Field(max_length=32, description=f"one of: {', '.join(plans.PURCHASABLE)}")
    success_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=_RETURN_URL,
        description="where Polar sends the admin after paying",
    )


class PortalRequest(Body):
    return_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=_RETURN_URL,
        description="where the portal's back button leads",
    )


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


class CheckoutStarted(BaseModel):
    checkout_id: str
    checkout_url: str
    plan: str
    expires_at: datetime | None


class PortalOpened(BaseModel):
    portal_url: str
    expires_at: datetime | None


Outcome = Literal["applied", "duplicate", "stale", "ignored"]


# What a delivery did: applied, or deliberately nothing (and why). (No docstring: it would
# become the OpenAPI description, which stays as it was.)
class WebhookAnswer(BaseModel):
    outcome: Outcome
    reason: str


# ---- Polar webhook payloads --------------------------------------------------------------------

# Polar's events nest a handful of levels (envelope, data, customer, metadata); anything deeper
# than this is not an event we read, and refusing it keeps the JSON parser's recursion bounded.
MAX_JSON_DEPTH = 32


class WebhookPayloadError(BadRequestError):
    """A validly signed body that is not the event it claims to be."""

    code = "invalid_webhook_payload"


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
    too_deep = WebhookPayloadError(
        f"the webhook body nests JSON deeper than {MAX_JSON_DEPTH} levels"
    )
    if nests_deeper_than(body, MAX_JSON_DEPTH):
        raise too_deep
    try:
        raw = json.loads(body)
    except RecursionError:  # a UTF-16 body the byte scan above cannot read
        raise too_deep from None
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
