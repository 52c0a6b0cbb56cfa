"""Issue 14, through the real sync (worker, simulated AWS, Postgres as the app role): one
source per account and month whatever fails when, credits on finalised months show up, a pull
that fails part way keeps what it paid for, and a pull beyond the page budget is stored as it
goes and continued instead of failing daily."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from moto.organizations.models import organizations_backends

from devstack.simaws import SimulatedAws
from functions.sync_costs import transform
from shared.db import tenant_tx
from shared.store import costs
from shared.store.costs import CostRow
from tests.support.database import TestDatabase
from tests.support.factories import AgencyFixture
from tests.support.jobs import (
    START,
    Clock,
    Linked,
    ce_calls,
    cost_rows,
    job,
    link,
    put_year,
    run_costs,
    runs,
)

pytestmark = pytest.mark.usefixtures("aws_settings")

WINDOW = [f"{2024 + (index // 12)}-{index % 12 + 1:02d}" for index in range(1, 15)]  # 2024-02..


def month_totals(
    conn: psycopg.Connection[Any], agency: AgencyFixture, usage_account: str
) -> dict[str, Decimal]:
    """What the agency's reports sum for one AWS account, per month (every link's rows)."""
    with tenant_tx(conn, agency.id):
        rows = conn.execute(
            "SELECT to_char(month, 'YYYY-MM'), sum(amount) FROM cao.cost_rows"
            " WHERE agency_id = %s AND usage_account_id = %s AND metric = 'UnblendedCost'"
            " GROUP BY 1",
            (agency.id, usage_account),
        ).fetchall()
    return {r[0]: r[1] for r in rows}


# ---- 1. one source per account per month -----------------------------------------------------

# Each day (03:00 UTC from START, the 14th of March), in this order: P = the payer's sync, M =
# the member's; "x" = that sync fails (Cost Explorer answers DataUnavailable).
SCENARIOS = {
    # The issue: the payer is down long enough for the member to pull on its own, then recovers.
    "payer-outage": ["P", "Px M", "Px M", "M P", "M P"],
    "payer-recovers-before-member-runs": ["P", "Px M", "Px M", "P M", "M P"],
    "member-first": ["M P", "Px M", "M Px", "Px M", "P M"],
    "payer-never-synced-then-recovers": ["Px M", "Px M", "P M", "M P"],
    "both-fail": ["P", "Px", "Mx Px", "M Px", "P M", "M P"],
}


@pytest.mark.parametrize("days", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_a_members_monthly_cost_equals_aws_in_every_order_of_payer_and_member_failures(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    days: list[str],
) -> None:
    payer = link(sim, app_conn, agency, management=True)
    member = link(sim, app_conn, agency)
    sim.create_organization(payer.aws_account_id, [member.aws_account_id, "210987654321"])
    put_year(sim, payer.aws_account_id, {"AWS Organizations": "1"}, current="2025-03")
    put_year(sim, "210987654321", {"Amazon RDS": "7"}, current="2025-03")
    aws = {month: Decimal(100 + n) for n, month in enumerate(WINDOW)}  # what AWS says
    for month, amount in aws.items():
        sim.put_cost(
            member.aws_account_id,
            month,
            "Amazon EC2",
            dict.fromkeys(("UnblendedCost", "AmortizedCost", "NetUnblendedCost"), str(amount)),
            estimated=month == "2025-03",
        )
    accounts = {"P": payer, "M": member}

    synced = False
    for day, steps in enumerate(days):
        now = Clock(START + timedelta(days=day))
        sim.clock = now
        for step in steps.split():
            linked = accounts[step[0]]
            if step.endswith("x"):
                sim.faults.add(
                    "ce",
                    "GetCostAndUsage",
                    "DataUnavailableException",
                    account_id=linked.aws_account_id,
                )
            run_costs(app_conn, linked, now)
            synced = synced or runs(app_conn, linked)[-1]["status"] == "succeeded"
            if synced:  # once anything synced the member: exactly AWS's numbers, every month
                assert month_totals(app_conn, agency, member.aws_account_id) == aws, (day, step)
    assert not sim.faults.pending()  # every planned failure happened


def test_a_member_pulling_during_a_payer_outage_buys_only_what_is_due(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture, clock: Clock
) -> None:
    payer = link(sim, app_conn, agency, management=True)
    member = link(sim, app_conn, agency)
    sim.create_organization(payer.aws_account_id, [member.aws_account_id])
    put_year(sim, member.aws_account_id, {"Amazon EC2": "10"}, current="2025-03")
    run_costs(app_conn, payer, clock)

    clock.advance(hours=27)  # the 15th; the payer's last success is 27 hours old
    run_costs(app_conn, member, clock)

    (call,) = ce_calls(sim, member.aws_account_id)
    # Not its own 14 months: the payer holds the older ones; February (until the 15th) and March.
    assert call["TimePeriod"]["Start"] == "2025-02-01"
    assert {k[1] for k in cost_rows(app_conn, member)} == {"2025-02", "2025-03"}
    held = {k[1] for k in cost_rows(app_conn, payer) if k[0] == member.aws_account_id}
    assert held == set(WINDOW) - {"2025-02", "2025-03"}  # the member took those two over


# ---- 2. finalised months are pulled again --------------------------------------------------------


def test_a_credit_applied_to_a_finalised_month_shows_up(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture, clock: Clock
) -> None:
    linked = link(sim, app_conn, agency)
    own = linked.aws_account_id
    put_year(sim, own, {"Amazon EC2": "100"}, current="2025-03")
    run_costs(app_conn, linked, clock)  # 14 March: the first sync

    def total(month: str) -> Decimal:
        return month_totals(app_conn, agency, own)[month]

    def credit(month: str, amount: str) -> None:
        sim.put_cost(own, month, "Credit", {"UnblendedCost": amount})

    # February closed on 1 March; AWS applies a credit to it afterwards.
    credit("2025-02", "-20")
    clock.advance(days=1)  # the 15th: the previous month is still pulled daily
    run_costs(app_conn, linked, clock)
    assert total("2025-02") == Decimal(80)

    # A refund on December: the weekly re-pull of the last three months brings it.
    credit("2024-12", "-30")
    starts = []
    for _ in range(6):  # 16th .. 21st of March
        clock.advance(days=1)
        run_costs(app_conn, linked, clock)
        starts.append(ce_calls(sim, own)[-1]["TimePeriod"]["Start"])
    assert starts == ["2025-03-01"] * 5 + ["2024-12-01"]  # a week after December was pulled
    assert total("2024-12") == Decimal(70)
    assert [r["ce_requests"] for r in runs(app_conn, linked)] == [1] * 8  # one page a day


# ---- 3. a failed pull keeps what it paid for -----------------------------------------------------


@pytest.mark.parametrize(("page_size", "failing_page"), [(50, 10), (500, 2)])
def test_a_pull_that_fails_at_page_n_keeps_its_months_and_the_retry_buys_only_the_rest(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    retry_sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch,
    page_size: int,
    failing_page: int,
) -> None:
    sim.ce_page_size = page_size
    payer = link(sim, app_conn, agency, management=True)
    members = [f"3000000001{n:02d}" for n in range(10)]
    sim.create_organization(payer.aws_account_id, members)
    services = {f"Service {n}": str(n + 1) for n in range(5)}
    for account in [payer.aws_account_id, *members]:
        put_year(sim, account, services, current="2025-03")
    groups_a_month = 11 * 5  # 770 groups in all: 16 pages of 50, or 2 of 500
    pages_of_one_call = -(-14 * groups_a_month // page_size)
    pages_of_one_month = -(-groups_a_month // page_size)

    real = transform.cost_request
    built: list[int] = []

    def throttle_at_page_n(*args: Any, **kwargs: Any) -> dict[str, Any]:
        built.append(1)
        if len(built) == failing_page:  # throttled beyond botocore's retries at page N
            sim.faults.add("ce", "GetCostAndUsage", "LimitExceededException", times=6)
        return real(*args, **kwargs)

    monkeypatch.setattr(transform, "cost_request", throttle_at_page_n)
    try:
        run_costs(app_conn, payer, clock)
        assert runs(app_conn, payer)[-1]["error_class"] == "Throttled"
        paid = failing_page - 1
        kept = {k[1] for k in cost_rows(app_conn, payer)}
        assert len(kept) == paid * page_size // groups_a_month  # every complete month is kept

        clock.advance(minutes=20)  # after the backoff
        run_costs(app_conn, payer, clock)
    finally:
        sim.ce_page_size = 50

    assert runs(app_conn, payer)[-1]["status"] == "succeeded"
    calls = ce_calls(sim, payer.aws_account_id)
    retry = calls[paid + 6 :]
    assert retry[0]["TimePeriod"]["Start"] > WINDOW[0] + "-01"  # not from the first month again
    # Bought again: at most the pages of the one month in progress at the failure.
    assert paid + len(retry) <= pages_of_one_call + pages_of_one_month
    rows = cost_rows(app_conn, payer)
    assert len(rows) == 14 * groups_a_month * 3
    assert rows[(members[7], "2024-02", "Service 4", "UnblendedCost")][0] == Decimal(5)


# ---- 4. beyond the page budget: stored as it goes, continued at once --------------------------


@pytest.mark.slow  # 218 requests: the real page budget (200) must be exceeded
def test_a_first_pull_beyond_the_page_budget_is_stored_as_it_goes_and_finished_the_same_day(
    sim: SimulatedAws,
    small_pages: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
) -> None:
    clock.advance(days=6)  # the 20th: no re-pull of February, to count this pull's pages alone
    linked = link(sim, app_conn, agency)
    # 31 services x 14 months at 2 groups a page: 217 pages, more than a run may buy (200).
    put_year(sim, linked.aws_account_id, {f"S{n:02d}": "1" for n in range(31)}, current="2025-03")

    run_costs(app_conn, linked, clock)
    first = runs(app_conn, linked)[-1]
    assert first["status"] == "partial" and first["error_class"] is None
    assert 200 <= first["ce_requests"] <= 202  # up to the first month boundary after 200
    stored = {k[1] for k in cost_rows(app_conn, linked)}
    assert len(stored) == 13 and max(stored) == "2025-02"
    assert job(app_conn, linked)["next_run_at"] <= clock()  # due again now, not tomorrow

    clock.advance(minutes=5)  # the next dispatch
    run_costs(app_conn, linked, clock)
    second = runs(app_conn, linked)[-1]
    assert second["status"] == "succeeded"
    assert ce_calls(sim, linked.aws_account_id)[-1]["TimePeriod"]["Start"] == "2025-03-01"
    assert first["ce_requests"] + second["ce_requests"] <= 217 + 1  # + the page a month straddled
    assert len(cost_rows(app_conn, linked)) == 14 * 31 * 3
    assert job(app_conn, linked)["next_run_at"] > clock() + timedelta(hours=12)


def test_a_payer_and_its_member_storing_the_same_month_at_once_leave_one_source(
    database: TestDatabase,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
) -> None:
    payer = link(None, app_conn, agency, management=True)
    member = link(None, app_conn, agency)
    march = date(2025, 3, 1)

    def row(amount: str) -> CostRow:
        return CostRow(
            member.aws_account_id,
            march,
            "Amazon EC2",
            "UnblendedCost",
            Decimal(amount),
            "USD",
            True,
        )

    def store(conn: psycopg.Connection[Any], linked: Linked, amount: str) -> None:
        costs.store_months(
            conn,
            agency.id,
            linked.account_id,
            {march: True},
            [row(amount)],
            covers=[member.aws_account_id],
            synced_at=START,
        )

    with database.app() as other:
        member_done = threading.Event()

        def member_writes() -> None:
            with tenant_tx(other, agency.id):
                store(other, member, "100")
            member_done.set()

        with tenant_tx(app_conn, agency.id):
            store(app_conn, payer, "100")  # the payer's write, not committed yet ...
            writer = threading.Thread(target=member_writes)
            writer.start()  # ... while the member's runs: it must wait, not go past it
            waited = not member_done.wait(1.0)
        writer.join(10)

    assert waited  # it waited for the payer's transaction
    assert month_totals(app_conn, agency, member.aws_account_id) == {"2025-03": Decimal(100)}
    assert cost_rows(app_conn, payer) == {}  # the later write is the one source


def test_a_member_that_left_the_organization_is_synced_on_its_own(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture, clock: Clock
) -> None:
    payer = link(sim, app_conn, agency, management=True)
    member = link(sim, app_conn, agency)
    sim.create_organization(payer.aws_account_id, [member.aws_account_id])
    put_year(sim, payer.aws_account_id, {"AWS Organizations": "1"}, current="2025-03")
    put_year(sim, member.aws_account_id, {"Amazon EC2": "10"}, current="2025-03")
    run_costs(app_conn, payer, clock)

    # The member leaves the organization: the payer's Cost Explorer no longer shows it.
    organizations_backends[payer.aws_account_id]["aws"].remove_account_from_organization(
        AccountId=member.aws_account_id
    )
    organizations_backends.master_accounts.pop(member.aws_account_id, None)
    clock.advance(days=1)
    run_costs(app_conn, payer, clock)  # February and March, without the member
    run_costs(app_conn, member, clock)  # no longer covered: it pulls for itself

    assert len(ce_calls(sim, member.aws_account_id)) == 1
    totals = month_totals(app_conn, agency, member.aws_account_id)
    assert totals == dict.fromkeys(WINDOW, Decimal(10))  # every month, once
