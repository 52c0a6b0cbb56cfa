"""Rows the sync issues would write, inserted directly as the app role inside a tenant
transaction (row-level security applies to these inserts as to the app's own)."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from shared import auth

Conn = psycopg.Connection[Any]


@contextmanager
def tenant(conn: Conn, agency_id: uuid.UUID) -> Iterator[Conn]:
    with conn.transaction():
        conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(agency_id),))
        yield conn


def insert(conn: Conn, agency_id: uuid.UUID, table: str, **cols: Any) -> Any:
    """One row into cao.<table> for the agency; returns the first column of RETURNING *."""
    cols = {"agency_id": agency_id, **cols}
    query = sql.SQL("INSERT INTO cao.{} ({}) VALUES ({}) RETURNING *").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        sql.SQL(", ").join(sql.Placeholder() for _ in cols),
    )
    with tenant(conn, agency_id):
        row = conn.execute(query, list(cols.values())).fetchone()
    assert row is not None
    return row[0]


def add_cost(
    conn: Conn,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    usage_account_id: str,
    month: date,
    service: str,
    amount: str,
    *,
    metric: str = "UnblendedCost",
    estimated: bool = False,
    currency: str = "USD",
) -> None:
    insert(
        conn,
        agency_id,
        "cost_rows",
        account_id=account_id,
        usage_account_id=usage_account_id,
        month=month,
        service=service,
        metric=metric,
        amount=Decimal(amount),
        currency=currency,
        estimated=estimated,
    )


def add_events(
    conn: Conn,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    aws_account_id: str,
    events: Iterable[Mapping[str, Any]],
) -> list[int]:
    """Access events (dicts with event_time and optionally event_name, principal_arn,
    principal_name, source_ip, is_vendor, region, event_id); returns their ids in order."""
    ids = []
    with tenant(conn, agency_id):
        for e in events:
            row = conn.execute(
                "INSERT INTO cao.access_events (agency_id, account_id, aws_account_id, region,"
                " event_id, event_time, event_name, principal_arn, principal_name, source_ip,"
                " is_vendor) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    agency_id,
                    account_id,
                    aws_account_id,
                    e.get("region", "us-east-1"),
                    e.get("event_id") or secrets.token_hex(16),
                    e["event_time"],
                    e.get("event_name", "DescribeInstances"),
                    e.get("principal_arn"),
                    e.get("principal_name"),
                    e.get("source_ip"),
                    e.get("is_vendor", False),
                ),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
    return ids


def event(at: datetime, **fields: Any) -> dict[str, Any]:
    return {"event_time": at, **fields}


def all_rows_of(owner: Conn, agency_id: uuid.UUID) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the agency in every table that names it (as the owner: no RLS), sorted,
    for before/after comparisons. last_used_at changes when a key authenticates: left out."""
    tables = [
        r[0]
        for r in owner.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = 'cao'"
            " AND column_name = 'agency_id' ORDER BY 1"
        )
    ]
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table, column in [("agencies", "id"), *((t, "agency_id") for t in tables)]:
        cols = [
            r[0]
            for r in owner.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'cao' AND table_name = %s ORDER BY ordinal_position",
                (table,),
            )
            if r[0] != "last_used_at"
        ]
        rows = owner.execute(
            sql.SQL("SELECT {} FROM cao.{} WHERE {} = %s").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in cols),
                sql.Identifier(table),
                sql.Identifier(column),
            ),
            (agency_id,),
        ).fetchall()
        out[table] = sorted(rows, key=repr)
    return out


def add_people(conn: Conn, agency_id: uuid.UUID, marker: str) -> dict[str, Any]:
    """An admin user of the agency with a passkey, a live session (its token returned), an
    open invitation and an open enrolment: ids by kind, and `session_token`."""
    now = datetime.now(UTC)
    user = insert(
        conn,
        agency_id,
        "users",
        email=f"{marker.lower()}-{secrets.token_hex(4)}@example.com",
        name=f"{marker}-person",
        role="admin",
    )
    passkey = insert(
        conn,
        agency_id,
        "passkeys",
        user_id=user,
        credential_id=secrets.token_bytes(32),
        public_key=secrets.token_bytes(77),
        name=f"{marker}-passkey",
    )
    session_token = auth.generate_token()
    session = insert(
        conn,
        agency_id,
        "sessions",
        user_id=user,
        passkey_id=passkey,
        token_hash=auth.hash_token(session_token),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(days=7),
    )
    invitation = insert(
        conn,
        agency_id,
        "invitations",
        kind="invite",
        email=f"{marker.lower()}-invitee-{secrets.token_hex(4)}@example.com",
        role="member",
        token_hash=auth.hash_token(auth.generate_token()),
        created_by="test",
        created_at=now,
        expires_at=now + timedelta(days=7),
    )
    insert(
        conn,
        agency_id,
        "enrolments",
        user_id=user,
        token_hash=auth.hash_token(auth.generate_token()),
        created_at=now,
        expires_at=now + timedelta(minutes=15),
    )
    return {
        "user": user,
        "passkey": passkey,
        "session": session,
        "invitation": invitation,
        "session_token": session_token,
    }
