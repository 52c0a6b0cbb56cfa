"""ExternalId rotation and verification against the simulated AWS.

After a rotation each account keeps working with the ExternalId it was verified with; the
agency sees which accounts still need their trust policy updated; an account verifies onto the
new value once its trust policy has it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi.testclient import TestClient

from devstack.simaws import SimulatedAws
from functions.onboard import templates
from shared.policy import trust_policy
from tests.conftest import CAO_ACCOUNT_ID
from tests.onboard.conftest import install_role, new_account_id, set_trust_policy
from tests.support.factories import AgencyFixture, make_agency

Conn = psycopg.Connection[Any]


def _link(client: TestClient, agency: AgencyFixture, arn: str) -> dict[str, Any]:
    r = client.post("/api/accounts", json={"role_arn": arn}, headers=agency.headers)
    assert r.status_code == 201, r.text
    return r.json()


def _verify(client: TestClient, agency: AgencyFixture, account_id: str) -> Any:
    return client.post(f"/api/accounts/{account_id}/verify", headers=agency.headers)


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
    linked = [_link(client, agency, install_role(sim, a, agency.external_id)) for a in aws_ids]

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

    results = [_verify(client, agency, a["id"]) for a in linked]
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
    last = _verify(client, agency, linked[2]["id"])
    assert last.json()["status"] == "active" and last.json()["needs_trust_update"] is False
    values = owner_conn.execute(
        "SELECT value FROM cao.external_ids WHERE agency_id = %s", (agency.id,)
    ).fetchall()
    assert values == [(new_value,)]


def test_rotating_twice_keeps_the_value_accounts_were_verified_with(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    account = _link(client, agency, install_role(sim, new_account_id(), agency.external_id))
    for _ in range(2):
        assert (
            client.post("/api/agency/external-id/rotate", headers=agency.headers).status_code == 200
        )
    assert _verify(client, agency, account["id"]).json()["status"] == "needs_trust_update"
    assert _stored_external_id(owner_conn, account["id"]) == agency.external_id
    # The value in between was never used by an account: it is gone.
    count = owner_conn.execute(
        "SELECT count(*) FROM cao.external_ids WHERE agency_id = %s", (agency.id,)
    ).fetchone()
    assert count == (2,)


def test_verify_flags_a_role_whose_trust_policy_was_opened_and_one_that_was_removed(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture
) -> None:
    opened_id, removed_id = new_account_id(), new_account_id()
    opened = _link(client, agency, install_role(sim, opened_id, agency.external_id))
    removed = _link(client, agency, install_role(sim, removed_id, agency.external_id))
    policy = trust_policy(CAO_ACCOUNT_ID, agency.external_id)
    del policy["Statement"][0]["Condition"]
    set_trust_policy(opened_id, templates.ROLE_NAME, policy)
    set_trust_policy(removed_id, templates.ROLE_NAME, trust_policy(CAO_ACCOUNT_ID, "other-value"))

    r = _verify(client, agency, opened["id"])
    assert r.status_code == 200
    assert r.json()["status"] == "unsafe_trust_policy"
    assert "sts:ExternalId" in r.json()["status_message"]
    r = _verify(client, agency, removed["id"])
    assert r.json()["status"] == "access_denied"
    assert "not installed" in r.json()["status_message"]


def test_a_fixed_role_verifies_active_again_and_its_paused_syncs_resume(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    aws_id = new_account_id()
    account = _link(client, agency, install_role(sim, aws_id, agency.external_id))
    set_trust_policy(aws_id, templates.ROLE_NAME, trust_policy(CAO_ACCOUNT_ID, "other-value"))
    assert _verify(client, agency, account["id"]).json()["status"] == "access_denied"
    # What the sync does after repeated AccessDenied: its jobs are paused.
    owner_conn.execute(
        "UPDATE cao.sync_jobs SET state = 'paused' WHERE account_id = %s", (account["id"],)
    )
    set_trust_policy(aws_id, templates.ROLE_NAME, trust_policy(CAO_ACCOUNT_ID, agency.external_id))
    r = _verify(client, agency, account["id"])
    assert r.json()["status"] == "active" and r.json()["status_message"] is None
    states = owner_conn.execute(
        "SELECT DISTINCT state FROM cao.sync_jobs WHERE account_id = %s", (account["id"],)
    ).fetchall()
    assert states == [("idle",)]


def test_verify_of_another_agencys_account_is_404_and_changes_nothing(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, app_conn: Conn
) -> None:
    account = _link(client, agency, install_role(sim, new_account_id(), agency.external_id))
    other = make_agency(app_conn)
    sim.clear_calls()
    for method, path in (
        ("POST", f"/api/accounts/{account['id']}/verify"),
        ("PATCH", f"/api/accounts/{account['id']}"),
        ("DELETE", f"/api/accounts/{account['id']}"),
    ):
        r = client.request(method, path, json={"alias": "mine now"}, headers=other.headers)
        assert r.status_code == 404, (method, r.text)
    assert not sim.calls
    mine = client.post(f"/api/accounts/{account['id']}/verify", headers=agency.headers)
    assert mine.json()["alias"] is None


def test_verify_while_aws_throttles_is_503_and_changes_nothing(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn,
    no_backoff_sleep: None,
) -> None:  # fmt: skip
    account = _link(client, agency, install_role(sim, new_account_id(), agency.external_id))
    before = owner_conn.execute(
        "SELECT status, verified_at FROM cao.accounts WHERE id = %s", (account["id"],)
    ).fetchone()
    sim.faults.add("sts", "AssumeRole", "Throttling", status=400, times=20)
    r = _verify(client, agency, account["id"])
    assert r.status_code == 503
    after = owner_conn.execute(
        "SELECT status, verified_at FROM cao.accounts WHERE id = %s", (account["id"],)
    ).fetchone()
    assert after == before


def test_admins_change_alias_and_regions_and_unlinking_deletes_all_account_data(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    account = _link(client, agency, install_role(sim, new_account_id(), agency.external_id))
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
