"""HTTP routes of onboarding. Served by:

    api/agencies.py     signup_router       POST /api/agencies (public sign-up)
    api/agency.py       agency_router       GET/PATCH /api/agency, /api/agency/keys...,
                                            POST /api/agency/external-id/rotate
    api/onboarding.py   onboarding_router   GET /api/onboarding, its three templates
    api/accounts.py     accounts_router     POST /api/accounts, PATCH/DELETE
                                            /api/accounts/{id}, POST .../verify,
                                            GET /api/accounts/discovered, POST .../link
    api/cron_verify.py  verify_cron_router  GET /api/cron/verify (Vercel Cron, weekly)

Cold start: this module loads no botocore. Handlers that call AWS import `linking`/`verify` and
`shared.aws` inside the handler, so the read views served beside these routes stay light.

A new link's sync jobs are created and published right after the link commits
(`functions.sync_costs.dispatch.enqueue_first_sync`, which never fails the link).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, field_validator

from shared.auth import Caller
from shared.cron import CronDep
from shared.db import Connection, tenant_tx
from shared.errors import NotFoundError
from shared.policy import ROLE_POLICY, SERVICE_USER, trust_policy
from shared.settings import get_settings
from shared.store import accounts, agencies
from shared.store.accounts import AccountRow
from shared.store.agencies import AgencyRow
from shared.store.keys import KeyRow
from shared.web import ERRORS, AdminDep, Body, CallerDep, Conn

from . import account_edits, agency_settings, keys, regions, rotation, signup

if TYPE_CHECKING:
    from shared.aws import ClientFactory


def _now() -> datetime:
    return datetime.now(UTC)


def _first_sync(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, request: Request
) -> None:
    """A new link's sync jobs, created and published now (never fails the link: when the queue
    cannot be reached, the jobs stay due and the next dispatcher run takes them)."""
    from functions.sync_costs import dispatch  # noqa: PLC0415 - the queue only after a link

    dispatch.enqueue_first_sync(conn, agency_id, account_id, headers=request.headers)


def _ours() -> ClientFactory:
    from shared import aws  # noqa: PLC0415 - botocore only when a handler calls AWS

    return aws.our_clients(get_settings())


# ---- models ---------------------------------------------------------------------------------


class SignUpIn(Body):
    name: str = Field(min_length=1, max_length=200, description="The agency's name")
    contact_email: str = Field(min_length=3, max_length=320)

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str) -> str:
        return agency_settings.check_email(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return agency_settings.check_text(value)


class SignUpOut(BaseModel):
    agency_id: uuid.UUID
    key_id: uuid.UUID
    api_key: str = Field(description="Your first admin API key. Shown once: store it now.")
    external_id: str = Field(description="Your agency's ExternalId, for the role's trust policy")
    next: str


class AgencyOut(BaseModel):
    id: uuid.UUID
    name: str
    contact_email: str
    created_at: datetime
    default_regions: list[str]
    cloudtrail_retention_days: int
    cloudtrail_backfill_days: int
    billing_status: str
    plan: str
    trial_ends_at: datetime

    @classmethod
    def of(cls, row: AgencyRow) -> AgencyOut:
        return cls(**vars(row))


class KeyOut(BaseModel):
    id: uuid.UUID
    name: str
    role: str
    prefix: str = Field(description="The key's first characters, to recognise it")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: KeyRow) -> KeyOut:
        return cls(
            id=row.id,
            name=row.name,
            role=row.role,
            prefix=row.key_prefix,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


class KeyCreateIn(Body):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["admin", "member"] = "member"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return agency_settings.check_text(value)


class KeyCreatedOut(BaseModel):
    key: KeyOut
    api_key: str = Field(description="The new key. Shown once: store it now.")


class AccountOut(BaseModel):
    id: uuid.UUID
    aws_account_id: str
    role_arn: str
    alias: str | None
    regions: list[str] | None
    status: str
    status_message: str | None
    is_management: bool
    needs_trust_update: bool = Field(
        description="Still verified with an ExternalId from before the last rotation"
    )
    linked_at: datetime
    verified_at: datetime | None

    @classmethod
    def of(cls, row: AccountRow) -> AccountOut:
        return cls(
            id=row.id,
            aws_account_id=row.aws_account_id,
            role_arn=row.role_arn,
            alias=row.alias,
            regions=row.regions,
            status=row.status,
            status_message=row.status_message,
            is_management=row.is_management,
            needs_trust_update=row.needs_trust_update,
            linked_at=row.linked_at,
            verified_at=row.verified_at,
        )


class RotationOut(BaseModel):
    external_id: str
    accounts_needing_trust_update: list[AccountOut]
    next: str


class LinkIn(Body):
    role_arn: str = Field(
        min_length=1,
        max_length=2048,
        description="The role's ARN (the RoleArn output of our CloudFormation stack)",
    )
    alias: str | None = Field(default=None, min_length=1, max_length=100)
    regions: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="CloudTrail regions; the agency's default regions when left out",
    )

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else regions.normalize(value)

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        return None if value is None else agency_settings.check_text(value)


class DiscoveredOut(BaseModel):
    aws_account_id: str
    name: str | None
    management_account_id: uuid.UUID
    management_aws_account_id: str
    role_arn: str = Field(description="Where the StackSet puts our role in this account")
    linked_account_id: uuid.UUID | None
    discovered_at: datetime


class BulkLinkIn(Body):
    aws_account_ids: list[Annotated[str, Field(pattern=r"^[0-9]{12}$")]] | None = Field(
        default=None,
        min_length=1,
        max_length=25,
        description="Members to link; left out: the first 25 unlinked discovered members",
    )


class BulkResultOut(BaseModel):
    aws_account_id: str
    outcome: Literal["linked", "already_linked", "failed", "not_discovered"]
    account: AccountOut | None = None
    error: dict[str, str] | None = None


class BulkLinkOut(BaseModel):
    results: list[BulkResultOut]
    remaining: int = Field(description="Unlinked members not attempted: call again")


class TemplateLinks(BaseModel):
    yaml: str
    json_: str = Field(alias="json")
    stackset_yaml: str
    published_url: str | None

    model_config = {"populate_by_name": True}


class OnboardingOut(BaseModel):
    cao_account_id: str
    service_principal: str
    external_id: str
    role_name: str
    role_policy: dict[str, Any]
    trust_policy: dict[str, Any]
    templates: TemplateLinks
    quick_create_url: str | None
    quick_create_note: str | None
    stackset: dict[str, Any]
    accounts_needing_trust_update: list[AccountOut]
    next: str


class ProbeOut(BaseModel):
    due: int
    probed: int
    ok: int
    flagged: dict[str, int]
    skipped: int


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


# ---- the agency: settings, keys, rotation ---------------------------------------------------

agency_router = APIRouter(tags=["agency"], responses=ERRORS)


@agency_router.get("/api/agency", response_model=AgencyOut)
def get_agency(caller: CallerDep, conn: Conn) -> AgencyOut:
    return AgencyOut.of(agency_settings.read(conn, caller))


@agency_router.patch("/api/agency", response_model=AgencyOut)
def patch_agency(body: agency_settings.SettingsPatch, caller: AdminDep, conn: Conn) -> AgencyOut:
    """Change settings (admin): name, contact_email, default_regions (for accounts linked from
    now on), cloudtrail_retention_days (1-365), cloudtrail_backfill_days (1-90)."""
    return AgencyOut.of(agency_settings.update(conn, caller, body))


@agency_router.get("/api/agency/keys", response_model=list[KeyOut])
def list_keys(caller: AdminDep, conn: Conn) -> list[KeyOut]:
    return [KeyOut.of(k) for k in keys.list_keys(conn, caller)]


@agency_router.post("/api/agency/keys", status_code=201, response_model=KeyCreatedOut)
def create_key(body: KeyCreateIn, caller: AdminDep, conn: Conn) -> KeyCreatedOut:
    """Create an API key (admin). The key is in this response only; we keep its hash."""
    created = keys.create_key(conn, caller, name=body.name, role=body.role)
    return KeyCreatedOut(key=KeyOut.of(created.row), api_key=created.plaintext)


@agency_router.delete("/api/agency/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: uuid.UUID, caller: AdminDep, conn: Conn) -> KeyOut:
    """Revoke a key (admin; idempotent). The agency's last live admin key cannot be revoked."""
    return KeyOut.of(keys.revoke_key(conn, caller, key_id, _now()))


@agency_router.post("/api/agency/external-id/rotate", response_model=RotationOut)
def rotate_external_id(caller: AdminDep, conn: Conn) -> RotationOut:
    """A new ExternalId (admin). Linked accounts keep working with the value they were verified
    with until their trust policy has the new one and they verify again."""
    result = rotation.rotate(conn, caller, _now())
    return RotationOut(
        external_id=result.external_id.value,
        accounts_needing_trust_update=[AccountOut.of(a) for a in result.needing_trust_update],
        next="update each listed account's trust policy (or its stack's ExternalId parameter) "
        "to the new value, then POST /api/accounts/{id}/verify",
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
    from . import templates  # noqa: PLC0415 - PyYAML only where templates are rendered

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
    from . import templates  # noqa: PLC0415

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


# ---- accounts: link, edit, unlink, verify, discovered ---------------------------------------

accounts_router = APIRouter(tags=["accounts"], responses=ERRORS)


# Declared before the /{account_id} routes so that "discovered" is never read as an id.
@accounts_router.get("/api/accounts/discovered", response_model=list[DiscoveredOut])
def list_discovered(caller: CallerDep, conn: Conn) -> list[DiscoveredOut]:
    """Members of organizations whose management account is linked (ID and name only)."""
    from . import templates  # noqa: PLC0415

    with tenant_tx(conn, caller.agency_id):
        rows = accounts.list_discovered(conn, caller.agency_id)
    return [
        DiscoveredOut(
            aws_account_id=r.aws_account_id,
            name=r.name,
            management_account_id=r.management_id,
            management_aws_account_id=r.management_aws_account_id,
            role_arn=templates.role_arn(
                r.aws_account_id,
                templates.STACKSET_ROLE_NAME,
                r.management_role_arn.split(":", 2)[1],
            ),
            linked_account_id=r.linked_account_id,
            discovered_at=r.discovered_at,
        )
        for r in rows
    ]


@accounts_router.post(
    "/api/accounts/discovered/link",
    response_model=BulkLinkOut,
    responses={403: {"description": "admin keys only"}},
)
def link_discovered(
    caller: AdminDep, conn: Conn, request: Request, body: BulkLinkIn | None = None
) -> BulkLinkOut:
    """Link discovered members (admin) through the StackSet role name, up to 25 per call."""
    from . import linking  # noqa: PLC0415 - loads botocore

    results, remaining = linking.link_discovered(
        conn,
        _ours(),
        agency_id=caller.agency_id,
        actor=caller.actor,
        aws_account_ids=body.aws_account_ids if body else None,
        our_account_id=get_settings().aws_account_id,
        now=_now(),
    )
    for r in results:
        if r.outcome == "linked" and r.account is not None:
            _first_sync(conn, caller.agency_id, r.account.id, request)
    return BulkLinkOut(
        results=[
            BulkResultOut(
                aws_account_id=r.aws_account_id,
                outcome=r.outcome,  # type: ignore[arg-type]
                account=AccountOut.of(r.account) if r.account else None,
                error=(
                    {"code": r.error_code, "message": r.message or ""} if r.error_code else None
                ),
            )
            for r in results
        ],
        remaining=remaining,
    )


@accounts_router.post(
    "/api/accounts",
    status_code=201,
    response_model=AccountOut,
    responses={
        200: {"description": "already linked: the existing link", "model": AccountOut},
        400: {"description": "malformed role ARN"},
        409: {"description": "that AWS account is linked through another role"},
        503: {"description": "AWS throttled or unreachable: retry; nothing was stored"},
    },
)
def link_account(
    body: LinkIn, caller: CallerDep, conn: Conn, request: Request, response: Response
) -> AccountOut:
    """Link a client account by its role ARN: assume, confirm the account, probe the trust
    policy, check Organizations and Cost Explorer, then record it. 201 when linked now, 200
    with the existing link when that role is already linked."""
    from . import linking  # noqa: PLC0415 - loads botocore

    outcome = linking.link_account(
        conn,
        _ours(),
        agency_id=caller.agency_id,
        actor=caller.actor,
        role_arn=body.role_arn,
        alias=body.alias,
        regions=body.regions,
        our_account_id=get_settings().aws_account_id,
        now=_now(),
    )
    if outcome.created:
        _first_sync(conn, caller.agency_id, outcome.account.id, request)
    else:
        response.status_code = 200
    return AccountOut.of(outcome.account)


@accounts_router.patch("/api/accounts/{account_id}", response_model=AccountOut)
def patch_account(
    account_id: uuid.UUID, body: account_edits.AccountPatch, caller: AdminDep, conn: Conn
) -> AccountOut:
    """Change an account's alias and/or CloudTrail regions (admin)."""
    return AccountOut.of(account_edits.update_account(conn, caller, account_id, body))


@accounts_router.delete("/api/accounts/{account_id}", status_code=204)
def unlink_account(account_id: uuid.UUID, caller: AdminDep, conn: Conn) -> Response:
    """Unlink (admin): deletes the account and all its synced data; audited. A second call
    answers 404 (there is nothing left to delete)."""
    account_edits.unlink_account(conn, caller, account_id)
    return Response(status_code=204)


@accounts_router.post(
    "/api/accounts/{account_id}/verify",
    response_model=AccountOut,
    responses={503: {"description": "AWS throttled or unreachable: retry; nothing changed"}},
)
def verify_account(account_id: uuid.UUID, caller: CallerDep, conn: Conn) -> AccountOut:
    """Re-run every linking check for this account and record the outcome as its status."""
    from . import verify  # noqa: PLC0415 - loads botocore

    row = verify.verify_account(
        conn,
        _ours(),
        agency_id=caller.agency_id,
        account_id=account_id,
        actor=caller.actor,
        our_account_id=get_settings().aws_account_id,
        now=_now(),
    )
    return AccountOut.of(row)


# ---- cron -----------------------------------------------------------------------------------

verify_cron_router = APIRouter(tags=["cron"])


@verify_cron_router.get(
    "/api/cron/verify",
    response_model=ProbeOut,
    responses={401: {"description": "missing or wrong cron bearer"}, 503: {}},
)
def cron_verify(_: CronDep, conn: Conn) -> ProbeOut:
    """Weekly trust probe (Vercel Cron): flags accounts found open or unreachable."""
    from . import verify  # noqa: PLC0415 - loads botocore

    summary = verify.run_weekly_probe(
        conn, _ours(), _now(), our_account_id=get_settings().aws_account_id
    )
    return ProbeOut(
        due=summary.due,
        probed=summary.probed,
        ok=summary.ok,
        flagged=summary.flagged,
        skipped=summary.skipped,
    )
