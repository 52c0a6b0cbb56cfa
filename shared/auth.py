"""Who is calling: API keys (scripts) and browser sessions (people), and their authentication.

A key is `cao_` + 256 random bits (url-safe base64). Only its SHA-256 is stored (a salt adds
nothing to a 256-bit random value) together with a short display prefix; the key itself is
shown once, at creation. Lookup goes through the SECURITY DEFINER function
`cao.authenticate_key`, since before authentication there is no tenant to scope by.

A browser session is an opaque 256-bit token in the `__Host-cao_session` cookie; only its
SHA-256 is stored, and `cao.authenticate_session` enforces its idle (12 h) and absolute (7 d)
lifetimes. Its CSRF token is derived from it (a hash under another label), so nothing more is
stored and a page that cannot read the HttpOnly cookie learns it only from `GET /api/session`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, LiteralString

from shared.db import Connection, begin_carried, system_tx
from shared.errors import ForbiddenError, UnauthorizedError

KEY_PREFIX = "cao_"
_KEY_LEN = len(KEY_PREFIX) + 43
Role = Literal["admin", "member"]


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: `plaintext` is returned to the caller once and never stored."""

    plaintext: str
    key_hash: bytes
    display_prefix: str


SESSION_COOKIE = "__Host-cao_session"
_SESSION_TOKEN_LEN = 43  # token_urlsafe(32)
_TOKEN_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the agency, and either an API key or a person (a user signed in with a
    session), with the role of that key or user."""

    agency_id: uuid.UUID
    key_id: uuid.UUID | None
    role: Role
    user_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None

    @property
    def actor(self) -> str:
        return f"user:{self.user_id}" if self.user_id is not None else f"key:{self.key_id}"

    def require_admin(self) -> None:
        if self.role != "admin":
            raise ForbiddenError("this action needs an admin (an admin API key or user)")

    def require_user(self) -> uuid.UUID:
        """The signed-in user: these actions are a person's own (their passkeys, sessions)."""
        if self.user_id is None:
            raise ForbiddenError("this action is a signed-in person's own: sign in with a passkey")
        return self.user_id


def generate_token() -> str:
    """A 256-bit random token (sessions, enrolments, invitations, recovery links)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def csrf_token(session_token: str) -> str:
    """The session's CSRF token: derived from the session token under its own label."""
    digest = hashlib.sha256(b"cao-csrf\x00" + session_token.encode()).hexdigest()
    return digest


def csrf_matches(session_token: str, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(
        csrf_token(session_token).encode(), submitted.encode("utf-8", "replace")
    )


def session_token(cookie: str | None) -> str | None:
    """The session token of a cookie value when it has the shape of one (no database)."""
    if cookie is None or len(cookie) != _SESSION_TOKEN_LEN or not set(cookie) <= _TOKEN_ALPHABET:
        return None
    return cookie


def generate_key() -> NewKey:
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    return NewKey(plaintext, hash_key(plaintext), plaintext[: len(KEY_PREFIX) + 6])


def hash_key(plaintext: str) -> bytes:
    return hashlib.sha256(plaintext.encode()).digest()


def parse_bearer(authorization: str | None) -> str:
    """The key from an `Authorization: Bearer <key>` header; 401 on anything else."""
    if not authorization:
        raise UnauthorizedError("missing Authorization header: send 'Bearer <API key>'")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError("the Authorization header must be 'Bearer <API key>'")
    return token


def bearer_key(authorization: str | None) -> str:
    """The API key in an `Authorization` header, checked for shape only (no database): 401 when
    the header is missing or malformed, or the token cannot be one of our keys."""
    token = parse_bearer(authorization)
    if not token.startswith(KEY_PREFIX) or len(token) != _KEY_LEN:
        raise UnauthorizedError("unknown or revoked API key")
    return token


def authenticate(conn: Connection, authorization: str | None) -> Caller:
    """The caller behind a bearer API key; 401 when it is malformed, unknown or revoked."""
    return authenticate_key(conn, bearer_key(authorization))


def _lookup(
    conn: Connection, query: LiteralString, params: tuple[Any, ...], carry: bool
) -> tuple[Any, ...] | None:
    if carry:
        # A read: this transaction goes on into the request's query (shared.db.carry).
        return begin_carried(conn, query, params)
    with system_tx(conn):
        return conn.execute(query, params).fetchone()


def authenticate_key(conn: Connection, token: str, *, carry: bool = False) -> Caller:
    """The caller behind a well-formed key (`bearer_key`); 401 when unknown or revoked. With
    `carry`, the transaction stays open, scoped to the caller's agency, for the request's first
    tenant transaction (one transaction per read request instead of two)."""
    row = _lookup(
        conn,
        "SELECT agency_id, key_id, role FROM cao.authenticate_key(%s)",
        (hash_key(token),),
        carry,
    )
    if row is None:
        raise UnauthorizedError("unknown or revoked API key")
    return Caller(agency_id=row[0], key_id=row[1], role=row[2])


def authenticate_session(
    conn: Connection, token: str, now: datetime, *, carry: bool = False
) -> Caller:
    """The person behind a live session token; 401 when unknown, signed out or expired (`carry`
    as for `authenticate_key`)."""
    row = _lookup(
        conn,
        "SELECT agency_id, user_id, session_id, role FROM cao.authenticate_session(%s, %s)",
        (hash_token(token), now),
        carry,
    )
    if row is None:
        raise UnauthorizedError("your session has ended: sign in again")
    return Caller(agency_id=row[0], key_id=None, role=row[3], user_id=row[1], session_id=row[2])
