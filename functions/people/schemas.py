"""Request and response models of people: enrolment, passkeys, sessions, users, invitations and
recovery links.

WebAuthn credentials are the browser's JSON (`PublicKeyCredential.toJSON()`), passed through to
py_webauthn's parsers; options are the JSON the browser's `parse*OptionsFromJSON` take.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from shared.kit.schemas import FromRow, check_email, check_name
from shared.web import Body

Role = Literal["admin", "member"]
TOKEN_FIELD = Field(
    min_length=20, max_length=100, description="The token of the link (after '#') or enrolment"
)


class EnrolmentOut(BaseModel):
    token: str = Field(
        description="Registers one passkey (POST /api/passkeys/registration/options, then "
        "POST /api/passkeys/registration): single use, 15 minutes"
    )
    expires_at: datetime


# ---- passkeys --------------------------------------------------------------------------------


class RegistrationOptionsIn(Body):
    enrolment_token: str | None = Field(
        default=None,
        min_length=20,
        max_length=100,
        description="An enrolment's token; omit it to add a passkey to the signed-in user",
    )


class OptionsOut(BaseModel):
    options: dict[str, Any] = Field(
        description="PublicKeyCredentialCreationOptionsJSON (registration) or "
        "PublicKeyCredentialRequestOptionsJSON (sign-in)"
    )


class RegistrationIn(Body):
    enrolment_token: str | None = Field(default=None, min_length=20, max_length=100)
    credential: dict[str, Any] = Field(description="RegistrationResponseJSON")
    name: str = Field(default="Passkey", min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)


class PasskeyOut(FromRow):
    id: uuid.UUID
    name: str
    transports: list[str]
    created_at: datetime
    last_used_at: datetime | None


class RegisteredOut(BaseModel):
    passkey: PasskeyOut
    signed_in: bool = Field(description="True after an enrolment: the session cookie is set")


class PasskeyRenameIn(Body):
    name: str = Field(min_length=1, max_length=100)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)


# ---- sessions --------------------------------------------------------------------------------


class SignInIn(Body):
    credential: dict[str, Any] = Field(description="AuthenticationResponseJSON")


class UserOut(FromRow):
    id: uuid.UUID
    email: str
    name: str
    role: Role
    created_at: datetime
    last_sign_in_at: datetime | None


class AgencyRef(BaseModel):
    id: uuid.UUID
    name: str


class SessionOut(BaseModel):
    user: UserOut
    agency: AgencyRef
    role: Role
    session_id: uuid.UUID
    csrf_token: str = Field(
        description="Send it as X-CSRF-Token (or a csrf_token form field) with every change"
    )


class SessionItemOut(FromRow):
    id: uuid.UUID
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    current: bool = False


class SessionsOut(BaseModel):
    sessions: list[SessionItemOut]


class SignedOutOut(BaseModel):
    ended: int = Field(description="How many sessions ended")


# ---- users -----------------------------------------------------------------------------------


class UsersOut(BaseModel):
    users: list[UserOut]


class RoleIn(Body):
    role: Role


class PasskeysOut(BaseModel):
    passkeys: list[PasskeyOut]


# ---- invitations and recovery ----------------------------------------------------------------


class InvitationIn(Body):
    email: str = Field(min_length=3, max_length=320)
    role: Role = "member"

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return check_email(value)


class InvitationOut(FromRow):
    id: uuid.UUID
    kind: Literal["invite", "recovery"]
    email: str
    role: Role
    user_id: uuid.UUID | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    status: Literal["pending", "accepted", "revoked", "expired"]


class LinkOut(BaseModel):
    invitation: InvitationOut
    link: str = Field(
        description="Single use, 7 days. Its token is in the fragment (after '#'): pass the "
        "whole link on securely; it is shown once"
    )


class InvitationsOut(BaseModel):
    invitations: list[InvitationOut]


class AcceptIn(Body):
    token: str = TOKEN_FIELD
    name: str = Field(min_length=1, max_length=200, description="Your name")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)


class RecoveryAcceptIn(Body):
    token: str = TOKEN_FIELD
