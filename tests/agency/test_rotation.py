"""ExternalId rotation against the simulated AWS.

After a rotation each account keeps working with the ExternalId it was verified with; the
agency sees which accounts still need their trust policy updated; an account verifies onto the
new value once its trust policy has it.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from devstack.simaws import SimulatedAws
from functions.onboard import templates
from shared.policy import trust_policy
from tests.conftest import CAO_ACCOUNT_ID
from tests.support.factories import AgencyFixture
from tests.support.onboarding import (
    install_role,
    link_role,
    new_account_id,
    set_trust_policy,
    verify_account,
)

Conn = psycopg.Connection[Any]


@pytest.fixture
def client(linking_client: TestClient) -> TestClient:
    """These tests link roles: a client that calls the simulated AWS as cao-service."""
    return linking_client


def _stored_external_id(owner_conn: Conn, account_id: str) -> str:
    row = owner_conn.execute(
        "SELECT e.value FROM cao.accounts a JOIN cao.external_ids e ON e.id = a.external_id_id"
        " WHERE a.id = %s",
        (account_id,),
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_rotation_with_some_accounts_updated_and_some_not(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    aws_ids = [new_account_id() for _ in range(3)]
    linked = [link_role(client, agency, install_role(sim, a, agency.external_id)) for a in aws_ids]

    r = client.post("/api/agency/external-id/rotate", headers=agency.headers)
    assert r.status_code == 200, r.text
    new_value = r.json()["external_id"]
    assert new_value != agency.external_id
    pending = {a["id"] for a in r.json()["accounts_needing_trust_update"]}
    assert pending == {a["id"] for a in linked}

    onboarding = client.get("/api/onboarding", headers=agency.headers).json()
    assert onboarding["external_id"] == new_value
    assert onboarding["trust_policy"] == trust_policy(CAO_ACCOUNT_ID, new_value)

    # The client of account 0 updates its trust policy to the new value; account 1 lists both
    # values during the transition; account 2 does nothing yet.
    role = templates.ROLE_NAME
    set_trust_policy(aws_ids[0], role, trust_policy(CAO_ACCOUNT_ID, new_value))
    both = trust_policy(CAO_ACCOUNT_ID, new_value)
    both["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"] = [
        agency.external_id,
        new_value,
    ]
    set_trust_policy(aws_ids[1], role, both)

    results = [verify_account(client, agency, a["id"]) for a in linked]
    assert [x.status_code for x in results] == [200, 200, 200]
    assert [x.json()["status"] for x in results] == ["active", "active", "needs_trust_update"]
    assert [x.json()["needs_trust_update"] for x in results] == [False, False, True]
    assert "previous ExternalId" in results[2].json()["status_message"]

    # Accounts 0 and 1 now assume with the new value; account 2 keeps the old one, so its
    # syncs do not break while its client catches up.
    assert _stored_external_id(owner_conn, linked[0]["id"]) == new_value
    assert _stored_external_id(owner_conn, linked[1]["id"]) == new_value
    assert _stored_external_id(owner_conn, linked[2]["id"]) == agency.external_id

    onboarding = client.get("/api/onboarding", headers=agency.headers).json()
    assert [a["id"] for a in onboarding["accounts_needing_trust_update"]] == [linked[2]["id"]]

    # Account 2 catches up: it moves to the new value and the old value is deleted.
    set_trust_policy(aws_ids[2], role, trust_policy(CAO_ACCOUNT_ID, new_value))
    last = verify_account(client, agency, linked[2]["id"])
    assert last.json()["status"] == "active" and last.json()["needs_trust_update"] is False
    values = owner_conn.execute(
        "SELECT value FROM cao.external_ids WHERE agency_id = %s", (agency.id,)
    ).fetchall()
    assert values == [(new_value,)]


def test_rotating_twice_keeps_the_value_accounts_were_verified_with(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    account = link_role(client, agency, install_role(sim, new_account_id(), agency.external_id))
    for _ in range(2):
        assert (
            client.post("/api/agency/external-id/rotate", headers=agency.headers).status_code == 200
        )
    assert verify_account(client, agency, account["id"]).json()["status"] == "needs_trust_update"
    assert _stored_external_id(owner_conn, account["id"]) == agency.external_id
    # The value in between was never used by an account: it is gone.
    count = owner_conn.execute(
        "SELECT count(*) FROM cao.external_ids WHERE agency_id = %s", (agency.id,)
    ).fetchone()
    assert count == (2,)
