"""Scrubbing of secrets from anything that leaves the process as text (logs, error reports).

Two nets: by key name (a dict key that names a credential has its value replaced, at any depth)
and by value (patterns of AWS key ids, secrets and session tokens, Postgres URLs with passwords,
bearer tokens, webhook secrets, our API keys, plus the exact values of every configured secret).
Both are cheap enough to run on every log record.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

MASK = "[redacted]"

# Key names (case-insensitive, compared without '-' and '_') whose values are never shown.
SENSITIVE_KEYS = frozenset(
    k.replace("_", "").replace("-", "").lower()
    for k in (
        "password",
        "passwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "authorization",
        "cookie",
        "set-cookie",
        "access_key_id",
        "accesskeyid",
        "secret_access_key",
        "secretaccesskey",
        "session_token",
        "sessiontoken",
        "aws_session_token",
        "credentials",
        "external_id",
        "externalid",
        "sts:externalid",
        "database_url",
        "database_owner_url",
        "dsn",
        "cron_secret",
        "webhook_secret",
        "polar_webhook_secret",
        "polar_access_token",
        "webhook-signature",
        "signature",
        "x-api-key",
        "key",
        "private_key",
        "client_secret",
        "enrolment_token",
        "csrf_token",
        "x-csrf-token",
        "__Host-cao_session",
    )
)

_PATTERNS = [
    # AWS access key ids: long-lived (AKIA) and temporary (ASIA) and friends.
    re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA|ANPA|AGPA)[A-Z0-9]{16}\b"),
    # Session tokens are long base64 blobs; nothing legitimate we log looks like one.
    re.compile(r"[A-Za-z0-9/+=]{100,}"),
    # Postgres URLs: drop the whole credential part.
    re.compile(r"postgres(?:ql)?(?:\+\w+)?://[^\s'\"]+"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"),
    re.compile(r"\bpolar_[a-z]{2,4}_[A-Za-z0-9]{8,}"),
    # Our API keys (see shared.auth): cao_ + 43 url-safe base64 characters.
    re.compile(r"\bcao_[A-Za-z0-9_-]{20,}"),
    # Browser sessions (the cookie) and invitation or recovery links (token in the fragment).
    re.compile(r"cao_session=[^;\s'\"]+"),
    re.compile(r"/(?:invite|recover)#[A-Za-z0-9_-]+"),
    # AWS secret access keys: 40 base64 characters standing alone.
    # (mixed case required, so a 40-hex commit SHA is left alone).
    re.compile(
        r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[a-z])"
        r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
    ),
]

_known_lock = threading.Lock()
_known: set[str] = set()


def register_secret(value: str) -> None:
    """Scrub this exact value wherever it appears from now on (configured secrets)."""
    if len(value) >= 8:
        with _known_lock:
            _known.add(value)


def _is_sensitive_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    norm = key.replace("_", "").replace("-", "").lower()
    return norm in SENSITIVE_KEYS


def scrub_text(text: str) -> str:
    """`text` with every known secret value and secret-looking pattern masked."""
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def scrub(value: Any, _depth: int = 0) -> Any:
    """A copy of `value` with sensitive keys masked and every string scrubbed, at any depth."""
    if _depth > 20:
        return MASK
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            k: (MASK if _is_sensitive_key(k) and v not in (None, "") else scrub(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v, _depth + 1) for v in value]
    return value
