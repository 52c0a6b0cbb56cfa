"""Runbooks: markdown per agency, optionally attached to one of its accounts, versioned.

Every update keeps the previous state in `runbook_versions` and bumps `version`. Edits are
conditional: the client names the version it edited, either as `If-Match: "v<version>"` (the
ETag of GET) or as `version` in the body; a stale one is refused (412 for If-Match, 409 for the
body field) so that one editor never silently overwrites another. Changes are audited in the
same transaction.

Bounded per agency: at most MAX_RUNBOOKS runbooks (a further one is a 409), and the newest
MAX_VERSIONS_KEPT previous versions of each (older ones are dropped as new ones are saved; the
audit log keeps the record of every change). With 64 KiB bodies, an agency holds at most
~MAX_RUNBOOKS x (MAX_VERSIONS_KEPT + 1) x 64 KiB of runbook text.
"""

from __future__ import annotations

import uuid

from functions.runbooks import schemas
from shared.db import Connection, tenant_tx
from shared.errors import (
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    PreconditionRequiredError,
    UnprocessableError,
)
from shared.kit.pages import decode_int_cursor, decode_uuid_cursor, split_page
from shared.store import accounts, audit
from shared.store import runbooks as store

MAX_RUNBOOKS = 500  # per agency
MAX_VERSIONS_KEPT = 25  # previous versions kept per runbook


def etag(version: int) -> str:
    return f'"v{version}"'


def if_match_allows(header: str, version: int) -> bool:
    """RFC 9110 If-Match: `*` or a list of strong entity tags, one of which is current."""
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag(version) in tags


def _check_account(conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID | None) -> None:
    if account_id is not None and not accounts.aws_ids_of(conn, agency_id, [account_id]):
        raise NotFoundError(f"account not found: {account_id}")


def create(
    conn: Connection, agency_id: uuid.UUID, actor: str, body: schemas.RunbookCreate
) -> schemas.Runbook:
    with tenant_tx(conn, agency_id):
        _check_account(conn, agency_id, body.account_id)
        if store.lock_and_count(conn, agency_id) >= MAX_RUNBOOKS:
            raise ConflictError(
                f"an agency can hold at most {MAX_RUNBOOKS} runbooks: delete unused ones first",
                code="too_many_runbooks",
            )
        row = store.insert(
            conn, agency_id, title=body.title, body=body.body, account_id=body.account_id
        )
        audit.record(
            conn,
            agency_id,
            actor,
            "runbook.created",
            str(row.id),
            {"version": row.version, "body_chars": len(row.body)},
        )
    return schemas.Runbook.model_validate(row)


def get(conn: Connection, agency_id: uuid.UUID, runbook_id: uuid.UUID) -> schemas.Runbook:
    with tenant_tx(conn, agency_id):
        row = store.get(conn, agency_id, runbook_id)
    if row is None:
        raise NotFoundError("runbook not found")
    return schemas.Runbook.model_validate(row)


def list_page(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    account_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> schemas.RunbookPage:
    after = None
    if cursor is not None:
        after = decode_uuid_cursor("runbooks", cursor)
    with tenant_tx(conn, agency_id):
        _check_account(conn, agency_id, account_id)
        rows = store.page(conn, agency_id, account_id=account_id, after=after, limit=limit + 1)
    page, next_cursor = split_page(rows, limit, "runbooks", lambda r: (r.updated_at, str(r.id)))
    return schemas.RunbookPage(
        items=[schemas.RunbookListItem.model_validate(r) for r in page],
        next_cursor=next_cursor,
    )


def update(
    conn: Connection,
    agency_id: uuid.UUID,
    actor: str,
    runbook_id: uuid.UUID,
    patch: schemas.RunbookPatch,
    *,
    if_match: str | None,
) -> schemas.Runbook:
    changed = patch.model_fields_set - {"version"}
    with tenant_tx(conn, agency_id):
        current = store.get(conn, agency_id, runbook_id, lock=True)
        if current is None:  # first: another agency's id is a 404 whatever else is wrong
            raise NotFoundError("runbook not found")
        account_id = patch.account_id if "account_id" in changed else current.account_id
        if "account_id" in changed:
            _check_account(conn, agency_id, account_id)
        if if_match is None and patch.version is None:
            raise PreconditionRequiredError(
                'say which version you edited: send If-Match: "v<version>" (the ETag of GET)'
                " or a version field"
            )
        if not changed:
            raise UnprocessableError(
                "nothing to change: send title, body or account_id", code="invalid_request"
            )
        for name in ("title", "body"):
            if name in changed and getattr(patch, name) is None:
                raise UnprocessableError(f"{name}: must not be null", code="invalid_request")
        if if_match is not None and not if_match_allows(if_match, current.version):
            raise PreconditionFailedError(
                f"the runbook is at version {current.version} (ETag {etag(current.version)}):"
                " reload it, merge your change, and retry"
            )
        if patch.version is not None and patch.version != current.version:
            raise ConflictError(
                f"the runbook is at version {current.version}, you edited version"
                f" {patch.version}: reload it, merge your change, and retry",
                code="version_conflict",
            )
        title = patch.title if patch.title is not None else current.title
        body = patch.body if patch.body is not None else current.body
        if (title, body, account_id) == (current.title, current.body, current.account_id):
            return schemas.Runbook.model_validate(current)  # nothing differs: no new version
        store.save_version(conn, agency_id, current, keep=MAX_VERSIONS_KEPT)
        row = store.update(
            conn,
            agency_id,
            runbook_id,
            title=title,
            body=body,
            account_id=account_id,
            version=current.version + 1,
        )
        assert row is not None  # locked above, in this transaction
        audit.record(
            conn,
            agency_id,
            actor,
            "runbook.updated",
            str(runbook_id),
            {"version": row.version, "fields": sorted(changed)},
        )
    return schemas.Runbook.model_validate(row)


def delete(
    conn: Connection,
    agency_id: uuid.UUID,
    actor: str,
    runbook_id: uuid.UUID,
    *,
    if_match: str | None,
) -> None:
    with tenant_tx(conn, agency_id):
        current = store.get(conn, agency_id, runbook_id, lock=True)
        if current is None:
            raise NotFoundError("runbook not found")
        if if_match is not None and not if_match_allows(if_match, current.version):
            raise PreconditionFailedError(
                f"the runbook is at version {current.version} (ETag {etag(current.version)})"
            )
        store.delete(conn, agency_id, runbook_id)
        audit.record(
            conn, agency_id, actor, "runbook.deleted", str(runbook_id), {"version": current.version}
        )


def versions_page(
    conn: Connection,
    agency_id: uuid.UUID,
    runbook_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
) -> schemas.RunbookVersionPage:
    before = None
    if cursor is not None:
        # Versions are int4 in the database.
        before = decode_int_cursor("versions", cursor, max_value=2**31 - 1)[1]
    with tenant_tx(conn, agency_id):
        if store.get(conn, agency_id, runbook_id) is None:
            raise NotFoundError("runbook not found")
        rows = store.page_versions(conn, agency_id, runbook_id, before=before, limit=limit + 1)
    page, next_cursor = split_page(rows, limit, "versions", lambda r: (r.saved_at, str(r.version)))
    return schemas.RunbookVersionPage(
        items=[schemas.RunbookVersionItem.model_validate(r) for r in page],
        next_cursor=next_cursor,
    )


def get_version(
    conn: Connection, agency_id: uuid.UUID, runbook_id: uuid.UUID, version: int
) -> schemas.RunbookVersion:
    with tenant_tx(conn, agency_id):
        row = store.get_version(conn, agency_id, runbook_id, version)
    if row is None:
        raise NotFoundError("runbook version not found")
    return schemas.RunbookVersion.model_validate(row)
