"""Issue 14, through the real sync (worker, simulated AWS, Postgres as the app role): one
source per account and month whatever fails when, credits on finalised months show up, a pull
that fails part way keeps what it paid for, and a pull beyond the page budget is stored as it
goes and continued instead of failing daily."""

from __future__ import annotations

import functools
import threading
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from moto.organizations.models import organizations_backends

from devstack.simaws import SimulatedAws
from functions.jobs import registry
from functions.sync_costs import service
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

THROTTLED = 6  # LimitExceededException answers: more than botocore's standard retries take


def big_organization(sim: SimulatedAws, payer: Linked, members: int, services: int) -> list[str]:
    """`members` members and the payer, each with `services` services for 14 months."""
    ids = [f"3000000001{n:02d}" for n in range(members)]
    sim.create_organization(payer.aws_account_id, ids)
    for account in [payer.aws_account_id, *ids]:
        put_year(
            sim, account, {f"Service {n}": str(n + 1) for n in range(services)}, current="2025-03"
        )
    return ids


def tokens_of(calls: list[dict[str, Any]]) -> list[str | None]:
    """Each call's page token; the calls' other parameters must all be the same request."""
    tokens = [c.get("NextPageToken") for c in calls]
    rest = [{k: v for k, v in c.items() if k != "NextPageToken"} for c in calls]
    assert all(r == rest[0] for r in rest)
    return tokens


@pytest.mark.parametrize(
    ("page_size", "failing_page", "retry_after"),
    [
        (50, 10, timedelta(minutes=20)),
        (500, 2, timedelta(minutes=20)),
        # Failed at 23:50, retried after midnight: the request must be the same the next day.
        (50, 7, timedelta(hours=20, minutes=50)),
    ],
    ids=["50-a-page", "500-a-page", "retried-the-next-day"],
)
def test_a_pull_that_fails_at_page_n_and_is_retried_buys_each_page_once(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    retry_sleeps: list[float],
    page_size: int,
    failing_page: int,
    retry_after: timedelta,
) -> None:
    sim.ce_page_size = page_size
    payer = link(sim, app_conn, agency, management=True)
    members = big_organization(sim, payer, 10, 5)
    groups_a_month = 11 * 5  # 770 groups in all: 16 pages of 50, or 2 of 500
    pages_of_one_call = -(-14 * groups_a_month // page_size)
    if retry_after > timedelta(hours=1):
        clock.advance(seconds=(retry_after - timedelta(minutes=20)).total_seconds())  # 23:50
    sim.faults.add(
        "ce",
        "GetCostAndUsage",
        "LimitExceededException",
        times=THROTTLED,
        after=failing_page - 1,  # throttled beyond botocore's retries at page N
    )
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
    tokens = tokens_of(ce_calls(sim, payer.aws_account_id))
    # The page N request, throttled, then sent again by the retry with the same token: every
    # other page was asked once, and the pages asked are exactly the pages of one call.
    assert tokens[paid : paid + THROTTLED + 1] == [tokens[paid]] * (THROTTLED + 1)
    answered = tokens[:paid] + tokens[paid + THROTTLED :]
    assert len(answered) == len(set(answered)) == pages_of_one_call
    rows = cost_rows(app_conn, payer)
    assert len(rows) == 14 * groups_a_month * 3
    assert rows[(members[7], "2024-02", "Service 4", "UnblendedCost")][0] == Decimal(5)
    # The run records count the throttled request once (botocore's retries are inside it).
    assert sum(r["ce_requests"] for r in runs(app_conn, payer)) == pages_of_one_call + 1


def test_a_retry_whose_token_aws_refuses_asks_again_only_for_the_months_not_stored(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    retry_sleeps: list[float],
) -> None:
    payer = link(sim, app_conn, agency, management=True)
    big_organization(sim, payer, 10, 5)  # 55 groups a month: 16 pages of 50
    sim.faults.add("ce", "GetCostAndUsage", "LimitExceededException", times=THROTTLED, after=9)
    run_costs(app_conn, payer, clock)  # 9 pages: 450 groups, 8 months complete, the 9th begun
    assert len({k[1] for k in cost_rows(app_conn, payer)}) == 8

    clock.advance(seconds=sim.ce_token_ttl_s + 1)  # the token has expired
    run_costs(app_conn, payer, clock)

    assert runs(app_conn, payer)[-1]["status"] == "succeeded"
    calls = ce_calls(sim, payer.aws_account_id)[9 + THROTTLED :]
    refused, *again = calls
    assert refused["NextPageToken"]  # the kept token, refused (InvalidNextTokenException)
    # From the month in progress (the 9th, October 2024) on, from its first page: 6 months of
    # 55 groups = 7 pages. Bought twice: the 10 groups of October on page 9, nothing else.
    assert again[0]["TimePeriod"]["Start"] == "2024-10-01" and "NextPageToken" not in again[0]
    assert len(again) == 7
    assert len(cost_rows(app_conn, payer)) == 14 * 55 * 3
    assert month_totals(app_conn, agency, payer.aws_account_id) == dict.fromkeys(
        WINDOW, Decimal(15)
    )


def test_a_pull_kept_from_last_month_is_dropped_and_the_months_not_stored_planned_afresh(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    retry_sleeps: list[float],
) -> None:
    clock.advance(days=17, hours=20, minutes=50)  # 31 March, 23:50
    payer = link(sim, app_conn, agency, management=True)
    big_organization(sim, payer, 10, 5)  # 55 groups a month: 16 pages of 50
    sim.faults.add("ce", "GetCostAndUsage", "LimitExceededException", times=THROTTLED, after=9)
    run_costs(app_conn, payer, clock)  # 8 months stored, the 9th (October) begun
    assert len({k[1] for k in cost_rows(app_conn, payer)}) == 8

    clock.advance(minutes=20)  # 1 April: last month's request is no longer this month's
    run_costs(app_conn, payer, clock)

    assert runs(app_conn, payer)[-1]["status"] == "succeeded"
    retry = ce_calls(sim, payer.aws_account_id)[9 + THROTTLED :]
    assert "NextPageToken" not in retry[0]  # not the kept token of March's request
    assert retry[0]["TimePeriod"] == {"Start": "2024-10-01", "End": "2025-05-01"}
    totals = month_totals(app_conn, agency, payer.aws_account_id)
    assert totals == {**dict.fromkeys(WINDOW, Decimal(15))}  # April: no cost yet


# ---- 4. beyond the page budget: stored as it goes, continued at once --------------------------


@pytest.mark.slow  # 217 requests: the real page budget (200) must be exceeded
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
    assert first["ce_requests"] == 200
    stored = {k[1] for k in cost_rows(app_conn, linked)}
    assert len(stored) == 12 and max(stored) == "2025-01"  # 400 groups: 12 months and 28 more
    assert job(app_conn, linked)["next_run_at"] <= clock()  # due again now, not tomorrow

    clock.advance(minutes=5)  # the next dispatch
    run_costs(app_conn, linked, clock)
    second = runs(app_conn, linked)[-1]
    assert second["status"] == "succeeded"
    assert second["ce_requests"] == 17  # from the token: each page bought once
    tokens = tokens_of(ce_calls(sim, linked.aws_account_id))
    assert len(tokens) == len(set(tokens)) == 217
    assert len(cost_rows(app_conn, linked)) == 14 * 31 * 3
    assert job(app_conn, linked)["next_run_at"] > clock() + timedelta(hours=12)


def test_a_month_beyond_the_page_limit_is_split_by_linked_accounts_and_completes_over_runs(
    sim: SimulatedAws,
    small_pages: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real limits (1000 pages a month, 200 a run) scaled down: 8 pages a month, 40 a run.
    limits = service.Limits(page_budget=40, max_pages=8)
    monkeypatch.setitem(registry.HANDLERS, "costs", functools.partial(service.run, limits=limits))
    clock.advance(days=6)  # the 20th: no re-pull of February, to count this pull's pages alone
    payer = link(sim, app_conn, agency, management=True)
    members = big_organization(sim, payer, 7, 3)  # 8 accounts x 3 services: 12 pages a month
    aws = {month: Decimal(6) for month in WINDOW}  # each account's month: 1 + 2 + 3

    statuses = []
    for _ in range(10):
        run_costs(app_conn, payer, clock)
        statuses.append(runs(app_conn, payer)[-1]["status"])
        if statuses[-1] != "partial":
            break
        assert job(app_conn, payer)["next_run_at"] <= clock()  # due again at once
        clock.advance(minutes=5)
    assert statuses[-1] == "succeeded" and "failed" not in statuses
    for account in [payer.aws_account_id, *members]:
        assert month_totals(app_conn, agency, account) == aws, account
    assert len(cost_rows(app_conn, payer)) == 14 * 8 * 3 * 3

    calls = ce_calls(sim, payer.aws_account_id)
    whole = [c for c in calls if "Filter" not in c]
    # One request for the whole organization, given up once its first month passed 8 pages
    # (those 9 pages are the only ones bought twice), then a request per group of 3 accounts
    # (the 6 seen in those pages, halved) and one for every other account.
    assert len(whole) == 9 and len(calls) == 9 + 63 + 63 + 42
    filters = [c["Filter"] for c in calls[9:]]
    groups = [f["Dimensions"]["Values"] for f in filters if "Dimensions" in f]
    assert sorted(len(g) for g in {tuple(g) for g in groups}) == [3, 3]
    assert "Not" in filters[-1]
    with tenant_tx(app_conn, agency.id):
        months = costs.month_records(app_conn, agency.id, [payer.account_id])
    assert sorted(months) == [date.fromisoformat(m + "-01") for m in WINDOW]
    assert months[date(2025, 3, 1)].estimated and not months[date(2025, 2, 1)].estimated

    # The next day: split from the start, never the whole organization again.
    clock.advance(days=1)
    before = len(calls)
    run_costs(app_conn, payer, clock)
    assert runs(app_conn, payer)[-1]["status"] == "succeeded"
    later = ce_calls(sim, payer.aws_account_id)[before:]
    assert later and all("Filter" in c for c in later)
    assert all(c["TimePeriod"]["Start"] == "2025-03-01" for c in later)
    assert month_totals(app_conn, agency, members[0])["2025-03"] == Decimal(6)


@pytest.mark.slow  # 249 requests over 7 runs
def test_a_group_still_beyond_the_page_limit_is_split_again(
    sim: SimulatedAws,
    small_pages: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limits = service.Limits(page_budget=40, max_pages=8)
    monkeypatch.setitem(registry.HANDLERS, "costs", functools.partial(service.run, limits=limits))
    clock.advance(days=6)
    payer = link(sim, app_conn, agency, management=True, aws_account_id="300000000000")
    members = big_organization(sim, payer, 7, 3)
    big = members[4]  # 12 services: its group of 3 accounts needs 9 pages a month
    put_year(sim, big, {f"Extra {n}": "1" for n in range(9)}, current="2025-03")

    for _ in range(12):
        run_costs(app_conn, payer, clock)
        if runs(app_conn, payer)[-1]["status"] != "partial":
            break
        clock.advance(minutes=5)
    assert [r["status"] for r in runs(app_conn, payer)][-1] == "succeeded"
    assert "failed" not in {r["status"] for r in runs(app_conn, payer)}
    assert month_totals(app_conn, agency, big) == dict.fromkeys(WINDOW, Decimal(15))
    for account in [payer.aws_account_id, *members[:4], *members[5:]]:
        assert month_totals(app_conn, agency, account) == dict.fromkeys(WINDOW, Decimal(6))

    calls = ce_calls(sim, payer.aws_account_id)
    parts = [
        tuple(c["Filter"]["Dimensions"]["Values"]) if "Dimensions" in c.get("Filter", {}) else None
        for c in calls
    ]
    # The whole organization (9 pages), the first group of 3 (63), the second (9 pages, then
    # beyond the limit), its accounts one by one (21, 21, 84), every other account (42).
    assert parts.count((members[2], members[3], big)) == 9
    assert [parts.count((m,)) for m in (members[2], members[3], big)] == [21, 21, 84]
    assert len(calls) == 9 + 63 + 9 + 21 + 21 + 84 + 42


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
