"""Verification against the simulated AWS: every linking check again, recorded as the
account's status (POST /api/accounts/{id}/verify).
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi.testclient import TestClient

from devstack.simaws import SimulatedAws
from functions.onboard import templates
from functions.onboard.verify import VERIFY_LIMIT, VERIFY_WINDOW_S
from shared.policy import trust_policy
from tests.conftest import CAO_ACCOUNT_ID
from tests.support.factories import AgencyFixture, make_agency, make_api_key
from tests.support.onboarding import (
    count_rows,
    install_role,
    link_role,
    new_account_id,
    set_trust_policy,
    verify_account,
)

Conn = psycopg.Connection[Any]


def test_verify_flags_a_role_whose_trust_policy_was_opened_and_one_that_was_removed(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture
) -> None:
    opened_id, removed_id = new_account_id(), new_account_id()
    opened = link_role(client, agency, install_role(sim, opened_id, agency.external_id))
    removed = link_role(client, agency, install_role(sim, removed_id, agency.external_id))
    policy = trust_policy(CAO_ACCOUNT_ID, agency.external_id)
    del policy["Statement"][0]["Condition"]
    set_trust_policy(opened_id, templates.ROLE_NAME, policy)
    set_trust_policy(removed_id, templates.ROLE_NAME, trust_policy(CAO_ACCOUNT_ID, "other-value"))

    r = verify_account(client, agency, opened["id"])
    assert r.status_code == 200
    assert r.json()["status"] == "unsafe_trust_policy"
    assert "sts:ExternalId" in r.json()["status_message"]
    r = verify_account(client, agency, removed["id"])
    assert r.json()["status"] == "access_denied"
    assert "not installed" in r.json()["status_message"]


def test_a_fixed_role_verifies_active_again_and_its_paused_syncs_resume(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    aws_id = new_account_id()
    account = link_role(client, agency, install_role(sim, aws_id, agency.external_id))
    set_trust_policy(aws_id, templates.ROLE_NAME, trust_policy(CAO_ACCOUNT_ID, "other-value"))
    assert verify_account(client, agency, account["id"]).json()["status"] == "access_denied"
    # What the sync does after repeated AccessDenied: its jobs are paused.
    owner_conn.execute(
        "UPDATE cao.sync_jobs SET state = 'paused' WHERE account_id = %s", (account["id"],)
    )
    set_trust_policy(aws_id, templates.ROLE_NAME, trust_policy(CAO_ACCOUNT_ID, agency.external_id))
    r = verify_account(client, agency, account["id"])
    assert r.json()["status"] == "active" and r.json()["status_message"] is None
    states = owner_conn.execute(
        "SELECT DISTINCT state FROM cao.sync_jobs WHERE account_id = %s", (account["id"],)
    ).fetchall()
    assert states == [("idle",)]


def test_verify_of_another_agencys_account_is_404_and_changes_nothing(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, app_conn: Conn
) -> None:
    account = link_role(client, agency, install_role(sim, new_account_id(), agency.external_id))
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
    account = link_role(client, agency, install_role(sim, new_account_id(), agency.external_id))
    before = owner_conn.execute(
        "SELECT status, verified_at FROM cao.accounts WHERE id = %s", (account["id"],)
    ).fetchone()
    sim.faults.add("sts", "AssumeRole", "Throttling", status=400, times=20)
    r = verify_account(client, agency, account["id"])
    assert r.status_code == 503
    after = owner_conn.execute(
        "SELECT status, verified_at FROM cao.accounts WHERE id = %s", (account["id"],)
    ).fetchone()
    assert after == before


# ---- price and roles (issue 15, item 2) ------------------------------------------------------


def test_verify_is_rate_limited_per_account_before_any_aws_call(
    client: TestClient,
    sim: SimulatedAws,
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    app_conn: Conn,
) -> None:
    aws_id, spare_id = new_account_id(), new_account_id()
    account = link_role(client, agency, install_role(sim, aws_id, agency.external_id))
    spare = link_role(client, agency, install_role(sim, spare_id, agency.external_id))
    member = {"Authorization": f"Bearer {make_api_key(app_conn, agency.id, 'member')}"}
    # Another agency guessing the id gets a 404 and spends none of this account's budget.
    assert verify_account(client, other_agency, account["id"]).status_code == 404
    url = f"/api/accounts/{account['id']}/verify"
    for _ in range(VERIFY_LIMIT):
        assert client.post(url, headers=member).status_code == 200  # any key may verify
    sim.clear_calls()
    r = client.post(url, headers=member)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert 0 < int(r.headers["retry-after"]) <= VERIFY_WINDOW_S
    assert sim.calls == []  # refused before AWS: no assume, no Cost Explorer request
    # Each account has its own budget.
    assert verify_account(client, agency, spare["id"]).status_code == 200


def test_linking_one_account_or_many_needs_an_admin_key(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, app_conn: Conn, owner_conn: Conn
) -> None:
    member = {"Authorization": f"Bearer {make_api_key(app_conn, agency.id, 'member')}"}
    arn = install_role(sim, new_account_id(), agency.external_id)
    sim.clear_calls()
    r = client.post("/api/accounts", json={"role_arn": arn}, headers=member)
    assert r.status_code == 403, r.text
    r = client.post("/api/accounts/discovered/link", headers=member)
    assert r.status_code == 403, r.text
    assert sim.calls == []  # nothing was spent
    assert count_rows(owner_conn, "accounts", agency.id) == 0
    assert link_role(client, agency, arn)["role_arn"] == arn  # the admin key links it
