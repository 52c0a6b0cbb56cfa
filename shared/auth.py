"""API keys: generation, hashing, and authentication of a request's bearer key.

A key is `cao_` + 256 random bits (url-safe base64). Only its SHA-256 is stored (a salt adds
nothing to a 256-bit random value) together with a short display prefix; the key itself is
shown once, at creation. Lookup goes through the SECURITY DEFINER function
`cao.authenticate_key`, since before authentication there is no tenant to scope by.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Literal

from shared.db import Connection, system_tx
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


@dataclass(frozen=True)
class Caller:
    """Who is calling: the agency, the key, and its role."""

    agency_id: uuid.UUID
    key_id: uuid.UUID
    role: Role

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"

    def require_admin(self) -> None:
        if self.role != "admin":
            raise ForbiddenError("this action needs an admin API key")


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


def authenticate_key(conn: Connection, token: str) -> Caller:
    """The caller behind a well-formed key (`bearer_key`); 401 when unknown or revoked."""
    with system_tx(conn):
        row = conn.execute(
            "SELECT agency_id, key_id, role FROM cao.authenticate_key(%s)", (hash_key(token),)
        ).fetchone()
    if row is None:
        raise UnauthorizedError("unknown or revoked API key")
    return Caller(agency_id=row[0], key_id=row[1], role=row[2])
