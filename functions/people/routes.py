"""HTTP routes of people (api/people.py):

    POST   /api/passkeys/registration/options   options to register a passkey (enrolment token,
                                                or signed in: add one)
    POST   /api/passkeys/registration           register it (after an enrolment: signed in)
    GET    /api/passkeys                        your passkeys
    PATCH  /api/passkeys/{passkey_id}           rename one
    DELETE /api/passkeys/{passkey_id}           remove one (not the last)
    POST   /api/session/options                 sign-in options (discoverable credentials)
    POST   /api/session                         sign in with a passkey (sets the cookie)
    GET    /api/session                         who is signed in, and the CSRF token
    DELETE /api/session                         sign out
    GET    /api/sessions                        your sessions
    DELETE /api/sessions                        sign out everywhere
    DELETE /api/sessions/{session_id}           end one of your sessions
    GET    /api/users                           the agency's users (admin)
    PATCH  /api/users/{user_id}                 change a role (admin; never the last admin)
    DELETE /api/users/{user_id}                 remove a user (admin; never the last admin)
    POST   /api/users/{user_id}/recovery        a recovery link (admin)
    GET    /api/invitations                     invitations and recovery links (admin)
    POST   /api/invitations                     invite a colleague (admin)
    DELETE /api/invitations/{invitation_id}     revoke (admin)
    POST   /api/invitations/accept              accept an invitation: an enrolment
    POST   /api/recovery/accept                 accept a recovery link: an enrolment

The session cookie is `__Host-cao_session` (Secure, HttpOnly, SameSite=Lax, Path=/, no Domain).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request, Response

from shared import auth
from shared.auth import Caller
from shared.errors import UnauthorizedError
from shared.kit.http import address_block, client_address
from shared.web import (
    ERRORS,
    AdminDep,
    CallerDep,
    Conn,
    Now,
    SettingsDep,
    credential_of,
    get_caller,
)

from . import invitations, service, sessions
from .invitations import Link
from .schemas import (
    AcceptIn,
    AgencyRef,
    EnrolmentOut,
    InvitationIn,
    InvitationOut,
    InvitationsOut,
    LinkOut,
    OptionsOut,
    PasskeyOut,
    PasskeyRenameIn,
    PasskeysOut,
    RecoveryAcceptIn,
    RegisteredOut,
    RegistrationIn,
    RegistrationOptionsIn,
    RoleIn,
    SessionItemOut,
    SessionOut,
    SessionsOut,
    SignedOutOut,
    SignInIn,
    UserOut,
    UsersOut,
)

people_router = APIRouter(tags=["people"], responses=ERRORS)

_SIGN_IN_ERRORS: dict[int | str, dict[str, str]] = {
    401: {"description": "sign-in failed (one message for every reason)"},
    429: {"description": "too many sign-in attempts (Retry-After)"},
}


def set_session_cookie(response: Response, token: str) -> None:
    response.set_cookie(
        auth.SESSION_COOKIE,
        token,
        max_age=int(sessions.SESSION_LIFETIME.total_seconds()),
        path="/",
        secure=True,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(
        auth.SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax"
    )


def _signed_in(request: Request, conn: Conn, now: datetime) -> Caller:
    """The caller of a route that authenticates only without an enrolment token (a JSON body:
    the CSRF token comes as X-CSRF-Token)."""
    return get_caller(request, credential_of(request), conn, now)


def _session_token(request: Request) -> str:
    token = auth.session_token(request.cookies.get(auth.SESSION_COOKIE))
    if token is None:  # pragma: no cover - the caller was authenticated by this cookie
        raise UnauthorizedError("sign in first")
    return token


# ---- passkeys --------------------------------------------------------------------------------


@people_router.post("/api/passkeys/registration/options", response_model=OptionsOut)
def registration_options(
    body: RegistrationOptionsIn, request: Request, conn: Conn, settings: SettingsDep, now: Now
) -> OptionsOut:
    """Options for `navigator.credentials.create()`: with an enrolment's token, or signed in
    (adds a passkey to your account)."""
    caller = None if body.enrolment_token else _signed_in(request, conn, now)
    options = service.registration_options(
        conn, settings, caller=caller, enrolment_token=body.enrolment_token, now=now
    )
    return OptionsOut(options=options)


@people_router.post(
    "/api/passkeys/registration",
    status_code=201,
    response_model=RegisteredOut,
    responses={409: {"description": "registered already"}, 422: {"description": "refused"}},
)
def register_passkey(
    body: RegistrationIn,
    *,
    request: Request,
    response: Response,
    conn: Conn,
    settings: SettingsDep,
    now: Now,
) -> RegisteredOut:
    """Register the passkey `navigator.credentials.create()` made; after an enrolment, the user
    is signed in (Set-Cookie)."""
    caller = None if body.enrolment_token else _signed_in(request, conn, now)
    result = service.register(
        conn,
        settings,
        caller=caller,
        enrolment_token=body.enrolment_token,
        credential=body.credential,
        name=body.name,
        now=now,
    )
    if result.session_token is not None:
        set_session_cookie(response, result.session_token)
    return RegisteredOut(
        passkey=PasskeyOut.model_validate(result.passkey),
        signed_in=result.session_token is not None,
    )


@people_router.get("/api/passkeys", response_model=PasskeysOut)
def list_passkeys(caller: CallerDep, conn: Conn) -> PasskeysOut:
    """Your passkeys."""
    rows = service.list_passkeys(conn, caller)
    return PasskeysOut(passkeys=[PasskeyOut.model_validate(r) for r in rows])


@people_router.patch("/api/passkeys/{passkey_id}", response_model=PasskeyOut)
def rename_passkey(
    passkey_id: uuid.UUID, body: PasskeyRenameIn, caller: CallerDep, conn: Conn
) -> PasskeyOut:
    return PasskeyOut.model_validate(service.rename_passkey(conn, caller, passkey_id, body.name))


@people_router.delete(
    "/api/passkeys/{passkey_id}",
    status_code=204,
    responses={409: {"description": "your last passkey"}},
)
def remove_passkey(passkey_id: uuid.UUID, caller: CallerDep, conn: Conn) -> Response:
    """Remove one of your passkeys (not the last one): the sessions it opened end."""
    service.remove_passkey(conn, caller, passkey_id)
    return Response(status_code=204)


# ---- sign-in and sessions --------------------------------------------------------------------


@people_router.post("/api/session/options", response_model=OptionsOut, responses=_SIGN_IN_ERRORS)
def sign_in_options(request: Request, conn: Conn, settings: SettingsDep) -> OptionsOut:
    """Options for `navigator.credentials.get()` (discoverable credentials: nothing to type)."""
    block = address_block(client_address(request))
    return OptionsOut(options=sessions.options(conn, settings, block))


@people_router.post("/api/session", response_model=SessionOut, responses=_SIGN_IN_ERRORS)
def sign_in(
    body: SignInIn,
    *,
    request: Request,
    response: Response,
    conn: Conn,
    settings: SettingsDep,
    now: Now,
) -> SessionOut:
    """Sign in with the assertion `navigator.credentials.get()` made: a new session (cookie)."""
    token = sessions.sign_in(
        conn,
        settings,
        body.credential,
        address_block=address_block(client_address(request)),
        now=now,
    )
    set_session_cookie(response, token)
    caller = auth.authenticate_session(conn, token, now)
    return _session_out(conn, caller, token)


def _session_out(conn: Conn, caller: Caller, token: str) -> SessionOut:
    found = sessions.current(conn, caller)
    return SessionOut(
        user=UserOut.model_validate(found.user),
        agency=AgencyRef(id=found.agency.id, name=found.agency.name),
        role=found.user.role,  # type: ignore[arg-type]
        session_id=found.session_id,
        csrf_token=auth.csrf_token(token),
    )


@people_router.get("/api/session", response_model=SessionOut)
def get_session(caller: CallerDep, request: Request, conn: Conn) -> SessionOut:
    """Who is signed in, and the CSRF token to send with every change."""
    caller.require_user()
    return _session_out(conn, caller, _session_token(request))


@people_router.delete("/api/session", status_code=204)
def sign_out(caller: CallerDep, conn: Conn) -> Response:
    """Sign out: this session ends, and the cookie is cleared."""
    caller.require_user()
    assert caller.session_id is not None
    sessions.end_session(conn, caller, caller.session_id)
    response = Response(status_code=204)
    clear_session_cookie(response)
    return response


@people_router.get("/api/sessions", response_model=SessionsOut)
def list_sessions(caller: CallerDep, conn: Conn, now: Now) -> SessionsOut:
    """Your live sessions (`current` marks this one)."""
    rows = sessions.list_sessions(conn, caller, now)
    return SessionsOut(
        sessions=[
            SessionItemOut.model_validate(r).model_copy(
                update={"current": r.id == caller.session_id}
            )
            for r in rows
        ]
    )


@people_router.delete("/api/sessions", response_model=SignedOutOut)
def sign_out_everywhere(caller: CallerDep, conn: Conn, response: Response) -> SignedOutOut:
    """Sign out everywhere: every session of yours ends, this one included."""
    ended = sessions.end_all_sessions(conn, caller)
    clear_session_cookie(response)
    return SignedOutOut(ended=ended)


@people_router.delete("/api/sessions/{session_id}", status_code=204)
def end_session(session_id: uuid.UUID, caller: CallerDep, conn: Conn) -> Response:
    """End one of your sessions (another device's)."""
    sessions.end_session(conn, caller, session_id)
    return Response(status_code=204)


# ---- users (admins) --------------------------------------------------------------------------


@people_router.get("/api/users", response_model=UsersOut)
def list_users(caller: AdminDep, conn: Conn) -> UsersOut:
    """The agency's users (at most 500)."""
    return UsersOut(users=[UserOut.model_validate(u) for u in service.list_users(conn, caller)])


@people_router.patch(
    "/api/users/{user_id}",
    response_model=UserOut,
    responses={409: {"description": "the last admin"}},
)
def change_role(user_id: uuid.UUID, body: RoleIn, caller: AdminDep, conn: Conn) -> UserOut:
    return UserOut.model_validate(service.change_role(conn, caller, user_id, body.role))


@people_router.delete(
    "/api/users/{user_id}", status_code=204, responses={409: {"description": "the last admin"}}
)
def remove_user(user_id: uuid.UUID, caller: AdminDep, conn: Conn) -> Response:
    """Remove a user: their passkeys and sessions end with them."""
    service.remove_user(conn, caller, user_id)
    return Response(status_code=204)


def _link_out(link: Link, now: datetime) -> LinkOut:
    return LinkOut(invitation=_invitation_out(link.invitation, now), link=link.url)


def _invitation_out(row: invitations.InvitationRow, now: datetime) -> InvitationOut:
    return InvitationOut.model_validate(
        {**row.model_dump(), "status": invitations.status(row, now)}
    )


@people_router.post("/api/users/{user_id}/recovery", status_code=201, response_model=LinkOut)
def recovery_link(
    user_id: uuid.UUID, caller: AdminDep, conn: Conn, settings: SettingsDep, now: Now
) -> LinkOut:
    """A recovery link for a user who lost every passkey (single use, 7 days)."""
    return _link_out(invitations.recovery(conn, settings, caller, user_id, now), now)


# ---- invitations -----------------------------------------------------------------------------


@people_router.get("/api/invitations", response_model=InvitationsOut)
def list_invitations(caller: AdminDep, conn: Conn, now: Now) -> InvitationsOut:
    """Invitations and recovery links, newest first, with their status."""
    rows = invitations.list_invitations(conn, caller)
    return InvitationsOut(invitations=[_invitation_out(r, now) for r in rows])


@people_router.post(
    "/api/invitations",
    status_code=201,
    response_model=LinkOut,
    responses={409: {"description": "a user already"}},
)
def invite(
    body: InvitationIn, caller: AdminDep, conn: Conn, settings: SettingsDep, now: Now
) -> LinkOut:
    """Invite a colleague: the single-use link (7 days) to pass on."""
    link = invitations.invite(conn, settings, caller, email=body.email, role=body.role, now=now)
    return _link_out(link, now)


@people_router.delete("/api/invitations/{invitation_id}", response_model=InvitationOut)
def revoke_invitation(
    invitation_id: uuid.UUID, caller: AdminDep, conn: Conn, now: Now
) -> InvitationOut:
    return _invitation_out(invitations.revoke(conn, caller, invitation_id, now), now)


@people_router.post(
    "/api/invitations/accept",
    status_code=201,
    response_model=EnrolmentOut,
    responses={409: {"description": "used, revoked or expired"}},
)
def accept_invitation(body: AcceptIn, conn: Conn, now: Now) -> EnrolmentOut:
    """Accept an invitation (the token after '#' in its link): an enrolment to register your
    passkey."""
    enrolment = invitations.accept(conn, token=body.token, name=body.name, now=now)
    return EnrolmentOut(token=enrolment.token, expires_at=enrolment.expires_at)


@people_router.post(
    "/api/recovery/accept",
    status_code=201,
    response_model=EnrolmentOut,
    responses={409: {"description": "used, revoked or expired"}},
)
def accept_recovery(body: RecoveryAcceptIn, conn: Conn, now: Now) -> EnrolmentOut:
    """Accept a recovery link: your sessions end, and an enrolment registers a new passkey."""
    enrolment = invitations.accept_recovery(conn, token=body.token, now=now)
    return EnrolmentOut(token=enrolment.token, expires_at=enrolment.expires_at)
