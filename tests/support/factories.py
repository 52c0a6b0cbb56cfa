"""Factories for test data, each with unique values so tests never collide."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from functions.onboard import externalid
from shared import auth


@dataclass(frozen=True)
class AgencyFixture:
    id: uuid.UUID
    api_key: str
    key_id: uuid.UUID
    external_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def make_agency(conn: psycopg.Connection[Any], name: str | None = None) -> AgencyFixture:
    """An agency created the way sign-up creates one (through cao.create_agency)."""
    key = auth.generate_key()
    external_id = externalid.generate()  # as sign-up makes them: the real length and alphabet
    with conn.transaction():
        row = conn.execute(
            "SELECT agency_id, key_id FROM cao.create_agency(%s, %s, %s, %s, %s)",
            (
                name or f"Agency {secrets.token_hex(3)}",
                f"ops+{secrets.token_hex(3)}@example.com",
                external_id,
                key.key_hash,
                key.display_prefix,
            ),
        ).fetchone()
    assert row is not None
    return AgencyFixture(row[0], key.plaintext, row[1], external_id)


def make_account(
    conn: psycopg.Connection[Any],
    agency_id: uuid.UUID,
    aws_account_id: str | None = None,
    **fields: Any,
) -> uuid.UUID:
    """A linked account row, inserted directly (linking itself is tested in onboarding)."""
    aws_account_id = aws_account_id or f"{secrets.randbelow(10**12):012d}"
    with conn.transaction():
        conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(agency_id),))
        ext = conn.execute(
            "SELECT id FROM cao.external_ids WHERE agency_id = %s AND retired_at IS NULL",
            (agency_id,),
        ).fetchone()
        assert ext is not None
        cols = {
            "agency_id": agency_id,
            "aws_account_id": aws_account_id,
            "role_arn": f"arn:aws:iam::{aws_account_id}:role/CloudAgencyOpsReadOnly",
            "external_id_id": ext[0],
            **fields,
        }
        names = ", ".join(cols)
        marks = ", ".join(["%s"] * len(cols))
        row = conn.execute(
            f"INSERT INTO cao.accounts ({names}) VALUES ({marks}) RETURNING id",
            list(cols.values()),
        ).fetchone()
    assert row is not None
    return row[0]


def make_api_key(
    conn: psycopg.Connection[Any],
    agency_id: uuid.UUID,
    role: str = "member",
    *,
    revoked: bool = False,
) -> str:
    """A further API key of the agency (plaintext returned), inserted directly."""
    key = auth.generate_key()
    with conn.transaction():
        conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(agency_id),))
        conn.execute(
            "INSERT INTO cao.api_keys (agency_id, name, role, key_hash, key_prefix, revoked_at)"
            " VALUES (%s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)",
            (agency_id, f"{role} key", role, key.key_hash, key.display_prefix, revoked),
        )
    return key.plaintext
