"""Request and response models of onboarding: sign-up, the onboarding material, linking and
bulk linking, the weekly probe's summary, and the linked account as stored (`AccountOut`, shown
by accounts and the agency too).

`check_name` (shared.kit.schemas) is the rule for the names people type (an agency's name, a
contact address, an account alias, a key name): accounts, the agency's settings and people
use it too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

from functions.onboard import regions
from functions.people.schemas import EnrolmentOut
from shared.kit.schemas import FromRow, check_email, check_name
from shared.web import Body


# A linked account as stored (`shared.store.accounts.AccountRow`). (Comments, not docstrings,
# on these models: a docstring would become the model's description in the OpenAPI document.)
class AccountOut(FromRow):
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


# ---- sign-up --------------------------------------------------------------------------------


class AdminIn(Body):
    name: str = Field(min_length=1, max_length=200, description="The first admin's name")
    email: str = Field(min_length=3, max_length=320, description="Their email (unique)")

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return check_email(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)


class SignUpIn(Body):
    name: str = Field(min_length=1, max_length=200, description="The agency's name")
    contact_email: str = Field(min_length=3, max_length=320)
    admin: AdminIn | None = Field(
        default=None,
        description="The first admin, who signs in with a passkey: the response starts their "
        "enrolment. Without it the agency has API keys only (admins can invite people later)",
    )

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str) -> str:
        return check_email(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)


class SignUpOut(BaseModel):
    agency_id: uuid.UUID
    key_id: uuid.UUID
    api_key: str = Field(description="Your first admin API key. Shown once: store it now.")
    external_id: str = Field(description="Your agency's ExternalId, for the role's trust policy")
    enrolment: EnrolmentOut | None = Field(
        default=None, description="The first admin's enrolment: register their passkey with it"
    )
    next: str


# ---- onboarding material --------------------------------------------------------------------


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


# ---- linking --------------------------------------------------------------------------------


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
        return None if value is None else check_name(value)


# A discovered member as stored (`shared.store.accounts.DiscoveredRow`), with the ARN of the
# role the StackSet puts in it. (Comments, not docstrings, on the models: a docstring would
# become the model's description in the OpenAPI document.)
class DiscoveredOut(FromRow):
    aws_account_id: str
    name: str | None
    management_account_id: uuid.UUID = Field(validation_alias="management_id")
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


# ---- the weekly probe -----------------------------------------------------------------------


# The probe's summary (`functions.onboard.verify.ProbeSummary`).
class ProbeOut(FromRow):
    due: int
    probed: int
    ok: int
    flagged: dict[str, int]
    skipped: int
