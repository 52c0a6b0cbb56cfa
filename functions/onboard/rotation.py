"""ExternalId rotation: a new current value for the agency, without breaking every sync at once.

Rotation retires the current value and makes a fresh one current. Accounts keep the reference
to the value they were last verified with (`accounts.external_id_id`), and syncs assume roles
with that value, so nothing stops working. Each account shows `needs_trust_update` until its
trust policy carries the new value and it verifies with it (POST /api/accounts/{id}/verify, or
the weekly probe), which moves its reference to the current value. Retired values that no
account references any more are deleted, so old secrets do not linger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.auth import Caller
from shared.db import Connection, is_unique_violation, tenant_tx
from shared.store import accounts, agencies, audit
from shared.store.accounts import AccountRow
from shared.store.agencies import ExternalIdRow

from . import externalid

_ATTEMPTS = 3


@dataclass(frozen=True, repr=False)
class Rotation:
    external_id: ExternalIdRow
    needing_trust_update: list[AccountRow]

    def __repr__(self) -> str:
        return f"Rotation(external_id_id={self.external_id.id})"


def rotate(conn: Connection, caller: Caller, now: datetime) -> Rotation:
    caller.require_admin()
    for attempt in range(_ATTEMPTS):
        try:
            with tenant_tx(conn, caller.agency_id):
                current = agencies.rotate_external_id(
                    conn, caller.agency_id, externalid.generate(), now
                )
                agencies.purge_unused_external_ids(conn, caller.agency_id)
                pending = accounts.list_needing_trust_update(conn, caller.agency_id)
                audit.record(
                    conn,
                    caller.agency_id,
                    caller.actor,
                    "external_id.rotated",
                    str(current.id),
                    {"accounts_needing_trust_update": len(pending)},
                )
        except Exception as exc:
            if not is_unique_violation(exc) or attempt == _ATTEMPTS - 1:
                raise
            continue
        return Rotation(current, pending)
    raise AssertionError("unreachable")


def pending_trust_updates(conn: Connection, caller: Caller) -> list[AccountRow]:
    with tenant_tx(conn, caller.agency_id):
        return accounts.list_needing_trust_update(conn, caller.agency_id)
