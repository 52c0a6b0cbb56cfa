"""Edits of a linked account (alias, regions) and unlinking, which deletes all its data."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from devstack.simaws import SimulatedAws
from tests.support.factories import AgencyFixture
from tests.support.onboarding import install_role, link_role, new_account_id

Conn = psycopg.Connection[Any]


@pytest.fixture
def client(linking_client: TestClient) -> TestClient:
    """These tests link roles: a client that calls the simulated AWS as cao-service."""
    return linking_client


def test_admins_change_alias_and_regions_and_unlinking_deletes_all_account_data(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    account = link_role(client, agency, install_role(sim, new_account_id(), agency.external_id))
    r = client.patch(
        f"/api/accounts/{account['id']}",
        json={"alias": "Prod", "regions": ["eu-west-1", "us-east-1", "eu-west-1"]},
        headers=agency.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["alias"] == "Prod" and r.json()["regions"] == ["eu-west-1", "us-east-1"]
    bad = client.patch(
        f"/api/accounts/{account['id']}", json={"regions": ["nowhere-1"]}, headers=agency.headers
    )
    assert bad.status_code == 422
    assert (
        client.patch(f"/api/accounts/{account['id']}", json={}, headers=agency.headers).status_code
        == 422
    )
    for body in ({"external_id": "x-1"}, {"agency_id": str(agency.id)}, {"status": "active"}):
        r = client.patch(f"/api/accounts/{account['id']}", json=body, headers=agency.headers)
        assert r.status_code == 422, body

    # Synced data of the account (inserted directly: the syncs are tested elsewhere).
    owner_conn.execute(
        "INSERT INTO cao.cost_rows (agency_id, account_id, usage_account_id, month, service,"
        " metric, amount, currency, estimated) VALUES (%s, %s, %s, '2026-01-01', 'Amazon EC2',"
        " 'UnblendedCost', 12.5, 'USD', false)",
        (agency.id, account["id"], account["aws_account_id"]),
    )
    owner_conn.execute(
        "INSERT INTO cao.access_events (agency_id, account_id, aws_account_id, region, event_id,"
        " event_time, event_name) VALUES (%s, %s, %s, 'us-east-1', 'e1', now(), 'ConsoleLogin')",
        (agency.id, account["id"], account["aws_account_id"]),
    )
    r = client.delete(f"/api/accounts/{account['id']}", headers=agency.headers)
    assert r.status_code == 204
    for table in ("accounts", "cost_rows", "access_events"):
        row = owner_conn.execute(
            f"SELECT count(*) FROM cao.{table} WHERE agency_id = %s", (agency.id,)
        ).fetchone()
        assert row == (0,), table
    audit = owner_conn.execute(
        "SELECT actor, target, details FROM cao.audit_log WHERE agency_id = %s"
        " AND action = 'account.unlinked'",
        (agency.id,),
    ).fetchall()
    assert audit == [
        (
            f"key:{agency.key_id}",
            account["id"],
            {"aws_account_id": account["aws_account_id"], "role_arn": account["role_arn"]},
        )
    ]
    # A second unlink finds nothing: 404, and nothing else changes.
    assert (
        client.delete(f"/api/accounts/{account['id']}", headers=agency.headers).status_code == 404
    )
