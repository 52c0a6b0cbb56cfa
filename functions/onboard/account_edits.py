"""Changes to a linked account that need no AWS call: alias and regions, and unlinking.

Kept apart from `linking` (which loads botocore) so these handlers stay light.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import Field, field_validator, model_validator

from shared.auth import Caller
from shared.db import Connection, tenant_tx
from shared.errors import BadRequestError, NotFoundError
from shared.store import accounts, agencies, audit
from shared.store.accounts import AccountRow
from shared.web import Body

from . import regions as region_names
from .agency_settings import check_text


class AccountPatch(Body):
    """alias (null clears it) and/or regions (null: back to the agency's default regions)."""

    alias: str | None = Field(default=None, min_length=1, max_length=100)
    regions: list[str] | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else region_names.normalize(value)

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value)

    @model_validator(mode="after")
    def _something(self) -> AccountPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change: send alias and/or regions")
        return self


def update_account(
    conn: Connection, caller: Caller, account_id: uuid.UUID, patch: AccountPatch
) -> AccountRow:
    caller.require_admin()
    changes: dict[str, Any] = {name: getattr(patch, name) for name in patch.model_fields_set}
    if not changes:  # pragma: no cover - the model refuses an empty patch
        raise BadRequestError("nothing to change: send alias and/or regions")
    with tenant_tx(conn, caller.agency_id):
        if "regions" in changes and changes["regions"] is None:
            agency = agencies.get(conn, caller.agency_id)
            changes["regions"] = list(agency.default_regions) if agency else None
        row = accounts.update(conn, caller.agency_id, account_id, **changes)
        if row is None:
            raise NotFoundError("no such account in this agency")
        audit.record(
            conn,
            caller.agency_id,
            caller.actor,
            "account.updated",
            str(account_id),
            {"fields": sorted(changes), "regions": row.regions},
        )
    return row


def unlink_account(conn: Connection, caller: Caller, account_id: uuid.UUID) -> AccountRow:
    """Delete the account and all its synced data (cascade), audited.

    Not idempotent in its answer: a second call finds nothing and answers 404 (the data is
    gone either way; nothing else changes).
    """
    caller.require_admin()
    with tenant_tx(conn, caller.agency_id):
        gone = accounts.delete(conn, caller.agency_id, account_id)
        if gone is None:
            raise NotFoundError("no such account in this agency (already unlinked?)")
        agencies.purge_unused_external_ids(conn, caller.agency_id)
        audit.record(
            conn,
            caller.agency_id,
            caller.actor,
            "account.unlinked",
            str(account_id),
            {"aws_account_id": gone.aws_account_id, "role_arn": gone.role_arn},
        )
    return gone
