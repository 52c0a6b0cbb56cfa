"""Request and response models of the caller's agency: the agency as stored, its settings, its
API keys, and an ExternalId rotation. Billing fields are not settings: `SettingsPatch` forbids
them (extra fields are refused) and the store refuses any column outside
`agencies.SETTINGS_COLUMNS`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from functions.onboard import regions
from functions.onboard.schemas import AccountOut, check_email, check_name
from shared.kit.schemas import FromRow
from shared.store.agency import AgencyRow
from shared.web import Body

RETENTION_DAYS = (1, 365)
BACKFILL_DAYS = (1, 90)


# The agency as stored (`shared.store.agency.AgencyRow`). (Comments, not docstrings, on the
# models: a docstring would become the model's description in the OpenAPI document.)
class AgencyOut(AgencyRow):
    pass


class SettingsPatch(Body):
    """The settings an admin may change; a field left out is unchanged (null is refused)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    contact_email: str | None = Field(default=None, min_length=3, max_length=320)
    default_regions: list[str] | None = Field(default=None, min_length=1, max_length=64)
    cloudtrail_retention_days: int | None = Field(
        default=None, ge=RETENTION_DAYS[0], le=RETENTION_DAYS[1]
    )
    cloudtrail_backfill_days: int | None = Field(
        default=None, ge=BACKFILL_DAYS[0], le=BACKFILL_DAYS[1]
    )

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else check_email(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value)

    @field_validator("default_regions")
    @classmethod
    def _regions(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else regions.normalize(value)

    @model_validator(mode="after")
    def _no_nulls(self) -> SettingsPatch:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null: leave it out to keep its value")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


# An API key as stored (`shared.store.agency.KeyRow`), without its hash.
class KeyOut(FromRow):
    id: uuid.UUID
    name: str
    role: str
    prefix: str = Field(
        validation_alias="key_prefix", description="The key's first characters, to recognise it"
    )
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class KeyCreateIn(Body):
    name: str = Field(min_length=1, max_length=100)
    role: Literal["admin", "member"] = "member"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value)


class KeyCreatedOut(BaseModel):
    key: KeyOut
    api_key: str = Field(description="The new key. Shown once: store it now.")


class RotationOut(BaseModel):
    external_id: str
    accounts_needing_trust_update: list[AccountOut]
    next: str
