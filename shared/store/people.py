"""People: the agency's users, their passkeys, browser sessions, invitations and recovery links,
enrolments, and the WebAuthn challenges.

Everything here runs inside `tenant_tx(conn, agency_id)` and also filters on the agency id,
except the lookups that happen before there is a tenant (a token's or credential's agency),
which go through the SECURITY DEFINER functions `cao.find_enrolment`, `cao.find_invitation`,
`cao.find_passkey`, `cao.put_challenge` and `cao.take_challenge` (inside `system_tx`, or a
tenant transaction for registration challenges). Tokens arrive here as SHA-256 hashes only.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from psycopg.rows import kwargs_row

from shared.db import Connection
from shared.kit.schemas import Row


class UserRow(Row):
    id: uuid.UUID
    email: str
    name: str
    role: str
    created_at: datetime
    last_sign_in_at: datetime | None


class PasskeyRow(Row):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    transports: list[str]
    created_at: datetime
    last_used_at: datetime | None


class StoredCredential(Row):
    """What a sign-in verifies against: the credential id, public key and sign count."""

    id: uuid.UUID
    user_id: uuid.UUID
    credential_id: bytes
    public_key: bytes
    sign_count: int


class SessionRow(Row):
    id: uuid.UUID
    passkey_id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class InvitationRow(Row):
    id: uuid.UUID
    kind: str
    email: str
    role: str
    user_id: uuid.UUID | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None


_USER = "id, email, name, role, created_at, last_sign_in_at"
_PASSKEY = "id, user_id, name, transports, created_at, last_used_at"
_SESSION = "id, passkey_id, created_at, last_seen_at, expires_at"
_INVITATION = (
    "id, kind, email, role, user_id, created_by, created_at, expires_at, accepted_at, revoked_at"
)


# ---- users -----------------------------------------------------------------------------------


def insert_user(
    conn: Connection, agency_id: uuid.UUID, *, email: str, name: str, role: str, now: datetime
) -> UserRow:
    """A new user (a unique violation when the email is anyone's already, in any agency)."""
    with conn.cursor(row_factory=kwargs_row(UserRow.model_construct)) as cur:
        row = cur.execute(
            f"INSERT INTO cao.users (agency_id, email, name, role, created_at)"  # noqa: S608
            f" VALUES (%s, %s, %s, %s, %s) RETURNING {_USER}",
            (agency_id, email, name, role, now),
        ).fetchone()
    assert row is not None
    return row


def get_user(
    conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID, *, lock: bool = False
) -> UserRow | None:
    with conn.cursor(row_factory=kwargs_row(UserRow.model_construct)) as cur:
        return cur.execute(
            f"SELECT {_USER} FROM cao.users WHERE agency_id = %s AND id = %s"  # noqa: S608
            + (" FOR UPDATE" if lock else ""),
            (agency_id, user_id),
        ).fetchone()


def list_users(conn: Connection, agency_id: uuid.UUID, limit: int) -> list[UserRow]:
    with conn.cursor(row_factory=kwargs_row(UserRow.model_construct)) as cur:
        return cur.execute(
            f"SELECT {_USER} FROM cao.users WHERE agency_id = %s"  # noqa: S608
            " ORDER BY created_at, id LIMIT %s",
            (agency_id, limit),
        ).fetchall()


def email_taken(conn: Connection, agency_id: uuid.UUID, email: str) -> bool:
    """Whether a user of this agency has this email (case-insensitive)."""
    row = conn.execute(
        "SELECT 1 FROM cao.users WHERE agency_id = %s AND lower(email) = lower(%s)",
        (agency_id, email),
    ).fetchone()
    return row is not None


def lock_admins(conn: Connection, agency_id: uuid.UUID) -> list[uuid.UUID]:
    """The agency's admins, locked until the transaction ends: two concurrent demotions or
    removals serialise here, so the last admin is never lost."""
    rows = conn.execute(
        "SELECT id FROM cao.users WHERE agency_id = %s AND role = 'admin' ORDER BY id FOR UPDATE",
        (agency_id,),
    ).fetchall()
    return [r[0] for r in rows]


def set_role(conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
    conn.execute(
        "UPDATE cao.users SET role = %s WHERE agency_id = %s AND id = %s",
        (role, agency_id, user_id),
    )


def delete_user(conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    """Remove a user: their passkeys, sessions and enrolments go with them (cascade)."""
    cur = conn.execute(
        "DELETE FROM cao.users WHERE agency_id = %s AND id = %s", (agency_id, user_id)
    )
    return cur.rowcount == 1


def record_sign_in(
    conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> None:
    conn.execute(
        "UPDATE cao.users SET last_sign_in_at = %s WHERE agency_id = %s AND id = %s",
        (now, agency_id, user_id),
    )


# ---- passkeys --------------------------------------------------------------------------------


def insert_passkey(
    conn: Connection,
    agency_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    transports: list[str],
    name: str,
    now: datetime,
) -> PasskeyRow:
    with conn.cursor(row_factory=kwargs_row(PasskeyRow.model_construct)) as cur:
        row = cur.execute(
            "INSERT INTO cao.passkeys (agency_id, user_id, credential_id, public_key, sign_count,"  # noqa: S608
            f" transports, name, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            f" RETURNING {_PASSKEY}",
            (agency_id, user_id, credential_id, public_key, sign_count, transports, name, now),
        ).fetchone()
    assert row is not None
    return row


def list_passkeys(conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID) -> list[PasskeyRow]:
    with conn.cursor(row_factory=kwargs_row(PasskeyRow.model_construct)) as cur:
        return cur.execute(
            f"SELECT {_PASSKEY} FROM cao.passkeys"  # noqa: S608
            " WHERE agency_id = %s AND user_id = %s ORDER BY created_at, id",
            (agency_id, user_id),
        ).fetchall()


def credential_ids(conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID) -> list[bytes]:
    rows = conn.execute(
        "SELECT credential_id FROM cao.passkeys WHERE agency_id = %s AND user_id = %s",
        (agency_id, user_id),
    ).fetchall()
    return [bytes(r[0]) for r in rows]


def lock_user_passkeys(conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """Lock the user's passkeys (so two removals cannot both leave zero); how many there are."""
    rows = conn.execute(
        "SELECT id FROM cao.passkeys WHERE agency_id = %s AND user_id = %s FOR UPDATE",
        (agency_id, user_id),
    ).fetchall()
    return len(rows)


def rename_passkey(
    conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID, passkey_id: uuid.UUID, name: str
) -> PasskeyRow | None:
    with conn.cursor(row_factory=kwargs_row(PasskeyRow.model_construct)) as cur:
        return cur.execute(
            "UPDATE cao.passkeys SET name = %s"  # noqa: S608
            " WHERE agency_id = %s AND user_id = %s AND id = %s"
            f" RETURNING {_PASSKEY}",
            (name, agency_id, user_id, passkey_id),
        ).fetchone()


def delete_passkey(
    conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID, passkey_id: uuid.UUID
) -> bool:
    """Remove a passkey: the sessions it opened end with it (cascade)."""
    cur = conn.execute(
        "DELETE FROM cao.passkeys WHERE agency_id = %s AND user_id = %s AND id = %s",
        (agency_id, user_id, passkey_id),
    )
    return cur.rowcount == 1


def stored_credential(
    conn: Connection, agency_id: uuid.UUID, passkey_id: uuid.UUID
) -> StoredCredential | None:
    row = conn.execute(
        "SELECT id, user_id, credential_id, public_key, sign_count FROM cao.passkeys"
        " WHERE agency_id = %s AND id = %s FOR UPDATE",
        (agency_id, passkey_id),
    ).fetchone()
    if row is None:
        return None
    return StoredCredential.from_values(row[0], row[1], bytes(row[2]), bytes(row[3]), row[4])


def record_use(
    conn: Connection, agency_id: uuid.UUID, passkey_id: uuid.UUID, sign_count: int, now: datetime
) -> None:
    conn.execute(
        "UPDATE cao.passkeys SET sign_count = %s, last_used_at = %s"
        " WHERE agency_id = %s AND id = %s",
        (sign_count, now, agency_id, passkey_id),
    )


# ---- sessions --------------------------------------------------------------------------------


def insert_session(
    conn: Connection,
    agency_id: uuid.UUID,
    user_id: uuid.UUID,
    passkey_id: uuid.UUID,
    *,
    token_hash: bytes,
    now: datetime,
    lifetime: timedelta,
) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO cao.sessions (agency_id, user_id, passkey_id, token_hash, created_at,"
        " last_seen_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (agency_id, user_id, passkey_id, token_hash, now, now, now + lifetime),
    ).fetchone()
    assert row is not None
    return row[0]


def list_sessions(
    conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID, now: datetime, idle: timedelta
) -> list[SessionRow]:
    """The user's live sessions, newest first (at most 100: older ones are ended at sign-in)."""
    with conn.cursor(row_factory=kwargs_row(SessionRow.model_construct)) as cur:
        return cur.execute(
            f"SELECT {_SESSION} FROM cao.sessions"  # noqa: S608
            " WHERE agency_id = %s AND user_id = %s AND expires_at > %s AND last_seen_at > %s"
            " ORDER BY created_at DESC, id LIMIT 100",
            (agency_id, user_id, now, now - idle),
        ).fetchall()


def delete_session(
    conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID, session_id: uuid.UUID
) -> bool:
    cur = conn.execute(
        "DELETE FROM cao.sessions WHERE agency_id = %s AND user_id = %s AND id = %s",
        (agency_id, user_id, session_id),
    )
    return cur.rowcount == 1


def delete_sessions(conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID) -> int:
    cur = conn.execute(
        "DELETE FROM cao.sessions WHERE agency_id = %s AND user_id = %s", (agency_id, user_id)
    )
    return cur.rowcount


def prune_sessions(
    conn: Connection, agency_id: uuid.UUID, user_id: uuid.UUID, now: datetime, keep: int
) -> None:
    """Delete the user's expired sessions and all but the newest `keep` live ones."""
    conn.execute(
        "DELETE FROM cao.sessions WHERE agency_id = %s AND user_id = %s AND (expires_at <= %s"
        " OR id NOT IN (SELECT id FROM cao.sessions WHERE agency_id = %s AND user_id = %s"
        " ORDER BY created_at DESC, id LIMIT %s))",
        (agency_id, user_id, now, agency_id, user_id, keep),
    )


# ---- invitations and recovery links ----------------------------------------------------------


def insert_invitation(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    kind: str,
    email: str,
    role: str,
    user_id: uuid.UUID | None,
    token_hash: bytes,
    created_by: str,
    now: datetime,
    lifetime: timedelta,
) -> InvitationRow:
    with conn.cursor(row_factory=kwargs_row(InvitationRow.model_construct)) as cur:
        row = cur.execute(
            "INSERT INTO cao.invitations (agency_id, kind, email, role, user_id, token_hash,"  # noqa: S608
            " created_by, created_at, expires_at)"
            f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_INVITATION}",
            (agency_id, kind, email, role, user_id, token_hash, created_by, now, now + lifetime),
        ).fetchone()
    assert row is not None
    return row


def list_invitations(conn: Connection, agency_id: uuid.UUID, limit: int) -> list[InvitationRow]:
    with conn.cursor(row_factory=kwargs_row(InvitationRow.model_construct)) as cur:
        return cur.execute(
            f"SELECT {_INVITATION} FROM cao.invitations WHERE agency_id = %s"  # noqa: S608
            " ORDER BY created_at DESC, id LIMIT %s",
            (agency_id, limit),
        ).fetchall()


def count_open_invitations(conn: Connection, agency_id: uuid.UUID, now: datetime) -> int:
    row = conn.execute(
        "SELECT count(*) FROM cao.invitations WHERE agency_id = %s AND accepted_at IS NULL"
        " AND revoked_at IS NULL AND expires_at > %s",
        (agency_id, now),
    ).fetchone()
    return int(row[0]) if row else 0


def get_invitation(
    conn: Connection, agency_id: uuid.UUID, invitation_id: uuid.UUID, *, lock: bool = False
) -> InvitationRow | None:
    with conn.cursor(row_factory=kwargs_row(InvitationRow.model_construct)) as cur:
        return cur.execute(
            f"SELECT {_INVITATION} FROM cao.invitations"  # noqa: S608
            " WHERE agency_id = %s AND id = %s" + (" FOR UPDATE" if lock else ""),
            (agency_id, invitation_id),
        ).fetchone()


def revoke_invitation(
    conn: Connection, agency_id: uuid.UUID, invitation_id: uuid.UUID, now: datetime
) -> None:
    conn.execute(
        "UPDATE cao.invitations SET revoked_at = %s"
        " WHERE agency_id = %s AND id = %s AND revoked_at IS NULL AND accepted_at IS NULL",
        (now, agency_id, invitation_id),
    )


def mark_accepted(
    conn: Connection, agency_id: uuid.UUID, invitation_id: uuid.UUID, now: datetime
) -> None:
    conn.execute(
        "UPDATE cao.invitations SET accepted_at = %s WHERE agency_id = %s AND id = %s",
        (now, agency_id, invitation_id),
    )


def find_invitation(conn: Connection, token_hash: bytes) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(invitation id, agency id) of a link's token (system transaction)."""
    row = conn.execute(
        "SELECT invitation_id, agency_id FROM cao.find_invitation(%s)", (token_hash,)
    ).fetchone()
    return (row[0], row[1]) if row else None


# ---- enrolments ------------------------------------------------------------------------------


def insert_enrolment(
    conn: Connection,
    agency_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    token_hash: bytes,
    now: datetime,
    lifetime: timedelta,
) -> datetime:
    """A new enrolment for the user; its expiry."""
    row = conn.execute(
        "INSERT INTO cao.enrolments (agency_id, user_id, token_hash, created_at, expires_at)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING expires_at",
        (agency_id, user_id, token_hash, now, now + lifetime),
    ).fetchone()
    assert row is not None
    return row[0]


def find_enrolment(
    conn: Connection, token_hash: bytes, now: datetime
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID] | None:
    """(enrolment id, agency id, user id) of an open enrolment (system transaction)."""
    row = conn.execute(
        "SELECT enrolment_id, agency_id, user_id FROM cao.find_enrolment(%s, %s)",
        (token_hash, now),
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def use_enrolment(
    conn: Connection, agency_id: uuid.UUID, enrolment_id: uuid.UUID, now: datetime
) -> bool:
    """Close an open enrolment; False when it was used (or expired) meanwhile."""
    cur = conn.execute(
        "UPDATE cao.enrolments SET used_at = %s WHERE agency_id = %s AND id = %s"
        " AND used_at IS NULL AND expires_at > %s",
        (now, agency_id, enrolment_id, now),
    )
    return cur.rowcount == 1


# ---- passkeys by credential id, challenges (cross-tenant) ------------------------------------


def find_passkey(
    conn: Connection, credential_id: bytes
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID] | None:
    """(agency id, user id, passkey id) of a credential id (system transaction)."""
    row = conn.execute(
        "SELECT agency_id, user_id, passkey_id FROM cao.find_passkey(%s)", (credential_id,)
    ).fetchone()
    return (row[0], row[1], row[2]) if row else None


def put_challenge(
    conn: Connection, challenge: bytes, purpose: str, user_id: uuid.UUID | None
) -> None:
    """Store a challenge (5 minutes; a registration's in its agency's transaction)."""
    conn.execute("SELECT cao.put_challenge(%s, %s, %s)", (challenge, purpose, user_id))


def take_challenge(
    conn: Connection, challenge: bytes, purpose: str
) -> tuple[uuid.UUID | None, uuid.UUID | None] | None:
    """Consume a live challenge: (agency id, user id), or None when unknown, used or expired."""
    row = conn.execute(
        "SELECT agency_id, user_id FROM cao.take_challenge(%s, %s)", (challenge, purpose)
    ).fetchone()
    return (row[0], row[1]) if row else None
