"""Agency sign-up: an agency in its trial, its ExternalId and its first admin API key.

Public (no key yet), so it is rate-limited per source address (a hash of it is the bucket: the
address itself is not stored). The ExternalId comes from `externalid.generate()`, never from
the request; the API key is returned once and only its hash is stored.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from shared import auth
from shared.db import Connection, is_unique_violation, system_tx
from shared.errors import RateLimitedError
from shared.store import agencies, rate_limits

from . import externalid

SIGNUP_WINDOW_S = 3600
SIGNUP_LIMIT = 5  # sign-ups per source address per window
_ATTEMPTS = 3  # a unique-constraint collision of 256-bit random values means a broken RNG

EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True, repr=False)
class SignUpResult:
    """What sign-up returns once: the key in clear, and the ExternalId."""

    agency_id: uuid.UUID
    key_id: uuid.UUID
    api_key: str
    external_id: str

    def __repr__(self) -> str:
        return f"SignUpResult(agency_id={self.agency_id})"


def rate_limit_bucket(source_address: str) -> str:
    """The rate-limit bucket of an address: hashed (the address is personal data)."""
    digest = hashlib.sha256(source_address.encode("utf-8", "replace")).hexdigest()[:32]
    return f"signup:{digest}"


def check_rate_limit(conn: Connection, source_address: str, now: datetime) -> None:
    """Count this sign-up attempt; 429 with Retry-After past the limit."""
    with system_tx(conn):
        wait = rate_limits.hit(
            conn, rate_limit_bucket(source_address), now, SIGNUP_WINDOW_S, SIGNUP_LIMIT
        )
    if wait:
        raise RateLimitedError(
            f"too many sign-ups from this address; retry in {wait} seconds", retry_after=wait
        )


def sign_up(
    conn: Connection, *, name: str, contact_email: str, source_address: str, now: datetime
) -> SignUpResult:
    check_rate_limit(conn, source_address, now)
    key = auth.generate_key()
    for attempt in range(_ATTEMPTS):
        value = externalid.generate()
        try:
            with system_tx(conn):
                agency_id, key_id = agencies.create(
                    conn,
                    name=name,
                    contact_email=contact_email,
                    external_id=value,
                    key_hash=key.key_hash,
                    key_prefix=key.display_prefix,
                )
        except Exception as exc:
            if not is_unique_violation(exc) or attempt == _ATTEMPTS - 1:
                raise
            continue
        return SignUpResult(agency_id, key_id, key.plaintext, value)
    raise AssertionError("unreachable")
