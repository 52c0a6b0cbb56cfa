"""HTTP routes of onboarding, one router per Vercel function that serves it:

    api/agencies.py     signup_router        POST /api/agencies (public sign-up)
    api/onboarding.py   onboarding_router    GET /api/onboarding, its three templates
    api/cron_verify.py  verify_cron_router   GET /api/cron/verify (Vercel Cron, weekly)

Linking (POST /api/accounts, bulk linking of discovered members, verify) is served under
/api/accounts by `functions.accounts.routes`, which calls this domain's service.

Cold start: this module loads no botocore and no PyYAML; the service imports them inside the
functions that call AWS or render a template.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from functions.people.schemas import EnrolmentOut
from shared.auth import Caller
from shared.cron import CronDep
from shared.db import Connection
from shared.kit.http import client_address
from shared.settings import Settings
from shared.web import ERRORS, CallerDep, Conn, DepsDep, Now, SettingsDep

from . import service
from .schemas import (
    OnboardingOut,
    ProbeOut,
    SignUpIn,
    SignUpOut,
)

# ---- sign-up --------------------------------------------------------------------------------

signup_router = APIRouter(tags=["agency"])


@signup_router.post(
    "/api/agencies",
    status_code=201,
    response_model=SignUpOut,
    responses={429: {"description": "too many sign-ups from this address (Retry-After)"}},
)
def create_agency(body: SignUpIn, request: Request, conn: Conn, now: Now) -> SignUpOut:
    """Sign up: creates the agency (in its trial), its ExternalId and a first admin API key."""
    result = service.sign_up(
        conn,
        name=body.name,
        contact_email=body.contact_email,
        admin=(body.admin.name, body.admin.email) if body.admin else None,
        source_address=client_address(request),
        now=now,
    )
    return SignUpOut(
        agency_id=result.agency_id,
        key_id=result.key_id,
        api_key=result.api_key,
        external_id=result.external_id,
        enrolment=(
            EnrolmentOut(token=result.enrolment.token, expires_at=result.enrolment.expires_at)
            if result.enrolment
            else None
        ),
        next="GET /api/onboarding with 'Authorization: Bearer <api_key>' for the role policy, "
        "trust policy, CloudFormation template and quick-create link",
    )


# ---- onboarding material --------------------------------------------------------------------

onboarding_router = APIRouter(tags=["onboarding"], responses=ERRORS)


@onboarding_router.get("/api/onboarding", response_model=OnboardingOut)
def get_onboarding(caller: CallerDep, conn: Conn, settings: SettingsDep) -> OnboardingOut:
    """Everything needed to create the role: policies, templates, quick-create link."""
    return service.onboarding(conn, caller, settings)


def _template_response(caller: Caller, conn: Connection, kind: str, settings: Settings) -> Response:
    text, media, name = service.template_file(conn, caller, kind, settings)
    return PlainTextResponse(
        text,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


_TEMPLATE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/yaml": {}}, "description": "the template"}
}


@onboarding_router.get(
    "/api/onboarding/template.yaml", response_class=PlainTextResponse, responses=_TEMPLATE_DOC
)
def template_yaml(caller: CallerDep, conn: Conn, settings: SettingsDep) -> Response:
    """The CloudFormation template (YAML), your values as parameter defaults."""
    return _template_response(caller, conn, "yaml", settings)


@onboarding_router.get(
    "/api/onboarding/template.json",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/json": {}}, "description": "the template"}},
)
def template_json(caller: CallerDep, conn: Conn, settings: SettingsDep) -> Response:
    """The CloudFormation template (JSON), your values as parameter defaults."""
    return _template_response(caller, conn, "json", settings)


@onboarding_router.get(
    "/api/onboarding/stackset.yaml", response_class=PlainTextResponse, responses=_TEMPLATE_DOC
)
def template_stackset(caller: CallerDep, conn: Conn, settings: SettingsDep) -> Response:
    """The StackSet variant: one role with a fixed name in every member account."""
    return _template_response(caller, conn, "stackset", settings)


# ---- cron -----------------------------------------------------------------------------------

verify_cron_router = APIRouter(tags=["cron"])


@verify_cron_router.get(
    "/api/cron/verify",
    response_model=ProbeOut,
    responses={401: {"description": "missing or wrong cron bearer"}, 503: {}},
)
def cron_verify(_: CronDep, conn: Conn, deps: DepsDep, now: Now) -> ProbeOut:
    """Weekly trust probe (Vercel Cron): flags accounts found open or unreachable."""
    return service.weekly_probe(conn, deps=deps, now=now)
