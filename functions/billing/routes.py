"""HTTP routes of billing (admins) and the Polar webhook (Polar).

Two routers, one per Vercel function: `billing_router` (api/billing.py), `webhooks_router`
(api/webhooks.py).

The webhook route verifies before it touches anything else: its dependency
(signature.verified_delivery) bounds the body while reading it and checks the signature over
those raw bytes; only then is a database connection opened (an unsigned flood never reaches
Postgres). Its database work runs in a worker thread so the event loop is never blocked; a
database failure is a 503, which Polar retries.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from functions.billing import service
from functions.billing.schemas import (
    BillingView,
    CheckoutRequest,
    CheckoutStarted,
    PortalOpened,
    PortalRequest,
    WebhookAnswer,
)
from functions.billing.signature import VerifiedDelivery
from shared.web import ERRORS, AdminDep, Conn, Now, SettingsDep

billing_router = APIRouter(tags=["billing"])
webhooks_router = APIRouter(tags=["webhooks"])

_BILLING_ERRORS = {
    **ERRORS,
    403: {"description": "an admin API key is required"},
    503: {"description": "Polar or a setting is unavailable; retry"},
}


@billing_router.get("/api/billing", responses=_BILLING_ERRORS)
def get_billing(caller: AdminDep, conn: Conn, now: Now) -> BillingView:
    """The agency's billing state, plan limits, and whether its accounts sync now."""
    return service.view(conn, caller.agency_id, now)


@billing_router.post(
    "/api/billing/checkout",
    status_code=201,
    responses={**_BILLING_ERRORS, 409: {"description": "already subscribed: use the portal"}},
)
def post_checkout(
    body: CheckoutRequest, caller: AdminDep, conn: Conn, settings: SettingsDep, now: Now
) -> CheckoutStarted:
    """Start a Polar checkout for a plan; send the admin to `checkout_url`."""
    from functions.billing.polar import PolarClient  # noqa: PLC0415 - httpx only where needed

    with PolarClient.from_settings(settings) as polar:
        return service.start_checkout(
            conn,
            caller.agency_id,
            body.plan,
            actor=caller.actor,
            polar=polar,
            settings=settings,
            now=now,
            success_url=body.success_url,
        )


@billing_router.post("/api/billing/portal", responses=_BILLING_ERRORS)
def post_portal(
    caller: AdminDep, settings: SettingsDep, body: PortalRequest | None = None
) -> PortalOpened:
    """Open Polar's customer portal (payment method, invoices, plan changes, cancellation)."""
    from functions.billing.polar import PolarClient  # noqa: PLC0415 - httpx only where needed

    with PolarClient.from_settings(settings) as polar:
        return service.open_portal(
            caller.agency_id, polar=polar, return_url=body.return_url if body else None
        )


@webhooks_router.post(
    "/api/webhooks/polar",
    responses={
        400: {"description": "missing or malformed webhook headers, or a malformed event"},
        401: {"description": "no valid signature, or a timestamp over 5 minutes off"},
        413: {"description": "body over 64 KiB"},
        503: {"description": "database unavailable: Polar retries"},
    },
)
async def post_polar_webhook(delivery: VerifiedDelivery, settings: SettingsDep) -> WebhookAnswer:
    """Polar's webhook (Standard Webhooks signatures). 2xx once handled, or deliberately
    ignored (unknown type, unknown agency, duplicate, older than the current state)."""
    return await run_in_threadpool(service.receive, settings, delivery)
