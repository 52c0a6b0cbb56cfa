"""The guard of every cron endpoint: Vercel Cron's `Authorization: Bearer $CRON_SECRET`.

`require_cron(request)` (usable as a FastAPI dependency) lets a request through only when its
Authorization header is exactly `Bearer <CRON_SECRET>`:
- no CRON_SECRET configured (or one under 16 characters): ConfigError (503) naming the
  variable, and nothing runs;
- header missing, malformed, another value, a prefix or an extension of the secret: 401;
- the secret in the query string (or anywhere but that header) counts for nothing: 401.
The comparison hashes both sides first and compares the digests with `hmac.compare_digest`, so
neither the content nor the length of the secret leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request

from shared.errors import ConfigError, UnauthorizedError
from shared.web import SettingsDep

_SCHEME = "Bearer "
MIN_SECRET_CHARS = 16


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def bearer_matches(header: str | None, secret: str) -> bool:
    """Whether `header` is exactly `Bearer <secret>` (constant time in both values)."""
    presented = header or ""
    # Always compare (even a missing header), so every refusal costs the same.
    return hmac.compare_digest(_digest(presented), _digest(_SCHEME + secret)) and bool(header)


def require_cron(request: Request, settings: SettingsDep) -> None:
    """Refuse (401) any request not carrying the cron bearer; 503 when none is configured."""
    secret = settings.cron_secret.reveal()  # ConfigError (503) when CRON_SECRET is unset
    if len(secret) < MIN_SECRET_CHARS:
        # A guessable secret is no guard: refuse to run rather than run unprotected.
        raise ConfigError(f"CRON_SECRET must be at least {MIN_SECRET_CHARS} random characters")
    if not bearer_matches(request.headers.get("authorization"), secret):
        raise UnauthorizedError("cron endpoints need Authorization: Bearer <CRON_SECRET>")


CronDep = Annotated[None, Depends(require_cron)]
