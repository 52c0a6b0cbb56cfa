"""Enrolment: a single-use, 15-minute ceremony that can do one thing, register one passkey for
one user, after which that user is signed in (`service.register`). Sign-up (functions.onboard)
starts one for the first admin; accepting an invitation or a recovery link starts one. Its token
(256 bits) is returned once; only its SHA-256 is stored.

This module loads no WebAuthn code: sign-up imports it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared import auth
from shared.db import Connection, is_unique_violation
from shared.errors import ConflictError
from shared.store import audit, people
from shared.store.people import UserRow

ENROLMENT_LIFETIME = timedelta(minutes=15)
MAX_USERS = 500


@dataclass(frozen=True, repr=False)
class Enrolment:
    """An enrolment's token (returned once) and its expiry."""

    token: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"Enrolment(expires_at={self.expires_at})"


def start_enrolment(
    conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> Enrolment:
    """A new enrolment for a user (inside the caller's tenant transaction)."""
    token = auth.generate_token()
    expires_at = people.insert_enrolment(
        conn,
        agency_id,
        user_id,
        token_hash=auth.hash_token(token),
        now=now,
        lifetime=ENROLMENT_LIFETIME,
    )
    return Enrolment(token, expires_at)


def add_first_admin(
    conn: Connection, agency_id: uuid.UUID, *, email: str, name: str, now: datetime
) -> Enrolment:
    """Sign-up's first admin and their enrolment, in sign-up's transaction (its tenant set):
    409 when the email is already someone's, and then the agency is not created either."""
    user = insert_user(conn, agency_id, email=email, name=name, role="admin", now=now)
    audit.record(conn, agency_id, "signup", "user.created", str(user.id), {"role": "admin"})
    return start_enrolment(conn, agency_id, user.id, now)


def insert_user(
    conn: Connection, agency_id: uuid.UUID, *, email: str, name: str, role: str, now: datetime
) -> UserRow:
    """A new user, inside a savepoint: an email that is anyone's already is a 409."""
    try:
        with conn.transaction():
            return people.insert_user(conn, agency_id, email=email, name=name, role=role, now=now)
    except Exception as exc:
        if is_unique_violation(exc):
            raise ConflictError(
                "this email already belongs to a CloudAgencyOps user; use another address",
                code="email_taken",
            ) from exc
        raise
