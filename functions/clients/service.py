"""Clients' use cases: list, read, create, edit (name, notes, accounts), delete.

An account belongs to at most one client: assigning one that another client holds is a 409
naming that client (move it by removing it there first), and the primary key of
`cao.client_accounts` holds the rule under concurrent edits too. Every change is audited in the
same transaction (`client.created`, `client.updated`, `client.deleted`). Deleting a client
deletes its budgets, not its accounts.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from functions.clients import schemas
from shared.db import Connection, is_unique_violation, tenant_tx
from shared.errors import ConflictError, NotFoundError
from shared.store import accounts, audit
from shared.store import clients as store


def list_all(conn: Connection, agency_id: uuid.UUID) -> schemas.ClientList:
    with tenant_tx(conn, agency_id):
        rows = store.list_all(conn, agency_id)
    return schemas.ClientList(items=[schemas.Client.model_validate(r) for r in rows])


def get(conn: Connection, agency_id: uuid.UUID, client_id: uuid.UUID) -> schemas.Client:
    with tenant_tx(conn, agency_id):
        row = store.get(conn, agency_id, client_id)
    if row is None:
        raise NotFoundError("client not found")
    return schemas.Client.model_validate(row)


def _check_accounts(
    conn: Connection, agency_id: uuid.UUID, client_id: uuid.UUID, account_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    wanted = list(dict.fromkeys(account_ids))
    found = accounts.aws_ids_of(conn, agency_id, wanted)
    missing = [a for a in wanted if a not in found]
    if missing:
        raise NotFoundError(f"account not found: {missing[0]}")
    taken = store.assigned_elsewhere(conn, agency_id, client_id, wanted)
    if taken:
        account, other = next(iter(taken.items()))
        raise ConflictError(
            f"account {account} belongs to client {other}: an account belongs to at most one"
            " client; remove it there first",
            code="account_has_client",
        )
    return wanted


def _check_name(
    conn: Connection, agency_id: uuid.UUID, name: str, other_than: uuid.UUID | None = None
) -> None:
    if store.name_taken(conn, agency_id, name, other_than):
        raise ConflictError(f"a client named {name!r} exists already", code="client_name_taken")


def create(
    conn: Connection, agency_id: uuid.UUID, actor: str, body: schemas.ClientCreate
) -> schemas.Client:
    try:
        with tenant_tx(conn, agency_id):
            if store.count(conn, agency_id) >= store.MAX_CLIENTS:
                raise ConflictError(
                    f"an agency can hold at most {store.MAX_CLIENTS} clients",
                    code="too_many_clients",
                )
            _check_name(conn, agency_id, body.name)
            client_id = store.insert(conn, agency_id, body.name, body.notes)
            wanted = _check_accounts(conn, agency_id, client_id, body.account_ids)
            store.set_accounts(conn, agency_id, client_id, wanted)
            audit.record(
                conn,
                agency_id,
                actor,
                "client.created",
                str(client_id),
                {"name": body.name, "accounts": [str(a) for a in wanted]},
            )
            row = store.get(conn, agency_id, client_id)
    except Exception as exc:
        if is_unique_violation(exc):
            raise ConflictError(
                "the client's name or an account was taken meanwhile: reload and retry",
                code="client_conflict",
            ) from exc
        raise
    assert row is not None
    return schemas.Client.model_validate(row)


def update(
    conn: Connection,
    agency_id: uuid.UUID,
    actor: str,
    client_id: uuid.UUID,
    body: schemas.ClientPatch,
) -> schemas.Client:
    try:
        with tenant_tx(conn, agency_id):
            before = store.get(conn, agency_id, client_id, lock=True)
            if before is None:
                raise NotFoundError("client not found")
            changed: dict[str, object] = {}
            if body.name is not None and body.name != before.name:
                _check_name(conn, agency_id, body.name, client_id)
                changed["name"] = body.name
            if body.notes is not None and body.notes != before.notes:
                changed["notes"] = True
            store.update(conn, agency_id, client_id, name=body.name, notes=body.notes)
            if body.account_ids is not None:
                wanted = _check_accounts(conn, agency_id, client_id, body.account_ids)
                store.set_accounts(conn, agency_id, client_id, wanted)
                added = sorted(str(a) for a in set(wanted) - set(before.account_ids))
                removed = sorted(str(a) for a in set(before.account_ids) - set(wanted))
                if added:
                    changed["accounts_added"] = added
                if removed:
                    changed["accounts_removed"] = removed
            audit.record(conn, agency_id, actor, "client.updated", str(client_id), changed)
            row = store.get(conn, agency_id, client_id)
    except Exception as exc:
        if is_unique_violation(exc):
            raise ConflictError(
                "the client's name or an account was taken meanwhile: reload and retry",
                code="client_conflict",
            ) from exc
        raise
    assert row is not None
    return schemas.Client.model_validate(row)


def delete(conn: Connection, agency_id: uuid.UUID, actor: str, client_id: uuid.UUID) -> None:
    with tenant_tx(conn, agency_id):
        row = store.get(conn, agency_id, client_id, lock=True)
        if row is None or not store.delete(conn, agency_id, client_id):
            raise NotFoundError("client not found")
        audit.record(conn, agency_id, actor, "client.deleted", str(client_id), {"name": row.name})
