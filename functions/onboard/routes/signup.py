"""Public sign-up (api/agencies.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from functions.onboard import signup
from shared.web import Conn

if TYPE_CHECKING:
    pass


from functions.onboard.routes._common import (
    SignUpIn,
    SignUpOut,
    _now,
)

# ---- sign-up --------------------------------------------------------------------------------

signup_router = APIRouter(tags=["agency"])


def client_address(request: Request) -> str:
    """The caller's address. On Vercel, x-real-ip / x-forwarded-for are set by the platform
    (a client's own values are overwritten); locally, the socket's peer."""
    for header in ("x-real-ip", "x-forwarded-for"):
        value = request.headers.get(header, "").split(",")[0].strip()
        if value:
            return value[:100]
    return request.client.host if request.client else "unknown"


@signup_router.post(
    "/api/agencies",
    status_code=201,
    response_model=SignUpOut,
    responses={429: {"description": "too many sign-ups from this address (Retry-After)"}},
)
def create_agency(body: SignUpIn, request: Request, conn: Conn) -> SignUpOut:
    """Sign up: creates the agency (in its trial), its ExternalId and a first admin API key."""
    result = signup.sign_up(
        conn,
        name=body.name,
        contact_email=body.contact_email,
        source_address=client_address(request),
        now=_now(),
    )
    return SignUpOut(
        agency_id=result.agency_id,
        key_id=result.key_id,
        api_key=result.api_key,
        external_id=result.external_id,
        next="GET /api/onboarding with 'Authorization: Bearer <api_key>' for the role policy, "
        "trust policy, CloudFormation template and quick-create link",
    )
