"""Billing state of an agency (Polar), webhook delivery records, and linked-account counts.

Every function takes a connection already inside a transaction and never commits. Reads and
writes of an agency's billing columns run inside `tenant_tx` (row-level security shows that
agency only); `agency_exists` and `record_delivery` are the cross-tenant SECURITY DEFINER paths a
webhook needs, since Polar's delivery names the agency before any tenant is set.

Entitlement is decided in ONE place, the SQL function `cao.is_entitled`, which the dispatcher
also uses: `read_state` selects it beside the columns instead of re-implementing it here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.db import Connection

_COLUMNS = (
    "a.billing_status, a.plan, a.trial_ends_at, a.polar_customer_id, a.polar_subscription_id,"
    " a.current_period_end, a.billing_event_at"
)


@dataclass(frozen=True)
class BillingState:
    """The billing columns of one agency: what webhooks change and admins see."""

    status: str
    plan: str
    trial_ends_at: datetime
    polar_customer_id: str | None
    polar_subscription_id: str | None
    current_period_end: datetime | None
    billing_event_at: datetime | None


@dataclass(frozen=True)
class BillingRow:
    """The billing state plus what is derived from it in SQL at a given instant."""

    state: BillingState
    entitled: bool
    linked_accounts: int


def read_state(conn: Connection, agency_id: uuid.UUID, now: datetime) -> BillingRow | None:
    """The agency's billing state, whether `cao.is_entitled` lets it sync at `now`, and how
    many accounts it has linked; None when the agency does not exist."""
    row = conn.execute(
        f"SELECT {_COLUMNS}, cao.is_entitled(a, %s),"  # noqa: S608 - constant column list
        " (SELECT count(*) FROM cao.accounts c WHERE c.agency_id = a.id)"
        " FROM cao.agencies a WHERE a.id = %s",
        (now, agency_id),
    ).fetchone()
    if row is None:
        return None
    return BillingRow(BillingState(*row[:7]), bool(row[7]), int(row[8]))


def lock_state(conn: Connection, agency_id: uuid.UUID) -> BillingState | None:
    """The billing state, with the agency row locked until the transaction ends (webhooks for
    one agency apply one at a time, so the out-of-order check and the write cannot interleave)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM cao.agencies a WHERE a.id = %s FOR UPDATE",  # noqa: S608
        (agency_id,),
    ).fetchone()
    return None if row is None else BillingState(*row)


def write_state(conn: Connection, agency_id: uuid.UUID, state: BillingState) -> bool:
    """Store `state` as the agency's billing columns; False when the agency is gone. Call it
    inside the agency's tenant_tx: the app role may not write these columns itself, the SECURITY
    DEFINER function `cao.set_billing_state` writes the current tenant's."""
    row = conn.execute(
        "SELECT cao.set_billing_state(%s, %s, %s, %s, %s, %s, %s)",
        (
            state.status,
            state.plan,
            state.trial_ends_at,
            state.polar_customer_id,
            state.polar_subscription_id,
            state.current_period_end,
            state.billing_event_at,
        ),
    ).fetchone()
    return bool(row and row[0])


def lock_for_linking(conn: Connection, agency_id: uuid.UUID, now: datetime) -> BillingRow | None:
    """Like `read_state`, with the agency row locked: two concurrent links of one agency then
    count accounts one after the other, so they cannot both take the last slot of a plan."""
    locked = conn.execute(
        "SELECT 1 FROM cao.agencies WHERE id = %s FOR UPDATE", (agency_id,)
    ).fetchone()
    if locked is None:
        return None
    return read_state(conn, agency_id, now)


def agency_exists(conn: Connection, agency_id: uuid.UUID) -> bool:
    row = conn.execute("SELECT cao.agency_exists(%s)", (agency_id,)).fetchone()
    return bool(row and row[0])


def record_delivery(
    conn: Connection, webhook_id: str, event_type: str, agency_id: uuid.UUID | None
) -> bool:
    """Record a webhook delivery id; True for its first delivery. Call it in the transaction
    that applies the effect: a concurrent duplicate waits on the primary key until that
    transaction ends, then gets False (or True, if the first one rolled back)."""
    row = conn.execute(
        "SELECT cao.record_webhook(%s, %s, %s)", (webhook_id, event_type, agency_id)
    ).fetchone()
    return bool(row and row[0])
