"""Build, sign and POST a sample Polar delivery to a running local server.

    python -m devstack.polar_replay --agency <agency id>
        [--url http://127.0.0.1:8000/api/webhooks/polar] [--event subscription.active]
        [--product <Polar product id>] [--secret <webhook secret>]

The delivery is signed the way Polar signs: Standard Webhooks (the `standardwebhooks` package)
with the HMAC key being the raw UTF-8 bytes of the secret. The secret defaults to the
POLAR_WEBHOOK_SECRET of the environment, which must be the one the server runs with. Tests use
the same builders (`sample_event`, `signed_headers`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

DEFAULT_URL = "http://127.0.0.1:8000/api/webhooks/polar"

# What Polar reports as the subscription status for each event of a normal lifecycle.
_STATUS = {
    "subscription.created": "active",
    "subscription.active": "active",
    "subscription.updated": "active",
    "subscription.canceled": "active",  # canceled at period end: still active until then
    "subscription.uncanceled": "active",
    "subscription.past_due": "past_due",
    "subscription.revoked": "canceled",
}


def sample_event(
    agency_id: uuid.UUID | str | None,
    event_type: str = "subscription.active",
    *,
    at: datetime | None = None,
    subscription_id: str = "sub_demo_0001",
    customer_id: str = "cus_demo_0001",
    product_id: str | None = None,
    status: str | None = None,
    period_end: datetime | None = None,
    trial_end: datetime | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Polar event envelope shaped like Polar's (with more fields than we read)."""
    now = at or datetime.now(UTC)
    end = period_end or now + timedelta(days=30)
    customer: dict[str, Any] = {
        "id": customer_id,
        "external_id": None if agency_id is None else str(agency_id),
        "email": "billing@example.com",
        "name": "Demo Agency",
        "metadata": {},
    }
    if event_type.startswith("order."):
        data: dict[str, Any] = {
            "id": "ord_" + secrets.token_hex(6),
            "status": "paid",
            "paid": True,
            "billing_reason": "subscription_cycle",
            "customer_id": customer_id,
            "customer": customer,
            "product_id": product_id,
            "subscription_id": subscription_id,
            "total_amount": 4900,
            "currency": "usd",
        }
    else:
        sub_status = status or _STATUS.get(event_type, "active")
        data = {
            "id": subscription_id,
            "status": sub_status,
            "amount": 4900,
            "currency": "usd",
            "recurring_interval": "month",
            "current_period_start": (end - timedelta(days=30)).isoformat(),
            "current_period_end": end.isoformat(),
            "trial_start": None,
            "trial_end": trial_end.isoformat() if trial_end else None,
            "cancel_at_period_end": event_type == "subscription.canceled",
            "canceled_at": now.isoformat() if event_type == "subscription.canceled" else None,
            "ends_at": end.isoformat() if event_type == "subscription.canceled" else None,
            "ended_at": now.isoformat() if event_type == "subscription.revoked" else None,
            "customer_id": customer_id,
            "customer": customer,
            "product_id": product_id,
            "metadata": {},
        }
    if extra:
        data.update(extra)
    return {"type": event_type, "timestamp": now.isoformat(), "data": data}


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def signed_headers(
    secret: str,
    body: bytes,
    *,
    webhook_id: str | None = None,
    timestamp: int | None = None,
    polar_key: bool = True,
) -> dict[str, str]:
    """Standard Webhooks headers for `body`. `polar_key`: key with the raw UTF-8 bytes of the
    secret (Polar); otherwise treat `secret` as a `whsec_<base64>` secret (the spec's form)."""
    msg_id = webhook_id or "msg_" + secrets.token_hex(12)
    ts = int(datetime.now(UTC).timestamp()) if timestamp is None else timestamp
    signer = Webhook(base64.b64encode(secret.encode()).decode() if polar_key else secret)
    signature = signer.sign(msg_id, datetime.fromtimestamp(ts, tz=UTC), body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="POST a signed sample Polar webhook.")
    parser.add_argument("--agency", required=True, help="the agency id (Polar external_id)")
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--event", default="subscription.active")
    parser.add_argument("--product", default=os.environ.get("POLAR_PRODUCT_PRO") or None)
    parser.add_argument("--secret", default=os.environ.get("POLAR_WEBHOOK_SECRET"))
    args = parser.parse_args(argv)
    if not args.secret:
        print("error: pass --secret or set POLAR_WEBHOOK_SECRET (the server's)", file=sys.stderr)
        return 2
    body = encode(sample_event(args.agency, args.event, product_id=args.product))
    headers = signed_headers(args.secret, body)
    try:
        response = httpx.post(args.url, content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        print(f"error: could not reach {args.url}: {type(exc).__name__}", file=sys.stderr)
        return 1
    print(f"{args.event} for agency {args.agency} -> {response.status_code} {response.text}")
    return 0 if response.is_success else 1


if __name__ == "__main__":
    raise SystemExit(main())
