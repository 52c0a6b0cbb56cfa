"""Sign-in with a passkey, and the sessions it opens.

Sign-in uses discoverable credentials: `POST /api/session/options` hands out a challenge (stored
server side, 5 minutes, single use) and no list of credentials, so the user types nothing; the
assertion's credential id finds the passkey, its client data the challenge, which is consumed in
its own transaction before anything is verified (a replayed or failed assertion has used it up).
Every failure answers the same 401 (`SIGN_IN_FAILED`): an attacker learns nothing of which check
failed, nor whether a credential exists. Attempts are throttled in Postgres
(`cao.rate_limit_hit`) per client address (an IPv6 address by its /64) and per credential id:
429 with Retry-After. Failures against a known passkey, and its throttling, are audited in its
agency.

A session is a new 256-bit token at every sign-in (no fixation), in the `__Host-cao_session`
cookie; only its SHA-256 is stored. Idle timeout 12 hours, absolute lifetime 7 days, both
enforced by `cao.authenticate_session`. A user keeps at most `MAX_SESSIONS` sessions (the oldest
end first). Removing a user or the passkey that opened a session ends it (foreign keys).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared import auth
from shared.auth import Caller
from shared.db import Connection, system_tx, tenant_tx
from shared.errors import NotFoundError, RateLimitedError, UnauthorizedError
from shared.settings import Settings
from shared.store import agency, audit, people, rate_limits
from shared.store.agency import AgencyRow
from shared.store.people import SessionRow, UserRow

from . import relying_party
from .relying_party import CeremonyError

SESSION_IDLE = timedelta(hours=12)  # cao.authenticate_session applies both
SESSION_LIFETIME = timedelta(days=7)
MAX_SESSIONS = 20
SIGNIN_WINDOW_S = 600  # cao.rate_limit_hit: 'signin' and 'signin-credential'
SIGNIN_LIMIT = 30  # requests (options and assertions) per address block per window
SIGNIN_CREDENTIAL_LIMIT = 10  # assertions per credential per window
# (a throttled credential's burst is audited once per window: 'signin-alert', 1 per 600 s)
SIGN_IN_FAILED = "sign-in failed: use a passkey registered for this site, or ask an admin"


def _bucket(kind: str, value: bytes) -> str:
    return f"{kind}:{hashlib.sha256(value).hexdigest()[:32]}"


def _throttle(conn: Connection, bucket: str) -> None:
    with system_tx(conn):
        wait = rate_limits.hit(conn, bucket)
    if wait:
        raise RateLimitedError(
            f"too many sign-in attempts; retry in {wait} seconds",
            retry_after=wait,
            code="sign_in_throttled",
        )


def throttle_address(conn: Connection, address_block: str) -> None:
    """Count a sign-in request from an address block (onboard.service.address_block)."""
    _throttle(conn, _bucket("signin", address_block.encode("utf-8", "replace")))


def options(conn: Connection, settings: Settings, address_block: str) -> dict[str, Any]:
    throttle_address(conn, address_block)
    challenge = secrets.token_bytes(relying_party.CHALLENGE_BYTES)
    with system_tx(conn):
        people.put_challenge(conn, challenge, "authentication", None)
    return relying_party.authentication_options(settings, challenge)


def sign_in(
    conn: Connection,
    settings: Settings,
    credential: dict[str, Any],
    *,
    address_block: str,
    now: datetime,
) -> str:
    """A new session's token for a verified assertion; the generic 401 otherwise."""
    throttle_address(conn, address_block)
    try:
        parsed = relying_party.authentication_credential(credential)
        challenge = relying_party.client_challenge(parsed.response.client_data_json)
    except CeremonyError as exc:
        raise UnauthorizedError(SIGN_IN_FAILED, code="sign_in_failed") from exc
    credential_id = relying_party.raw_id(parsed)
    with system_tx(conn):
        found = people.find_passkey(conn, credential_id)
    try:
        _throttle(conn, _bucket("signin-credential", credential_id))
    except RateLimitedError:
        if found is not None:
            _audit_burst(conn, found[0], found[1], credential_id)
        raise
    with system_tx(conn):
        taken = people.take_challenge(conn, challenge, "authentication")
    if found is None or taken is None:
        raise UnauthorizedError(SIGN_IN_FAILED, code="sign_in_failed")
    agency_id, user_id, passkey_id = found
    with tenant_tx(conn, agency_id):
        stored = people.stored_credential(conn, agency_id, passkey_id)
        failure = stored is None
        if stored is not None:
            try:
                count = relying_party.verify_authentication(
                    settings,
                    parsed,
                    challenge=challenge,
                    user_id=user_id,
                    public_key=stored.public_key,
                    sign_count=stored.sign_count,
                )
            except CeremonyError as exc:
                failure = True
                reason = type(exc.__cause__).__name__ if exc.__cause__ else "ceremony"
                audit.record(
                    conn,
                    agency_id,
                    "anonymous",
                    "session.sign_in_failed",
                    f"user:{user_id}",
                    {"passkey_id": str(passkey_id), "reason": reason},
                )
        if not failure:
            people.record_use(conn, agency_id, passkey_id, count, now)
            token = open_session(conn, agency_id, user_id, passkey_id, now)
    if failure:
        raise UnauthorizedError(SIGN_IN_FAILED, code="sign_in_failed")
    return token


def _audit_burst(
    conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID, credential_id: bytes
) -> None:
    """Audit a burst of failed sign-ins once per window (the 'signin-alert' kind allows one
    per 10 minutes per credential): an attacker hammering a passkey cannot flood the log."""
    with system_tx(conn):
        again = rate_limits.hit(conn, _bucket("signin-alert", credential_id))
    if again:
        return
    with tenant_tx(conn, agency_id):
        audit.record(conn, agency_id, "anonymous", "session.sign_in_throttled", f"user:{user_id}")


def open_session(
    conn: Connection,
    agency_id: uuid.UUID,
    user_id: uuid.UUID,
    passkey_id: uuid.UUID,
    now: datetime,
) -> str:
    """A new session for the user (inside their agency's transaction): its token, once."""
    token = auth.generate_token()
    people.prune_sessions(conn, agency_id, user_id, now, MAX_SESSIONS - 1)
    session_id = people.insert_session(
        conn,
        agency_id,
        user_id,
        passkey_id,
        token_hash=auth.hash_token(token),
        now=now,
        lifetime=SESSION_LIFETIME,
    )
    people.record_sign_in(conn, agency_id, user_id, now)
    audit.record(
        conn,
        agency_id,
        f"user:{user_id}",
        "session.signed_in",
        str(session_id),
        {"passkey_id": str(passkey_id)},
    )
    return token


# ---- the signed-in user's sessions -----------------------------------------------------------


@dataclass(frozen=True)
class Current:
    user: UserRow
    agency: AgencyRow
    session_id: uuid.UUID


def current(conn: Connection, caller: Caller) -> Current:
    user_id = caller.require_user()
    assert caller.session_id is not None
    with tenant_tx(conn, caller.agency_id):
        user = people.get_user(conn, caller.agency_id, user_id)
        row = agency.get(conn, caller.agency_id)
    if user is None or row is None:
        raise UnauthorizedError("your session has ended: sign in again")
    return Current(user, row, caller.session_id)


def list_sessions(conn: Connection, caller: Caller, now: datetime) -> list[SessionRow]:
    user_id = caller.require_user()
    with tenant_tx(conn, caller.agency_id):
        return people.list_sessions(conn, caller.agency_id, user_id, now, SESSION_IDLE)


def end_session(conn: Connection, caller: Caller, session_id: uuid.UUID) -> None:
    user_id = caller.require_user()
    with tenant_tx(conn, caller.agency_id):
        if not people.delete_session(conn, caller.agency_id, user_id, session_id):
            raise NotFoundError("no such session of yours")
        action = "session.signed_out" if session_id == caller.session_id else "session.revoked"
        audit.record(conn, caller.agency_id, caller.actor, action, str(session_id))


def end_all_sessions(conn: Connection, caller: Caller) -> int:
    """Sign out everywhere: every session of the user, this one included."""
    user_id = caller.require_user()
    with tenant_tx(conn, caller.agency_id):
        ended = people.delete_sessions(conn, caller.agency_id, user_id)
        audit.record(
            conn,
            caller.agency_id,
            caller.actor,
            "session.signed_out_everywhere",
            None,
            {"ended": ended},
        )
    return ended
