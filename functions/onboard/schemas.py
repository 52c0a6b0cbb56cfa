"""What the onboarding routers share: clock, AWS and queue hooks, request/response models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Request
from pydantic import BaseModel, Field, field_validator

from functions.onboard import agency_settings, regions
from shared.db import Connection
from shared.settings import get_settings
from shared.store.accounts import AccountRow
from shared.store.agencies import AgencyRow
from shared.store.keys import KeyRow
from shared.web import Body

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
