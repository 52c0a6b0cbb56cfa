"""Entitlements, through the dispatcher (cao.dispatch_due_jobs), and the admin view agreeing.

Billing state is set the way production sets it (signed Polar deliveries to the endpoint); the
question "does this agency sync at time t" is asked of the dispatcher itself: a sync job due now
for one of its accounts is, or is not, returned.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from functions.billing import plans
from functions.billing import service as state
from shared.db import tenant_tx
from shared.errors import PaymentRequiredError
from tests.billing.conftest import (
    PRODUCT_PRO,
    PRODUCT_STARTER,
    Deliverer,
    billing_row,
    member_headers,
)
from tests.support.factories import AgencyFixture, make_account, make_agency

_created_jobs: list[uuid.UUID] = []
_owner: list[psycopg.Connection[Any]] = []  # the owner connection of the running test


@pytest.fixture(autouse=True)
def _remove_created_jobs(owner_conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Jobs made here are deleted afterwards: other suites' dispatchers must not find them."""
    _created_jobs.clear()
    _owner[:] = [owner_conn]
    yield
    owner_conn.execute("DELETE FROM cao.sync_jobs WHERE id = ANY(%s)", (list(_created_jobs),))


def make_job(conn: psycopg.Connection[Any], agency_id: uuid.UUID) -> uuid.UUID:
    account = make_account(conn, agency_id)
    with tenant_tx(conn, agency_id):
        row = conn.execute(
            "INSERT INTO cao.sync_jobs (agency_id, account_id, kind) VALUES (%s, %s, 'costs')"
            " RETURNING id",
            (agency_id, account),
        ).fetchone()
    assert row is not None
    _created_jobs.append(row[0])
    return uuid.UUID(str(row[0]))


def dispatched(
    conn: psycopg.Connection[Any], agency_id: uuid.UUID, job_id: uuid.UUID, at: datetime
) -> bool:
    """Whether the dispatcher, run at `at`, hands out this job (made idle and due first).

    The dispatcher takes the time from the database (now()), never from its caller, so "at
    `at`" is staged by moving the agency's billing times back by `at - now()`, in a
    transaction of the owner's that is rolled back: nothing of it stays."""
    del conn
    owner = _owner[0]
    with owner.transaction(force_rollback=True):
        row = owner.execute("SELECT now()").fetchone()
        assert row is not None
        shift = at - row[0]
        owner.execute(
            "UPDATE cao.agencies SET trial_ends_at = trial_ends_at - %s,"
            " current_period_end = current_period_end - %s WHERE id = %s",
            (shift, shift, agency_id),
        )
        owner.execute(
            "UPDATE cao.sync_jobs SET state = 'idle', next_run_at = now() - interval '1 minute'"
            " WHERE id = %s",
            (job_id,),
        )
        rows = owner.execute("SELECT job_id FROM cao.dispatch_due_jobs('costs', 10000)").fetchall()
    return job_id in {r[0] for r in rows}


def entitled_in_view(conn: psycopg.Connection[Any], agency_id: uuid.UUID, at: datetime) -> bool:
    return state.view(conn, agency_id, now=at).entitled


NOW = datetime.now(UTC)


def test_a_trial_syncs_until_its_end_and_not_after(
    agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    job = make_job(app_conn, agency.id)
    trial_end = billing_row(app_conn, agency.id)["trial_ends_at"]
    assert trial_end > NOW
    assert dispatched(app_conn, agency.id, job, NOW)
    assert dispatched(app_conn, agency.id, job, trial_end - timedelta(seconds=1))
    assert not dispatched(app_conn, agency.id, job, trial_end + timedelta(seconds=1))


@pytest.mark.parametrize("event_type", ["subscription.active", "subscription.past_due"])
def test_active_and_past_due_agencies_sync(
    event_type: str,
    deliver: Deliverer,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
) -> None:
    job = make_job(app_conn, agency.id)
    deliver.send(agency.id, event_type, period_end=NOW + timedelta(days=30))
    assert dispatched(app_conn, agency.id, job, NOW)
    # Long after our own trial would have ended, and past the period (renewals extend it).
    assert dispatched(app_conn, agency.id, job, NOW + timedelta(days=60))


def test_a_canceled_agency_syncs_until_the_period_ends(
    deliver: Deliverer, agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    job = make_job(app_conn, agency.id)
    period_end = NOW + timedelta(days=3)
    deliver.send(agency.id, "subscription.active", period_end=period_end)
    deliver.send(agency.id, "subscription.canceled", period_end=period_end)
    assert billing_row(app_conn, agency.id)["billing_status"] == "canceled"
    assert dispatched(app_conn, agency.id, job, NOW)
    assert dispatched(app_conn, agency.id, job, period_end - timedelta(seconds=1))
    assert not dispatched(app_conn, agency.id, job, period_end + timedelta(seconds=1))


def test_a_revoked_agency_is_not_dispatched_at_once(
    deliver: Deliverer, agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    job = make_job(app_conn, agency.id)
    deliver.send(agency.id, "subscription.active", period_end=NOW + timedelta(days=20))
    assert dispatched(app_conn, agency.id, job, NOW)
    deliver.send(agency.id, "subscription.revoked", period_end=NOW + timedelta(days=20))
    # Still inside the paid period and the trial: revocation stops syncing now regardless.
    assert not dispatched(app_conn, agency.id, job, NOW)


STATES = [
    ([], {}),
    (["subscription.active"], {}),
    (["subscription.past_due"], {}),
    (["subscription.active", "subscription.canceled"], {}),
    (["subscription.active", "subscription.revoked"], {}),
    (["subscription.updated"], {"status": "unpaid"}),
    (["subscription.updated"], {"status": "paused"}),
]


@pytest.mark.parametrize(("events", "fields"), STATES)
@pytest.mark.parametrize("days", [0, 20, 400])
def test_the_admin_view_and_the_dispatcher_agree_on_entitlement(
    events: list[str],
    fields: dict[str, Any],
    days: int,
    deliver: Deliverer,
    app_conn: psycopg.Connection[Any],
) -> None:
    agency = make_agency(app_conn)
    job = make_job(app_conn, agency.id)
    for event_type in events:
        deliver.send(agency.id, event_type, period_end=NOW + timedelta(days=10), **fields)
    at = NOW + timedelta(days=days)
    assert entitled_in_view(app_conn, agency.id, at) == dispatched(app_conn, agency.id, job, at)


def test_admins_see_the_billing_state(
    client: TestClient, deliver: Deliverer, agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    make_account(app_conn, agency.id)
    fresh = client.get("/api/billing", headers=agency.headers)
    assert fresh.status_code == 200, fresh.text
    body = fresh.json()
    assert (body["status"], body["plan"], body["entitled"]) == ("trialing", "trial", True)
    assert body["max_accounts"] == plans.TRIAL.max_accounts and body["linked_accounts"] == 1
    assert body["trial_ends_at"] is not None
    assert {p["name"] for p in body["plans"]} == {p.name for p in plans.PLANS}
    deliver.send(agency.id, "subscription.active", product_id=PRODUCT_PRO)
    body = client.get("/api/billing", headers=agency.headers).json()
    assert (body["status"], body["plan"], body["max_accounts"]) == ("active", "pro", 50)
    assert body["polar_customer_id"] == "cus_demo_0001"
    assert body["trial_ends_at"] is None


def test_members_and_strangers_do_not_see_billing(
    client: TestClient, agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    assert client.get("/api/billing").status_code == 401
    member = member_headers(app_conn, agency.id)
    response = client.get("/api/billing", headers=member)
    assert response.status_code == 403


# ---- plan limit at linking -------------------------------------------------------------------


def test_linking_beyond_the_plan_limit_is_refused_with_402(
    agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    for _ in range(plans.TRIAL.max_accounts - 1):
        make_account(app_conn, agency.id)
    plans.check_account_limit(app_conn, agency.id)  # the last slot is free
    make_account(app_conn, agency.id)
    with pytest.raises(PaymentRequiredError) as err:
        plans.check_account_limit(app_conn, agency.id)
    assert err.value.status == 402 and err.value.code == "plan_limit_reached"
    assert "upgrade" in err.value.message


def test_a_bigger_plan_raises_the_limit(
    deliver: Deliverer, agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    for _ in range(plans.TRIAL.max_accounts):
        make_account(app_conn, agency.id)
    with pytest.raises(PaymentRequiredError):
        plans.check_account_limit(app_conn, agency.id)
    deliver.send(agency.id, "subscription.active", product_id=PRODUCT_STARTER)
    plans.check_account_limit(app_conn, agency.id)


def test_a_revoked_agency_cannot_link_accounts(
    deliver: Deliverer, agency: AgencyFixture, app_conn: psycopg.Connection[Any]
) -> None:
    deliver.send(agency.id, "subscription.revoked")
    with pytest.raises(PaymentRequiredError) as err:
        plans.check_account_limit(app_conn, agency.id)
    assert err.value.code == "billing_inactive"


def test_the_limit_check_holds_the_agency_lock_inside_the_linking_transaction(
    agency: AgencyFixture, app_conn: psycopg.Connection[Any], database: Any
) -> None:
    with app_conn.transaction():
        plans.check_account_limit(app_conn, agency.id)
        with database.owner() as other:
            other.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("SELECT 1 FROM cao.agencies WHERE id = %s FOR UPDATE", (agency.id,))
