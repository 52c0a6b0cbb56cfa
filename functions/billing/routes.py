"""HTTP routes of billing (admins) and the Polar webhook (Polar).

Two routers, one per Vercel function: `billing_router` (api/billing.py), `webhooks_router`
(api/webhooks.py).

The webhook route verifies before it touches anything else: the body is bounded while it is
read, the signature checked over those raw bytes, and only then is a database connection opened
(an unsigned flood never reaches Postgres). Its database work runs in a worker thread so the
event loop is never blocked; a database failure is a 503, which Polar retries.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from functions.billing import checkout, plans, state, webhooks
from shared import db
from shared.errors import PayloadTooLargeError
from shared.settings import Settings, get_settings
from shared.web import ERRORS, AdminDep, Body, Conn

billing_router = APIRouter(tags=["billing"])
webhooks_router = APIRouter(tags=["webhooks"])

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


_BILLING_ERRORS = {
    **ERRORS,
    403: {"description": "an admin API key is required"},
    503: {"description": "Polar or a setting is unavailable; retry"},
}


@billing_router.get("/api/billing", responses=_BILLING_ERRORS)
def get_billing(caller: AdminDep, conn: Conn) -> state.BillingView:
    """The agency's billing state, plan limits, and whether its accounts sync now."""
    return state.view(conn, caller.agency_id)


@billing_router.post(
    "/api/billing/checkout",
    status_code=201,
    responses={**_BILLING_ERRORS, 409: {"description": "already subscribed: use the portal"}},
)
def post_checkout(body: CheckoutRequest, caller: AdminDep, conn: Conn) -> checkout.CheckoutStarted:
    """Start a Polar checkout for a plan; send the admin to `checkout_url`."""
    from functions.billing.polar import PolarClient  # noqa: PLC0415 - httpx only where needed

    settings = get_settings()
    with PolarClient.from_settings(settings) as polar:
        return checkout.start_checkout(
            conn,
            caller.agency_id,
            body.plan,
            actor=caller.actor,
            polar=polar,
            settings=settings,
            success_url=body.success_url,
        )


@billing_router.post("/api/billing/portal", responses=_BILLING_ERRORS)
def post_portal(caller: AdminDep, body: PortalRequest | None = None) -> checkout.PortalOpened:
    """Open Polar's customer portal (payment method, invoices, plan changes, cancellation)."""
    from functions.billing.polar import PolarClient  # noqa: PLC0415 - httpx only where needed

    with PolarClient.from_settings(get_settings()) as polar:
        return checkout.open_portal(
            caller.agency_id, polar=polar, return_url=body.return_url if body else None
        )


# ---- Polar webhook -----------------------------------------------------------------------------


class WebhookAnswer(BaseModel):
    outcome: webhooks.Outcome
    reason: str


@webhooks_router.post(
    "/api/webhooks/polar",
    responses={
        400: {"description": "missing or malformed webhook headers, or a malformed event"},
        401: {"description": "no valid signature, or a timestamp over 5 minutes off"},
        413: {"description": "body over 64 KiB"},
        503: {"description": "database unavailable: Polar retries"},
    },
)
async def post_polar_webhook(request: Request) -> WebhookAnswer:
    """Polar's webhook (Standard Webhooks signatures). 2xx once handled, or deliberately
    ignored (unknown type, unknown agency, duplicate, older than the current state)."""
    webhooks.check_size(request.headers.get("content-length"))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > webhooks.MAX_BODY_BYTES:
            raise PayloadTooLargeError(
                f"webhook bodies are limited to {webhooks.MAX_BODY_BYTES} bytes"
            )
    settings = get_settings()
    secret = settings.secret("POLAR_WEBHOOK_SECRET").reveal()
    delivery = webhooks.verify(request.headers, bytes(body), secret, webhooks.now_seconds())
    event = webhooks.parse_event(delivery.body)
    result = webhooks.ignored_without_database(event)
    if result is None:
        result = await run_in_threadpool(_apply, settings, delivery, event)
    return WebhookAnswer(outcome=result.outcome, reason=result.reason)


def _apply(
    settings: Settings, delivery: webhooks.Delivery, event: webhooks.Event
) -> webhooks.Result:
    conn = db.connect(settings.database_url)
    try:
        return webhooks.apply(
            conn, delivery, event, lambda product: plans.plan_for_product(product, settings)
        )
    finally:
        conn.close()
