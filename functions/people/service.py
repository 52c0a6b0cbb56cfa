"""People's use cases: enrolment and passkey registration, the user's own passkeys, and the
agency's users (admins). Sign-in and sessions are in `sessions`, invitations and recovery links
in `invitations`; both start here for the enrolment they end in.

An enrolment (`enrolment.py`) is the single-use, 15-minute ceremony that registers a user's first
passkey (or a new one after recovery); the registration below ends it and signs the user in.

Registration: the options carry a fresh challenge, stored server side for 5 minutes and bound to
the user; the credential's client data names it, and it is consumed (in its own transaction,
so a failed verification uses it up too) before py_webauthn verifies the credential
(`relying_party`).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import auth
from shared.auth import Caller
from shared.db import Connection, is_unique_violation, system_tx, tenant_tx
from shared.errors import (
    ConflictError,
    NotFoundError,
    UnauthorizedError,
    UnprocessableError,
)
from shared.settings import Settings
from shared.store import audit, people
from shared.store.people import PasskeyRow, UserRow

from . import relying_party, sessions
from .enrolment import MAX_USERS
from .relying_party import CeremonyError

MAX_PASSKEYS_PER_USER = 10


@dataclass(frozen=True, repr=False)
class Registered:
    passkey: PasskeyRow
    session_token: str | None  # set when an enrolment signed the user in

    def __repr__(self) -> str:
        return f"Registered(passkey={self.passkey.id})"


# ---- registration ----------------------------------------------------------------------------


def _enrolment(
    conn: Connection, token: str, now: datetime
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    with system_tx(conn):
        found = people.find_enrolment(conn, auth.hash_token(token), now)
    if found is None:
        raise UnauthorizedError(
            "this enrolment is unknown, used or expired (they last 15 minutes): ask for a new link",
            code="enrolment_invalid",
        )
    return found


def _registrant(
    conn: Connection, caller: Caller | None, token: str | None, now: datetime
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]:
    """(agency, user, enrolment or None) of a registration: the enrolment's, else the signed-in
    user's own."""
    if token is not None:
        enrolment_id, agency_id, user_id = _enrolment(conn, token, now)
        return agency_id, user_id, enrolment_id
    if caller is None:
        raise UnauthorizedError(
            "send an enrolment_token, or sign in to add a passkey to your account"
        )
    return caller.agency_id, caller.require_user(), None


def registration_options(
    conn: Connection,
    settings: Settings,
    *,
    caller: Caller | None,
    enrolment_token: str | None,
    now: datetime,
) -> dict[str, Any]:
    agency_id, user_id, _ = _registrant(conn, caller, enrolment_token, now)
    challenge = secrets.token_bytes(relying_party.CHALLENGE_BYTES)
    with tenant_tx(conn, agency_id):
        user = people.get_user(conn, agency_id, user_id)
        if user is None:
            raise NotFoundError("no such user")
        existing = people.credential_ids(conn, agency_id, user_id)
        if len(existing) >= MAX_PASSKEYS_PER_USER:
            raise ConflictError(
                f"a user holds at most {MAX_PASSKEYS_PER_USER} passkeys: remove one first",
                code="too_many_passkeys",
            )
        people.put_challenge(conn, challenge, "registration", user_id)
    return relying_party.registration_options(
        settings,
        user_id=user.id,
        email=user.email,
        name=user.name,
        challenge=challenge,
        exclude=existing,
    )


def register(
    conn: Connection,
    settings: Settings,
    *,
    caller: Caller | None,
    enrolment_token: str | None,
    credential: dict[str, Any],
    name: str,
    now: datetime,
) -> Registered:
    """Verify a new passkey and store it; after an enrolment, sign its user in."""
    agency_id, user_id, enrolment_id = _registrant(conn, caller, enrolment_token, now)
    try:
        parsed = relying_party.registration_credential(credential)
        challenge = relying_party.client_challenge(parsed.response.client_data_json)
    except CeremonyError as exc:
        raise UnprocessableError(
            "the credential is not a WebAuthn registration response (RegistrationResponseJSON)",
            code="passkey_refused",
        ) from exc
    with system_tx(conn):
        taken = people.take_challenge(conn, challenge, "registration")
    if taken != (agency_id, user_id):
        raise UnprocessableError(
            "the registration's challenge is unknown, used or expired: ask for new options",
            code="challenge_invalid",
        )
    try:
        new = relying_party.verify_registration(settings, parsed, challenge)
    except CeremonyError as exc:
        raise UnprocessableError(
            "the passkey did not verify for this site (origin, relying party, user "
            "verification): try again from the console",
            code="passkey_refused",
        ) from exc
    session_token = None
    with tenant_tx(conn, agency_id):
        if enrolment_id is not None and not people.use_enrolment(
            conn, agency_id, enrolment_id, now
        ):
            raise UnauthorizedError(
                "this enrolment was used or has expired: ask for a new link",
                code="enrolment_invalid",
            )
        if people.lock_user_passkeys(conn, agency_id, user_id) >= MAX_PASSKEYS_PER_USER:
            raise ConflictError(
                f"a user holds at most {MAX_PASSKEYS_PER_USER} passkeys: remove one first",
                code="too_many_passkeys",
            )
        try:
            with conn.transaction():
                passkey = people.insert_passkey(
                    conn,
                    agency_id,
                    user_id,
                    credential_id=new.credential_id,
                    public_key=new.public_key,
                    sign_count=new.sign_count,
                    transports=new.transports,
                    name=name,
                    now=now,
                )
        except Exception as exc:
            if is_unique_violation(exc):
                raise ConflictError(
                    "this passkey is registered already", code="passkey_exists"
                ) from exc
            raise
        actor = f"user:{user_id}"
        audit.record(conn, agency_id, actor, "passkey.added", str(passkey.id), {"name": name})
        if enrolment_id is not None:
            session_token = sessions.open_session(conn, agency_id, user_id, passkey.id, now)
    return Registered(passkey, session_token)


# ---- the user's own passkeys -----------------------------------------------------------------


def list_passkeys(conn: Connection, caller: Caller) -> list[PasskeyRow]:
    user_id = caller.require_user()
    with tenant_tx(conn, caller.agency_id):
        return people.list_passkeys(conn, caller.agency_id, user_id)


def rename_passkey(
    conn: Connection, caller: Caller, passkey_id: uuid.UUID, name: str
) -> PasskeyRow:
    user_id = caller.require_user()
    with tenant_tx(conn, caller.agency_id):
        row = people.rename_passkey(conn, caller.agency_id, user_id, passkey_id, name)
        if row is None:
            raise NotFoundError("no such passkey of yours")
        audit.record(
            conn, caller.agency_id, caller.actor, "passkey.renamed", str(passkey_id), {"name": name}
        )
    return row


def remove_passkey(conn: Connection, caller: Caller, passkey_id: uuid.UUID) -> None:
    """Remove one of one's passkeys (not the last): the sessions it opened end with it."""
    user_id = caller.require_user()
    with tenant_tx(conn, caller.agency_id):
        count = people.lock_user_passkeys(conn, caller.agency_id, user_id)
        if not people.delete_passkey(conn, caller.agency_id, user_id, passkey_id):
            raise NotFoundError("no such passkey of yours")
        if count <= 1:
            raise ConflictError(
                "this is your last passkey: add another before removing it",
                code="last_passkey",
            )
        audit.record(conn, caller.agency_id, caller.actor, "passkey.removed", str(passkey_id))


# ---- the agency's users (admins) -------------------------------------------------------------


def list_users(conn: Connection, caller: Caller) -> list[UserRow]:
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        return people.list_users(conn, caller.agency_id, MAX_USERS)


def _last_admin(conn: Connection, agency_id: uuid.UUID, user: UserRow) -> bool:
    admins = people.lock_admins(conn, agency_id)
    return user.role == "admin" and admins == [user.id]


def change_role(conn: Connection, caller: Caller, user_id: uuid.UUID, role: str) -> UserRow:
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        user = people.get_user(conn, caller.agency_id, user_id)
        if user is None:
            raise NotFoundError("no such user")
        if role != "admin" and _last_admin(conn, caller.agency_id, user):
            raise ConflictError(
                "this is the agency's last admin: make someone else admin first",
                code="last_admin",
            )
        people.set_role(conn, caller.agency_id, user_id, role)
        audit.record(
            conn,
            caller.agency_id,
            caller.actor,
            "user.role_changed",
            str(user_id),
            {"from": user.role, "to": role},
        )
        changed = people.get_user(conn, caller.agency_id, user_id)
    assert changed is not None
    return changed


def remove_user(conn: Connection, caller: Caller, user_id: uuid.UUID) -> None:
    """Remove a user (never the last admin): their passkeys and sessions go with them."""
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        user = people.get_user(conn, caller.agency_id, user_id)
        if user is None:
            raise NotFoundError("no such user")
        if _last_admin(conn, caller.agency_id, user):
            raise ConflictError(
                "this is the agency's last admin: make someone else admin first",
                code="last_admin",
            )
        people.delete_user(conn, caller.agency_id, user_id)
        audit.record(conn, caller.agency_id, caller.actor, "user.removed", str(user_id))
