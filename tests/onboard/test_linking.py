"""Account linking against the simulated AWS, with trust policies and ExternalIds enforced.

Every client role here is created by installing the product's own CloudFormation template in a
simulated client account (`install_role`), unless a test needs a role that the template would
never make (an open trust policy).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from devstack.simaws import SimulatedAws
from functions.onboard import externalid
from functions.onboard.linking import PROBE_VALUES
from shared.aws import SESSION_PREFIX
from shared.errors import PaymentRequiredError
from tests.conftest import CAO_ACCOUNT_ID
from tests.support.factories import AgencyFixture, make_agency
from tests.support.onboarding import count_rows, install_role, new_account_id

Conn = psycopg.Connection[Any]


def _link(client: TestClient, agency: AgencyFixture, role_arn: str, **extra: Any) -> Any:
    return client.post(
        "/api/accounts", json={"role_arn": role_arn, **extra}, headers=agency.headers
    )


def test_roles_installed_from_our_template_link_as_active_accounts(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    linked = []
    for alias in ("Acme prod", "Acme dev"):
        account_id = new_account_id()
        arn = install_role(sim, account_id, agency.external_id)
        r = _link(client, agency, arn, alias=alias)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["aws_account_id"] == account_id
        assert body["role_arn"] == arn
        assert body["alias"] == alias
        assert body["status"] == "active"
        assert body["is_management"] is False
        assert body["regions"] == ["us-east-1"]  # the agency's default regions
        assert body["needs_trust_update"] is False
        linked.append(body["id"])
    assert count_rows(owner_conn, "accounts", agency.id) == 2
    audit = owner_conn.execute(
        "SELECT count(*) FROM cao.audit_log WHERE agency_id = %s AND action = 'account.linked'",
        (agency.id,),
    ).fetchone()
    assert audit == (2,)
    # Each new link got its sync jobs (published at once when a queue is reachable; due now
    # for the dispatcher otherwise).
    kinds = owner_conn.execute(
        "SELECT account_id::text, kind FROM cao.sync_jobs WHERE agency_id = %s", (agency.id,)
    ).fetchall()
    assert sorted(kinds) == sorted((a, k) for a in linked for k in ("cloudtrail", "costs"))


def test_linking_assumes_for_15_minutes_with_our_prefix_and_an_opaque_agency_id(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture
) -> None:
    account_id = new_account_id()
    arn = install_role(sim, account_id, agency.external_id)
    assert _link(client, agency, arn).status_code == 201
    assumes = [c for c in sim.calls if c.operation == "AssumeRole"]
    first = assumes[0].params
    assert first["RoleArn"] == arn
    assert first["ExternalId"] == agency.external_id
    assert int(first["DurationSeconds"]) == 900
    assert first["RoleSessionName"] == f"{SESSION_PREFIX}link-{agency.id.hex}"
    # The probe: once without an ExternalId, then with values nobody was given.
    probes = [c.params for c in assumes[1:]]
    assert len(probes) == 1 + PROBE_VALUES
    assert "ExternalId" not in probes[0]
    assert all(p["ExternalId"] not in (agency.external_id, "") for p in probes[1:])
    assert all(p["RoleSessionName"].startswith(SESSION_PREFIX) for p in probes)
    # The account ID was confirmed with the assumed credentials, and CE was asked once.
    assert sim.count_calls("sts", "GetCallerIdentity", account_id) == 1
    assert sim.count_calls("ce", "GetCostAndUsage", account_id) == 1


def test_linking_the_same_role_twice_returns_the_existing_link(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    arn = install_role(sim, new_account_id(), agency.external_id)
    first = _link(client, agency, arn)
    assert first.status_code == 201
    calls = len(sim.calls)
    again = _link(client, agency, arn)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert len(sim.calls) == calls  # no AWS call: the link exists
    assert count_rows(owner_conn, "accounts", agency.id) == 1


def test_another_agency_linking_a_role_gets_the_same_answer_as_for_a_role_that_does_not_exist(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, app_conn: Conn, owner_conn: Conn
) -> None:
    victim_account = new_account_id()
    arn = install_role(sim, victim_account, agency.external_id)
    intruder = make_agency(app_conn)

    stolen = _link(client, intruder, arn)
    missing = _link(
        client, intruder, f"arn:aws:iam::{new_account_id()}:role/CloudAgencyOpsReadOnly"
    )
    missing_role = _link(client, intruder, f"arn:aws:iam::{victim_account}:role/NoSuchRole")

    assert stolen.status_code == missing.status_code == missing_role.status_code == 422
    assert stolen.json() == missing.json() == missing_role.json()
    message = stolen.json()["error"]["message"]
    assert stolen.json()["error"]["code"] == "role_access_denied"
    for cause in ("not installed", "mistyped", "ExternalId", CAO_ACCOUNT_ID):
        assert cause in message
    assert agency.external_id not in stolen.text and intruder.external_id not in stolen.text
    assert count_rows(owner_conn, "accounts", intruder.id) == 0
    # The rightful agency still links it.
    assert _link(client, agency, arn).status_code == 201


def test_a_role_that_trusts_us_without_an_external_id_is_refused_by_the_probe(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    account_id = new_account_id()
    open_trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{CAO_ACCOUNT_ID}:user/cao-service"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    arn = sim.create_role(account_id, "OpenRole", open_trust)
    r = _link(client, agency, arn)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "unsafe_trust_policy"
    assert '"sts:ExternalId"' in error["message"] and "StringEquals" in error["message"]
    assert agency.external_id not in r.text
    assert count_rows(owner_conn, "accounts", agency.id) == 0
    # The credentials obtained by the probe were never used for anything.
    assert sim.count_calls("organizations", "ListAccounts", account_id) == 0
    assert sim.count_calls("ce", "GetCostAndUsage", account_id) == 0


def test_a_role_that_accepts_any_external_id_is_refused_by_the_probe(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    # Passes the first probe (no ExternalId: refused) but not the second (a random one).
    account_id = new_account_id()
    wildcard = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{CAO_ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringLike": {"sts:ExternalId": "*"}},
            }
        ],
    }
    arn = sim.create_role(account_id, "WildcardRole", wildcard)
    r = _link(client, agency, arn)
    assert r.status_code == 422 and r.json()["error"]["code"] == "unsafe_trust_policy"
    assert count_rows(owner_conn, "accounts", agency.id) == 0


def _probe_values(sim: SimulatedAws, account_id: str, agency: AgencyFixture) -> list[str]:
    return [
        c.params["ExternalId"]
        for c in sim.calls
        if c.operation == "AssumeRole"
        and c.params.get("RoleArn", "").startswith(f"arn:aws:iam::{account_id}:")
        and "probe" in c.params.get("RoleSessionName", "")
        and "ExternalId" in c.params
    ]


def test_probe_external_ids_look_exactly_like_real_ones_and_are_fresh_every_time(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture
) -> None:
    seen: list[str] = []
    for _ in range(2):
        account_id = new_account_id()
        assert (
            _link(client, agency, install_role(sim, account_id, agency.external_id)).status_code
            == 201
        )
        values = _probe_values(sim, account_id, agency)
        assert len(values) == PROBE_VALUES >= 2
        for value in values:
            # The length and alphabet of what sign-up generates: nothing marks a probe.
            assert externalid.OUR_PATTERN.fullmatch(value), value
            assert len(value) == externalid.LENGTH
        seen += values
    assert len(set(seen)) == len(seen)  # never reused, within a link or across links


@pytest.mark.parametrize(
    "condition",
    [
        # Any value of the real length: a probe of another length passed as "refused".
        {"StringLike": {"sts:ExternalId": "?" * externalid.LENGTH}},
        # Any value at all in the real alphabet and length, spelled as a list of patterns.
        {"StringLike": {"sts:ExternalId": ["?" * externalid.LENGTH, "probe-*"]}},
        # Any ExternalId but a marked probe's.
        {"StringNotLike": {"sts:ExternalId": "probe-*"}, "Null": {"sts:ExternalId": "false"}},
    ],
)
def test_a_role_that_accepts_any_external_id_of_the_real_shape_is_refused_by_the_probe(
    client: TestClient,
    sim: SimulatedAws,
    agency: AgencyFixture,
    owner_conn: Conn,
    condition: dict[str, Any],
) -> None:
    account_id = new_account_id()
    shaped = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{CAO_ACCOUNT_ID}:root"},
                "Action": "sts:AssumeRole",
                "Condition": condition,
            }
        ],
    }
    arn = sim.create_role(account_id, "ShapedRole", shaped)
    r = _link(client, agency, arn)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "unsafe_trust_policy"
    assert count_rows(owner_conn, "accounts", agency.id) == 0


def test_cost_explorer_not_enabled_links_the_account_with_the_steps_to_enable_it(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture
) -> None:
    account_id = new_account_id()
    arn = install_role(sim, account_id, agency.external_id)
    sim.disable_cost_explorer(account_id)
    r = _link(client, agency, arn)
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "cost_explorer_not_enabled"
    assert "Launch Cost Explorer" in body["status_message"]
    assert "verify" in body["status_message"]


def test_a_management_account_is_recognised_and_its_members_discovered_without_email(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    management, members = new_account_id(), [new_account_id(), new_account_id()]
    names = {management: "Acme Payer", members[0]: "Acme Prod", members[1]: "Acme Dev"}
    sim.create_organization(management, members, names)
    arn = install_role(sim, management, agency.external_id)
    r = _link(client, agency, arn)
    assert r.status_code == 201
    assert r.json()["is_management"] is True

    found = client.get("/api/accounts/discovered", headers=agency.headers)
    assert found.status_code == 200
    listed = {d["aws_account_id"]: d for d in found.json()}
    assert set(listed) == set(members)
    assert listed[members[0]]["name"] == "Acme Prod"
    assert listed[members[0]]["role_arn"] == (
        f"arn:aws:iam::{members[0]}:role/CloudAgencyOpsReadOnly"
    )
    assert listed[members[0]]["linked_account_id"] is None
    stored = owner_conn.execute(
        "SELECT * FROM cao.discovered_accounts WHERE agency_id = %s", (agency.id,)
    ).fetchall()
    assert len(stored) == 2
    assert not any("@" in str(v) for row in stored for v in row)


def test_a_delegated_administrator_lists_the_organization_but_is_not_the_management_account(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    management, admin, other = new_account_id(), new_account_id(), new_account_id()
    sim.create_organization(management, [admin, other])
    sim.register_delegated_admin(management, admin)
    arn = install_role(sim, admin, agency.external_id)
    r = _link(client, agency, arn)
    assert r.status_code == 201
    assert r.json()["is_management"] is False
    assert sim.count_calls("organizations", "ListAccounts", admin) >= 1  # it could list
    assert count_rows(owner_conn, "discovered_accounts", agency.id) == 0


def test_member_and_standalone_accounts_are_not_management_accounts(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture
) -> None:
    management, member, standalone = new_account_id(), new_account_id(), new_account_id()
    sim.create_organization(management, [member])
    for account_id in (member, standalone):
        r = _link(client, agency, install_role(sim, account_id, agency.external_id))
        assert r.status_code == 201
        assert r.json()["is_management"] is False


def test_an_admin_links_discovered_members_in_bulk_through_the_stackset_role(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    management = new_account_id()
    members = [new_account_id() for _ in range(3)]
    sim.create_organization(management, members, {m: f"Client {i}" for i, m in enumerate(members)})
    assert (
        _link(client, agency, install_role(sim, management, agency.external_id)).status_code == 201
    )
    # The StackSet reached two of the three members.
    for member in members[:2]:
        install_role(sim, member, agency.external_id, stackset=True)

    r = client.post("/api/accounts/discovered/link", headers=agency.headers)
    assert r.status_code == 200, r.text
    results = {x["aws_account_id"]: x for x in r.json()["results"]}
    assert {results[m]["outcome"] for m in members[:2]} == {"linked"}
    assert results[members[0]]["account"]["alias"] == "Client 0"
    assert results[members[2]]["outcome"] == "failed"
    assert results[members[2]]["error"]["code"] == "role_access_denied"
    assert r.json()["remaining"] == 0
    assert count_rows(owner_conn, "accounts", agency.id) == 3

    again = client.post(
        "/api/accounts/discovered/link",
        json={"aws_account_ids": [members[0], "999999999999"]},
        headers=agency.headers,
    )
    outcomes = {x["aws_account_id"]: x["outcome"] for x in again.json()["results"]}
    assert outcomes == {members[0]: "already_linked", "999999999999": "not_discovered"}


def test_throttling_on_assume_is_a_retryable_503_and_nothing_is_stored(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn,
    no_backoff_sleep: None,
) -> None:  # fmt: skip
    arn = install_role(sim, new_account_id(), agency.external_id)
    sim.faults.add("sts", "AssumeRole", "Throttling", status=400, times=20)
    r = _link(client, agency, arn)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "aws_throttled"
    assert "nothing was stored" in r.json()["error"]["message"]
    assert count_rows(owner_conn, "accounts", agency.id) == 0
    assert sim.count_calls("sts", "AssumeRole") > 1  # botocore retried before giving up


def test_throttling_at_the_cost_explorer_check_stores_nothing_either(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn,
    no_backoff_sleep: None,
) -> None:  # fmt: skip
    management, member = new_account_id(), new_account_id()
    sim.create_organization(management, [member])
    arn = install_role(sim, management, agency.external_id)
    sim.faults.add("ce", "GetCostAndUsage", "LimitExceededException", status=400, times=20)
    r = _link(client, agency, arn)
    assert r.status_code == 503
    for table in ("accounts", "discovered_accounts"):
        assert count_rows(owner_conn, table, agency.id) == 0


def test_an_unreachable_aws_is_a_retryable_503(
    client: TestClient, agency: AgencyFixture, owner_conn: Conn, no_backoff_sleep: None,
    env: dict[str, str], sim: SimulatedAws,
) -> None:  # fmt: skip
    from tests.support.deps import with_settings  # noqa: PLC0415

    arn = install_role(sim, new_account_id(), agency.external_id)
    # A loopback port nobody listens on.
    with with_settings({**env, "CAO_AWS_ENDPOINT_URL": "http://127.0.0.1:9"}):
        r = _link(client, agency, arn)
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "aws_unreachable"
    assert count_rows(owner_conn, "accounts", agency.id) == 0


def test_bad_link_requests_are_4xx_and_change_nothing(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn
) -> None:
    arn = install_role(sim, new_account_id(), agency.external_id)
    bad_bodies: list[tuple[dict[str, Any], int]] = [
        ({"role_arn": "not-an-arn"}, 400),
        ({"role_arn": "arn:aws:iam::12345678901:role/Short"}, 400),
        ({"role_arn": "arn:aws:iam::123456789012345:role/Long"}, 400),
        ({"role_arn": arn.replace(":role/", ":user/")}, 400),
        ({"role_arn": arn + "\n"}, 201),  # whitespace is stripped: this one is fine
        ({"role_arn": f"arn:aws:iam::{CAO_ACCOUNT_ID}:role/Ours"}, 422),
        ({"role_arn": arn, "external_id": "attacker-chosen-value"}, 422),
        ({"role_arn": arn, "agency_id": "00000000-0000-4000-8000-000000000000"}, 422),
        ({"role_arn": arn, "billing_status": "active"}, 422),
        ({"role_arn": arn, "plan": "pro"}, 422),
        ({"role_arn": arn, "status": "active"}, 422),
        ({"role_arn": arn, "regions": ["mars-north-1"]}, 422),
        ({"role_arn": arn, "alias": "x" * 101}, 422),
        ({"role_arn": arn, "alias": "tab\there"}, 422),
        ({"role_arn": arn + "\x00"}, 400),
        ({}, 422),
    ]
    for body, status in bad_bodies[:4] + bad_bodies[5:]:
        sim.clear_calls()
        r = client.post("/api/accounts", json=body, headers=agency.headers)
        assert r.status_code == status, (body, r.text)
        assert "error" in r.json()
        assert not sim.calls, body  # refused before any AWS call
    assert count_rows(owner_conn, "accounts", agency.id) == 0


def test_linking_needs_an_api_key(client: TestClient, sim: SimulatedAws) -> None:
    r = client.post("/api/accounts", json={"role_arn": "arn:aws:iam::210987654321:role/X"})
    assert r.status_code == 401
    assert not sim.calls


def test_the_same_aws_account_through_a_second_role_is_a_conflict(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture
) -> None:
    account_id = new_account_id()
    first = install_role(sim, account_id, agency.external_id)
    second = install_role(sim, account_id, agency.external_id, role_name="SecondRole")
    assert _link(client, agency, first).status_code == 201
    r = _link(client, agency, second)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "account_already_linked"


def test_the_billing_hook_refuses_before_any_aws_call_and_stores_nothing(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture, owner_conn: Conn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from functions.onboard import linking  # noqa: PLC0415

    def refuse(conn: Any, agency_id: Any) -> None:
        raise PaymentRequiredError("plan limit reached", code="plan_limit_reached")

    monkeypatch.setattr(linking, "check_account_limit", refuse)
    arn = install_role(sim, new_account_id(), agency.external_id)
    sim.clear_calls()
    r = _link(client, agency, arn)
    assert r.status_code == 402
    assert not sim.calls
    assert count_rows(owner_conn, "accounts", agency.id) == 0


def test_no_external_id_or_credential_reaches_the_logs(
    client: TestClient, sim: SimulatedAws, agency: AgencyFixture,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    account_id = new_account_id()
    arn = install_role(sim, account_id, agency.external_id)
    capsys.readouterr()
    linked = _link(client, agency, arn)
    assert linked.status_code == 201
    client.post(f"/api/accounts/{linked.json()['id']}/verify", headers=agency.headers)
    stranger = make_agency_for_logs(client)
    _link(client, stranger, arn)  # refused: wrong ExternalId
    out = capsys.readouterr()
    logged = out.out + out.err + "\n".join(r.getMessage() for r in caplog.records)
    assert "link refused" in logged  # the logs were captured
    assert agency.external_id not in logged
    assert agency.api_key not in logged
    assert "ASIA" not in logged and "SessionToken" not in logged


def make_agency_for_logs(client: TestClient) -> AgencyFixture:
    r = client.post(
        "/api/agencies",
        json={"name": "Log check", "contact_email": "log@check.example"},
        headers={"X-Real-IP": f"198.51.100.{new_account_id()}"},
    )
    assert r.status_code == 201
    body = r.json()
    return AgencyFixture(body["agency_id"], body["api_key"], body["key_id"], body["external_id"])
