"""Invitations and recovery links: how a person joins an agency, and how a user who lost every
passkey gets back in. Both are created by an admin (an admin key, an admin user, or for recovery
the operator command) and are single use, 7 days, revocable, and listed with their status.

The token (256 bits) is returned once, inside a link whose fragment carries it
(`<CAO_PUBLIC_URL>/invite#<token>`, `/recover#<token>`): a fragment never reaches a server, a
log or a proxy; the console posts it in a JSON body. Only its SHA-256 is stored. There is no
email in this version: the admin passes the link on.

Accepting an invitation creates the user (the email is unique across the product) and starts
an enrolment; accepting a recovery link starts an enrolment for the existing user and ends their
sessions (the lost device's among them).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared import auth
from shared.auth import Caller
from shared.db import Connection, system_tx, tenant_tx
from shared.errors import ConflictError, NotFoundError
from shared.settings import Settings
from shared.store import agency, audit, people
from shared.store.people import InvitationRow

from . import enrolment
from .enrolment import Enrolment

INVITATION_LIFETIME = timedelta(days=7)
MAX_OPEN_INVITATIONS = 100
LIST_LIMIT = 200
OPERATOR_ACTOR = "operator"


def status(row: InvitationRow, now: datetime) -> str:
    if row.accepted_at is not None:
        return "accepted"
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at <= now:
        return "expired"
    return "pending"


@dataclass(frozen=True, repr=False)
class Link:
    invitation: InvitationRow
    url: str

    def __repr__(self) -> str:
        return f"Link(invitation={self.invitation.id})"


def _issue(
    conn: Connection,
    settings: Settings,
    agency_id: uuid.UUID,
    *,
    kind: str,
    email: str,
    role: str,
    user_id: uuid.UUID | None,
    actor: str,
    now: datetime,
) -> Link:
    if people.count_open_invitations(conn, agency_id, now) >= MAX_OPEN_INVITATIONS:
        raise ConflictError(
            f"an agency holds at most {MAX_OPEN_INVITATIONS} open invitations and recovery "
            "links: revoke unused ones first",
            code="too_many_invitations",
        )
    token = auth.generate_token()
    row = people.insert_invitation(
        conn,
        agency_id,
        kind=kind,
        email=email,
        role=role,
        user_id=user_id,
        token_hash=auth.hash_token(token),
        created_by=actor,
        now=now,
        lifetime=INVITATION_LIFETIME,
    )
    action = "invitation.created" if kind == "invite" else "recovery.created"
    audit.record(
        conn, agency_id, actor, action, str(row.id), {"role": role, "user_id": str(user_id)}
    )
    path = "invite" if kind == "invite" else "recover"
    return Link(row, f"{settings.public_url}/{path}#{token}")


def invite(
    conn: Connection, settings: Settings, caller: Caller, *, email: str, role: str, now: datetime
) -> Link:
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        if people.email_taken(conn, caller.agency_id, email):
            raise ConflictError("this person is a user of your agency already", code="email_taken")
        if (
            len(people.list_users(conn, caller.agency_id, enrolment.MAX_USERS))
            >= enrolment.MAX_USERS
        ):
            raise ConflictError(
                f"an agency holds at most {enrolment.MAX_USERS} users", code="too_many_users"
            )
        return _issue(
            conn,
            settings,
            caller.agency_id,
            kind="invite",
            email=email,
            role=role,
            user_id=None,
            actor=caller.actor,
            now=now,
        )


def recovery(
    conn: Connection, settings: Settings, caller: Caller, user_id: uuid.UUID, now: datetime
) -> Link:
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        return _recovery(conn, settings, caller.agency_id, user_id, actor=caller.actor, now=now)


def _recovery(
    conn: Connection,
    settings: Settings,
    agency_id: uuid.UUID,
    user_id: uuid.UUID,
    *,
    actor: str,
    now: datetime,
) -> Link:
    user = people.get_user(conn, agency_id, user_id)
    if user is None:
        raise NotFoundError("no such user")
    return _issue(
        conn,
        settings,
        agency_id,
        kind="recovery",
        email=user.email,
        role=user.role,
        user_id=user.id,
        actor=actor,
        now=now,
    )


def operator_admin_link(
    conn: Connection, settings: Settings, agency_id: uuid.UUID, now: datetime
) -> Link:
    """The operator's way back in for an agency that lost its admins' passkeys: a recovery link
    for its oldest admin user, or, with no admin user, an admin invitation to its contact
    address (audited, actor `operator`)."""
    with tenant_tx(conn, agency_id):
        found = agency.get(conn, agency_id)
        if found is None:
            raise NotFoundError(f"no agency {agency_id}")
        admins = [
            u for u in people.list_users(conn, agency_id, enrolment.MAX_USERS) if u.role == "admin"
        ]
        if admins:
            return _recovery(conn, settings, agency_id, admins[0].id, actor=OPERATOR_ACTOR, now=now)
        return _issue(
            conn,
            settings,
            agency_id,
            kind="invite",
            email=found.contact_email,
            role="admin",
            user_id=None,
            actor=OPERATOR_ACTOR,
            now=now,
        )


def list_invitations(conn: Connection, caller: Caller) -> list[InvitationRow]:
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        return people.list_invitations(conn, caller.agency_id, LIST_LIMIT)


def revoke(
    conn: Connection, caller: Caller, invitation_id: uuid.UUID, now: datetime
) -> InvitationRow:
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        row = people.get_invitation(conn, caller.agency_id, invitation_id, lock=True)
        if row is None:
            raise NotFoundError("no such invitation")
        if row.accepted_at is not None:
            raise ConflictError("this link was used already", code="invitation_used")
        people.revoke_invitation(conn, caller.agency_id, invitation_id, now)
        audit.record(conn, caller.agency_id, caller.actor, "invitation.revoked", str(invitation_id))
        revoked = people.get_invitation(conn, caller.agency_id, invitation_id)
    assert revoked is not None
    return revoked


def _find(conn: Connection, token: str) -> tuple[uuid.UUID, uuid.UUID]:
    """(invitation id, agency id) of a link's token; 404 when unknown."""
    with system_tx(conn):
        found = people.find_invitation(conn, auth.hash_token(token))
    if found is None:
        raise NotFoundError("this link is unknown: check that you copied all of it")
    return found


def _open(
    conn: Connection, agency_id: uuid.UUID, invitation_id: uuid.UUID, kind: str, now: datetime
) -> InvitationRow:
    """The locked row of a link still usable (inside its agency's transaction), else a 404 or
    a 409 saying why."""
    row = people.get_invitation(conn, agency_id, invitation_id, lock=True)
    if row is None or row.kind != kind:
        raise NotFoundError("this link is unknown: check that you copied all of it")
    state = status(row, now)
    if state != "pending":
        raise ConflictError(
            f"this link is {state}: ask an admin for a new one", code=f"invitation_{state}"
        )
    return row


def accept(conn: Connection, *, token: str, name: str, now: datetime) -> Enrolment:
    """Accept an invitation: the new user, and their enrolment."""
    invitation_id, agency_id = _find(conn, token)
    with tenant_tx(conn, agency_id):
        row = _open(conn, agency_id, invitation_id, "invite", now)
        user = enrolment.insert_user(
            conn, agency_id, email=row.email, name=name, role=row.role, now=now
        )
        people.mark_accepted(conn, agency_id, row.id, now)
        audit.record(
            conn,
            agency_id,
            f"user:{user.id}",
            "invitation.accepted",
            str(row.id),
            {"role": row.role},
        )
        return enrolment.start_enrolment(conn, agency_id, user.id, now)


def accept_recovery(conn: Connection, *, token: str, now: datetime) -> Enrolment:
    """Accept a recovery link: the user's sessions end, and an enrolment starts."""
    invitation_id, agency_id = _find(conn, token)
    with tenant_tx(conn, agency_id):
        row = _open(conn, agency_id, invitation_id, "recovery", now)
        assert row.user_id is not None
        people.mark_accepted(conn, agency_id, row.id, now)
        ended = people.delete_sessions(conn, agency_id, row.user_id)
        audit.record(
            conn,
            agency_id,
            f"user:{row.user_id}",
            "recovery.accepted",
            str(row.id),
            {"sessions_ended": ended},
        )
        return enrolment.start_enrolment(conn, agency_id, row.user_id, now)
