"""Onboarding material: policies, templates, quick-create link (api/onboarding.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from shared.auth import Caller
from shared.db import Connection, tenant_tx
from shared.errors import NotFoundError
from shared.policy import ROLE_POLICY, SERVICE_USER, trust_policy
from shared.settings import get_settings
from shared.store import accounts, agencies
from shared.web import ERRORS, CallerDep, Conn

if TYPE_CHECKING:
    pass


from functions.onboard.routes._common import (
    AccountOut,
    OnboardingOut,
    TemplateLinks,
)

# ---- onboarding material --------------------------------------------------------------------

onboarding_router = APIRouter(tags=["onboarding"], responses=ERRORS)
_TEMPLATE_PATHS = {
    "yaml": "/api/onboarding/template.yaml",
    "json": "/api/onboarding/template.json",
    "stackset": "/api/onboarding/stackset.yaml",
}


def _agency_values(conn: Connection, caller: Caller) -> tuple[str, str]:
    """(our account ID, the agency's current ExternalId)."""
    ours = get_settings().aws_account_id  # ConfigError (503) naming it when unset
    with tenant_tx(conn, caller.agency_id):
        current = agencies.current_external_id(conn, caller.agency_id)
    if current is None:
        raise NotFoundError("the agency no longer exists")
    return ours, current.value


@onboarding_router.get("/api/onboarding", response_model=OnboardingOut)
def get_onboarding(caller: CallerDep, conn: Conn) -> OnboardingOut:
    """Everything needed to create the role: policies, templates, quick-create link."""
    from functions.onboard import templates  # noqa: PLC0415 - PyYAML only where templates are rendered

    ours, external_id = _agency_values(conn, caller)
    with tenant_tx(conn, caller.agency_id):
        pending = accounts.list_needing_trust_update(conn, caller.agency_id)
    template_url = get_settings().get("CAO_TEMPLATE_URL")
    quick_create, note = None, None
    if template_url and templates.is_https_url(template_url):
        quick_create = templates.quick_create_url(template_url, ours, external_id)
    else:
        note = (
            "No published template URL is configured (CAO_TEMPLATE_URL): download the template "
            "and create the stack from it in the CloudFormation console."
        )
    return OnboardingOut(
        cao_account_id=ours,
        service_principal=f"arn:aws:iam::{ours}:user/{SERVICE_USER}",
        external_id=external_id,
        role_name=templates.ROLE_NAME,
        role_policy=ROLE_POLICY,
        trust_policy=trust_policy(ours, external_id),
        templates=TemplateLinks(
            yaml=_TEMPLATE_PATHS["yaml"],
            json=_TEMPLATE_PATHS["json"],
            stackset_yaml=_TEMPLATE_PATHS["stackset"],
            published_url=template_url or None,
        ),
        quick_create_url=quick_create,
        quick_create_note=note,
        stackset=templates.stackset_instructions(ours, _TEMPLATE_PATHS["stackset"]),
        accounts_needing_trust_update=[AccountOut.of(a) for a in pending],
        next='create the stack, then POST /api/accounts with {"role_arn": <the stack\'s RoleArn '
        "output>}",
    )


def _template_response(caller: Caller, conn: Connection, kind: str) -> Response:
    from functions.onboard import templates  # noqa: PLC0415

    ours, external_id = _agency_values(conn, caller)
    body = templates.template(
        stackset=kind == "stackset",
        defaults={"CaoAccountId": ours, "ExternalId": external_id},
    )
    if kind == "json":
        text, media, name = templates.render_json(body), "application/json", "cloudagencyops.json"
    else:
        text, media = templates.render_yaml(body), "application/yaml"
        name = "cloudagencyops-stackset.yaml" if kind == "stackset" else "cloudagencyops.yaml"
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
def template_yaml(caller: CallerDep, conn: Conn) -> Response:
    """The CloudFormation template (YAML), your values as parameter defaults."""
    return _template_response(caller, conn, "yaml")


@onboarding_router.get(
    "/api/onboarding/template.json",
    response_class=PlainTextResponse,
    responses={200: {"content": {"application/json": {}}, "description": "the template"}},
)
def template_json(caller: CallerDep, conn: Conn) -> Response:
    """The CloudFormation template (JSON), your values as parameter defaults."""
    return _template_response(caller, conn, "json")


@onboarding_router.get(
    "/api/onboarding/stackset.yaml", response_class=PlainTextResponse, responses=_TEMPLATE_DOC
)
def template_stackset(caller: CallerDep, conn: Conn) -> Response:
    """The StackSet variant: one role with a fixed name in every member account."""
    return _template_response(caller, conn, "stackset")
