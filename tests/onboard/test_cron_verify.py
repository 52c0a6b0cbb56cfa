"""The weekly trust probe (GET /api/cron/verify) and the cron bearer guard (shared.cron)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from devstack.simaws import SimulatedAws
from functions.onboard import templates, verify
from shared.bootstrap import Deps
from shared.cron import bearer_matches
from shared.policy import trust_policy
from shared.settings import Settings
from tests.conftest import CAO_ACCOUNT_ID
from tests.support.deps import with_settings
from tests.support.factories import AgencyFixture, make_agency
from tests.support.onboarding import install_role, new_account_id, set_trust_policy

Conn = psycopg.Connection[Any]
CRON = "/api/cron/verify"


@pytest.fixture
def cron_headers(env: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {env['CRON_SECRET']}"}


@pytest.fixture
def isolated(clean_db: Any) -> Iterator[None]:
    """The probe looks across agencies: start from empty tables."""
    yield


def _link(client: TestClient, agency: AgencyFixture, arn: str) -> str:
    r = client.post("/api/accounts", json={"role_arn": arn}, headers=agency.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _age(owner_conn: Conn, days: int) -> None:
    """Make every account look last verified `days` ago."""
    owner_conn.execute(
        "UPDATE cao.accounts SET verified_at = now() - make_interval(days => %s)", (days,)
    )


def _status(owner_conn: Conn, account_id: str) -> str:
    row = owner_conn.execute("SELECT status FROM cao.accounts WHERE id = %s", (account_id,))
    return str(row.fetchone()[0])  # type: ignore[index]


def test_the_weekly_probe_flags_open_and_unreachable_accounts_across_agencies(
    isolated: None, client: TestClient, sim: SimulatedAws, app_conn: Conn, owner_conn: Conn,
    cron_headers: dict[str, str],
) -> None:  # fmt: skip
    a, b = make_agency(app_conn), make_agency(app_conn)
    fine_id, open_id, gone_id = new_account_id(), new_account_id(), new_account_id()
    fine = _link(client, a, install_role(sim, fine_id, a.external_id))
    opened = _link(client, a, install_role(sim, open_id, a.external_id))
    gone = _link(client, b, install_role(sim, gone_id, b.external_id))
    policy = trust_policy(CAO_ACCOUNT_ID, a.external_id)
    del policy["Statement"][0]["Condition"]
    set_trust_policy(open_id, templates.ROLE_NAME, policy)
    set_trust_policy(gone_id, templates.ROLE_NAME, trust_policy(CAO_ACCOUNT_ID, "someone-else"))
    _age(owner_conn, 8)
    sim.clear_calls()

    r = client.get(CRON, headers=cron_headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "due": 3,
        "probed": 3,
        "ok": 1,
        "flagged": {"unsafe_trust_policy": 1, "access_denied": 1},
        "skipped": 0,
    }
    assert _status(owner_conn, fine) == "active"
    assert _status(owner_conn, opened) == "unsafe_trust_policy"
    assert _status(owner_conn, gone) == "access_denied"
    # Probing is STS only: no Cost Explorer charge, no Organizations call.
    assert {c.service for c in sim.calls} == {"sts"}
    flagged = owner_conn.execute(
        "SELECT agency_id, actor FROM cao.audit_log WHERE action = 'account.status_changed'"
    ).fetchall()
    assert sorted(flagged) == sorted([(a.id, verify.PROBE_ACTOR), (b.id, verify.PROBE_ACTOR)])

    # The next run this week finds the healthy account recently verified: only the flagged
    # ones are due again.
    again = client.get(CRON, headers=cron_headers).json()
    assert again["due"] == 2


def test_accounts_verified_this_week_and_of_unentitled_agencies_are_not_probed(
    isolated: None, client: TestClient, sim: SimulatedAws, app_conn: Conn, owner_conn: Conn,
    cron_headers: dict[str, str],
) -> None:  # fmt: skip
    a, lapsed = make_agency(app_conn), make_agency(app_conn)
    _link(client, a, install_role(sim, new_account_id(), a.external_id))
    _link(client, lapsed, install_role(sim, new_account_id(), lapsed.external_id))
    owner_conn.execute(
        "UPDATE cao.agencies SET trial_ends_at = now() - interval '1 day' WHERE id = %s",
        (lapsed.id,),
    )
    assert client.get(CRON, headers=cron_headers).json()["due"] == 0  # a verified just now
    _age(owner_conn, 8)
    assert client.get(CRON, headers=cron_headers).json()["due"] == 1  # lapsed never


def test_a_throttled_probe_marks_the_account_unreachable(
    isolated: None, client: TestClient, sim: SimulatedAws, agency: AgencyFixture,
    owner_conn: Conn, cron_headers: dict[str, str], no_backoff_sleep: None,
) -> None:  # fmt: skip
    account = _link(client, agency, install_role(sim, new_account_id(), agency.external_id))
    _age(owner_conn, 8)
    sim.faults.add("sts", "AssumeRole", "Throttling", status=400, times=50)
    r = client.get(CRON, headers=cron_headers)
    assert r.json()["flagged"] == {"unreachable": 1}
    assert _status(owner_conn, account) == "unreachable"
    sim.faults.clear()
    # Reachable again: the next probe clears the flag.
    assert client.get(CRON, headers=cron_headers).json()["ok"] == 1
    assert _status(owner_conn, account) == "active"


def test_the_probe_stops_at_its_time_budget_and_leaves_the_rest_for_next_time(
    isolated: None, client: TestClient, sim: SimulatedAws, agency: AgencyFixture,
    owner_conn: Conn, database: Any, settings: Settings,
) -> None:  # fmt: skip
    for _ in range(2):
        _link(client, agency, install_role(sim, new_account_id(), agency.external_id))
    _age(owner_conn, 8)
    ticks = iter([0.0, 0.0, 100.0, 100.0, 100.0])
    with database.app() as conn:
        summary = verify.run_weekly_probe(
            conn,
            Deps(settings).our_clients(),
            datetime.now(UTC),
            our_account_id=CAO_ACCOUNT_ID,
            budget_s=10,
            workers=1,
            clock=lambda: next(ticks),
        )
    assert (summary.due, summary.probed, summary.skipped) == (2, 1, 1)
    rows = owner_conn.execute("SELECT verified_at FROM cao.accounts ORDER BY verified_at")
    stale, fresh = [r[0] for r in rows.fetchall()]
    assert fresh - stale > timedelta(days=7)


def test_the_cron_endpoint_refuses_every_request_without_the_exact_bearer(
    client: TestClient, sim: SimulatedAws, env: dict[str, str]
) -> None:
    secret = env["CRON_SECRET"]
    refused = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-secret-of-some-length"},
        {"Authorization": f"Bearer {secret[:-1]}"},  # a prefix
        {"Authorization": f"Bearer {secret}x"},  # an extension
        {"Authorization": secret},  # no scheme
        {"Authorization": f"Basic {secret}"},
        {"Authorization": f"bearer  {secret}"},
    ]
    for headers in refused:
        r = client.get(CRON, headers=headers)
        assert r.status_code == 401, headers
        assert secret not in r.text
    for query in (f"?secret={secret}", f"?authorization=Bearer%20{secret}", f"?token={secret}"):
        assert client.get(CRON + query).status_code == 401
    assert not sim.calls  # no work was done


def test_the_cron_endpoint_refuses_to_run_without_a_configured_secret(
    client: TestClient, sim: SimulatedAws, env: dict[str, str]
) -> None:
    for value in ("", "short"):
        with with_settings({**env, "CRON_SECRET": value}):
            r = client.get(CRON, headers={"Authorization": f"Bearer {value}"})
        assert r.status_code == 503
        assert "CRON_SECRET" in r.json()["error"]["message"]
    assert not sim.calls


def test_the_bearer_comparison_is_exact() -> None:
    assert bearer_matches("Bearer s3cret-value-0123456789", "s3cret-value-0123456789")
    assert not bearer_matches(None, "s3cret-value-0123456789")
    assert not bearer_matches("Bearer s3cret-value-012345678", "s3cret-value-0123456789")
    assert not bearer_matches("Bearer s3cret-value-0123456789 ", "s3cret-value-0123456789")
