"""Fixtures of the onboarding, accounts and agency tests (a plugin: tests/conftest.py lists it):
the simulated AWS with our principal, client roles installed from our template, HTTP clients.

moto's state is process-global and other test modules reset it (`sim.reset()`), so nothing
here assumes that what an earlier test created still exists: our cao-service key is checked
before every test that needs it, and every test installs its own roles in fresh, random
account ids.

The root conftest's `client` and `aws_env` are overridden, where linking happens, by the
`linking_client` and `linking_env` fixtures below (tests/onboard/conftest.py for that whole
folder; single modules elsewhere).
"""

from __future__ import annotations

import json
import secrets
import types
import uuid
from collections.abc import Iterator
from typing import Any

import botocore.endpoint
import botocore.session
import pytest
from fastapi.testclient import TestClient
from moto.iam.models import iam_backends

from devstack.server import create_local_app
from devstack.simaws import SimulatedAws
from functions.onboard import templates
from shared.settings import Settings
from tests.conftest import CAO_ACCOUNT_ID

_service_key: dict[str, str] = {}


@pytest.fixture
def cao_service(sim: SimulatedAws) -> tuple[str, str]:
    """Access key of our user cao-service in our account (re-created after a moto reset)."""
    iam = iam_backends[CAO_ACCOUNT_ID]["aws"]
    user = iam.users.get("cao-service")
    if user is None:
        key_id, secret = sim.create_user_with_key(CAO_ACCOUNT_ID, "cao-service")
        _service_key.update(id=key_id, secret=secret)
    elif not any(k.access_key_id == _service_key.get("id") for k in user.access_keys):
        # Another fixture made the user: add our own key (IAM allows two per user).
        if len(user.access_keys) >= 2:
            iam.delete_access_key(user.access_keys[0].access_key_id, "cao-service")
        key = iam.create_access_key("cao-service")
        _service_key.update(id=key.access_key_id, secret=key.secret_access_key)
    return _service_key["id"], _service_key["secret"]


@pytest.fixture
def linking_env(
    env: dict[str, str], sim: SimulatedAws, cao_service: tuple[str, str]
) -> dict[str, str]:
    """`env` pointed at the simulator with our cao-service key (the simulator is not reset)."""
    env.update(
        CAO_AWS_ENDPOINT_URL=sim.endpoint_url,
        CAO_AWS_ACCESS_KEY_ID=cao_service[0],
        CAO_AWS_SECRET_ACCESS_KEY=cao_service[1],
    )
    return env


@pytest.fixture
def no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's retry sleeps become no-ops (only botocore's: its module sees a fake time)."""
    fake_time = types.SimpleNamespace(sleep=lambda _s: None)
    monkeypatch.setattr(botocore.endpoint, "time", fake_time)


@pytest.fixture
def clean_sim(sim: SimulatedAws) -> Iterator[SimulatedAws]:
    """The simulator with no pending faults and an empty call log, and again after the test."""
    sim.faults.clear()
    sim.clear_calls()
    yield sim
    sim.faults.clear()


@pytest.fixture
def linking_client(
    linking_env: dict[str, str], settings: Settings, clean_sim: SimulatedAws
) -> Iterator[TestClient]:
    """A client of the local app that calls the simulated AWS as our cao-service user."""
    with TestClient(create_local_app(), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def http(settings: Settings) -> Iterator[TestClient]:
    """An HTTP client for routes that call no AWS."""
    with TestClient(create_local_app(), raise_server_exceptions=False) as c:
        yield c


def new_account_id() -> str:
    """A random 12-digit account id: never ours, never reused across tests."""
    while True:
        value = f"{secrets.randbelow(9 * 10**11) + 10**11:012d}"
        if value != CAO_ACCOUNT_ID:
            return value


def install_role(
    sim: SimulatedAws,
    account_id: str,
    external_id: str,
    *,
    stackset: bool = False,
    role_name: str | None = None,
) -> str:
    """Install OUR CloudFormation template in a simulated client account; the role's ARN."""
    params = {"CaoAccountId": CAO_ACCOUNT_ID, "ExternalId": external_id}
    if role_name is not None:
        params["RoleName"] = role_name
    body = templates.render_yaml(templates.template(stackset=stackset))
    outputs = sim.install_stack(account_id, f"cao-{secrets.token_hex(3)}", body, params)
    return outputs["RoleArn"]


def set_trust_policy(account_id: str, role_name: str, policy: dict[str, Any]) -> None:
    """What a client does in the IAM console: replace the role's trust policy."""
    iam_backends[account_id]["aws"].update_assume_role_policy(role_name, json.dumps(policy))


def count_rows(owner_conn: Any, table: str, agency_id: Any) -> int:
    row = owner_conn.execute(
        f"SELECT count(*) FROM cao.{table} WHERE agency_id = %s", (agency_id,)
    ).fetchone()
    return int(row[0])


def tenant_text(owner_conn: Any, agency_id: uuid.UUID) -> str:
    """Every tenant row of the agency, as text (to look for values that must not be there)."""
    parts: list[str] = []
    for table in ("agencies", "api_keys", "accounts", "audit_log"):
        key = "id" if table == "agencies" else "agency_id"
        rows = owner_conn.execute(
            # last_used_at changes with every authenticated request: not a change of state.
            f"SELECT (to_jsonb(t) - 'last_used_at')::text FROM cao.{table} t WHERE {key} = %s"
            " ORDER BY 1",
            (agency_id,),
        ).fetchall()
        parts.extend(r[0] for r in rows)
    return "\n".join(parts)


def link_role(client: TestClient, agency: Any, arn: str) -> dict[str, Any]:
    """POST /api/accounts for `arn` as `agency`, which must answer 201: the linked account."""
    r = client.post("/api/accounts", json={"role_arn": arn}, headers=agency.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def verify_account(client: TestClient, agency: Any, account_id: str) -> Any:
    return client.post(f"/api/accounts/{account_id}/verify", headers=agency.headers)
