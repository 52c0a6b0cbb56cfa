"""Polar webhook signatures (Standard Webhooks), and the FastAPI dependency that checks them.

Polar signs as Standard Webhooks specifies: HMAC-SHA256 over the raw bytes
`{webhook-id}.{webhook-timestamp}.{body}`, base64, sent as `v1,<sig>` (several, space-separated,
during a secret rotation; one valid is enough), the timestamp within 5 minutes. The HMAC and its
constant-time comparison are the `standardwebhooks` package's; around it we keep what it does
not do for us:
- the body is bounded before anything is hashed (413), by its declared length before it is read;
- every header is checked first, so a malformed one is a 400 naming it, never a 500 (the package
  raises ValueError on `webhook-signature: v1`); only well-formed `v1,<base64>` entries reach it;
- the tolerance is checked against the clock we are given (the request's `Now`), not the
  package's own reading of the wall clock;
- both key derivations: Polar keys the HMAC with the raw UTF-8 bytes of the dashboard secret,
  the Standard Webhooks libraries with the base64-decoded `whsec_...` secret;
- ANY exception the package raises (a body that is not UTF-8, say) is a bad signature (401).
The package is called with `json_parse=False`: the body is parsed afterwards, nesting bounded
(schemas.parse_event).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from standardwebhooks.webhooks import Webhook

from shared.errors import BadRequestError, PayloadTooLargeError, UnauthorizedError
from shared.web import Now, SettingsDep

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


class _Verifier(Webhook):
    """The package's verifier without its own wall-clock check: `verify` has checked the
    timestamp against the clock it was given before calling it (and tests give a fixed one).
    The package (pinned) reads the clock in its private `__verify_timestamp`."""

    def _Webhook__verify_timestamp(self, timestamp_header: str) -> datetime:
        return datetime.fromtimestamp(int(timestamp_header), tz=UTC)


def sign(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of a (UTF-8) delivery under one HMAC key."""
    return Webhook(key).sign(webhook_id, datetime.fromtimestamp(timestamp, tz=UTC), body.decode())


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
    # Only the well-formed entries, re-encoded: the package sees nothing it could choke on.
    checked = {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": " ".join("v1," + base64.b64encode(s).decode() for s in signatures),
    }
    if any(_signed_with(key, body, checked) for key in signing_keys(secret)):
        return Delivery(webhook_id, sent_at, body)
    raise WebhookSignatureError("no webhook signature matches")


def _signed_with(key: bytes, body: bytes, headers: dict[str, str]) -> bool:
    """Whether the package finds one of the signatures valid under `key`."""
    try:
        _Verifier(key).verify(body, headers, json_parse=False)
    except Exception:  # noqa: BLE001 - whatever it raises, the delivery is not proven ours
        return False
    return True


async def verified_delivery(request: Request, settings: SettingsDep, now: Now) -> Delivery:
    """The route's dependency: the body read within its bound, then verified over its bytes.

    Nothing else runs first: an unsigned flood never opens a database connection."""
    check_size(request.headers.get("content-length"))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise PayloadTooLargeError(f"webhook bodies are limited to {MAX_BODY_BYTES} bytes")
    secret = settings.secret("POLAR_WEBHOOK_SECRET").reveal()
    return verify(request.headers, bytes(body), secret, now.timestamp())


VerifiedDelivery = Annotated[Delivery, Depends(verified_delivery)]
