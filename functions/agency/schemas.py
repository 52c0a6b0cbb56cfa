"""Agency settings: name, contact, default regions for new accounts, CloudTrail retention and
backfill. Billing fields are not settings: the request models forbid them (extra fields are
refused) and the store refuses any column outside `agencies.SETTINGS_COLUMNS`.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from pydantic import Field, field_validator, model_validator

from shared.auth import Caller
from shared.db import Connection, tenant_tx
from shared.errors import BadRequestError, NotFoundError
from shared.store import agencies, audit
from shared.store.agencies import AgencyRow
from shared.web import Body

from . import regions
from .signup import EMAIL

RETENTION_DAYS = (1, 365)
BACKFILL_DAYS = (1, 90)


def check_text(value: str) -> str:
    """Refuse control characters (Postgres text cannot hold NUL; the rest has no place in a
    name or alias either)."""
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def check_email(value: str) -> str:
    if not EMAIL.fullmatch(check_text(value)):
        raise ValueError("must be an email address such as ops@example.com")
    return value


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
        return None if value is None else check_text(value)

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


def read(conn: Connection, caller: Caller) -> AgencyRow:
    with tenant_tx(conn, caller.agency_id):
        row = agencies.get(conn, caller.agency_id)
    if row is None:
        raise NotFoundError("the agency no longer exists")
    return row


def update(conn: Connection, caller: Caller, patch: SettingsPatch) -> AgencyRow:
    caller.require_admin()
    changes = patch.changes()
    if not changes:
        raise BadRequestError(
            "nothing to change: send one or more of name, contact_email, default_regions, "
            "cloudtrail_retention_days, cloudtrail_backfill_days"
        )
    with tenant_tx(conn, caller.agency_id):
        row = agencies.update_settings(conn, caller.agency_id, changes)
        if row is None:
            raise NotFoundError("the agency no longer exists")
        # Field names only: the values (an email) need not be copied into the log.
        audit.record(
            conn, caller.agency_id, caller.actor, "agency.settings_changed", None,
            {"fields": sorted(changes)},
        )  # fmt: skip
    return row
