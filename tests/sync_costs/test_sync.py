"""One account's cost sync against the simulated AWS and the real Postgres: paging, replace-
month semantics, Estimated months, organizations, request counts, and classified failures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import pytest

from devstack.simaws import SimulatedAws
from shared.db import tenant_tx
from shared.store import costs, jobs
from tests.support.factories import AgencyFixture
from tests.support.jobs import (
    START,
    Clock,
    account,
    agency_total,
    ce_calls,
    cost_rows,
    drop_cost,
    job,
    link,
    put_year,
    run_costs,
    runs,
    set_estimated,
)

pytestmark = pytest.mark.usefixtures("aws_settings")

SERVICES = {"Amazon EC2": "12.5", "Amazon S3": "0.0123456789", "AWS Lambda": "3"}


def test_a_first_sync_pulls_fourteen_months_in_pages_passing_the_token_back(
    sim: SimulatedAws,
    small_pages: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, SERVICES, current="2025-03")

    assert run_costs(app_conn, linked, clock) is None

    calls = ce_calls(sim, linked.aws_account_id)
    assert len(calls) == 21  # 14 months x 3 services, 2 groups a page
    tokens = [c.pop("NextPageToken", None) for c in calls]
    assert tokens[0] is None and None not in tokens[1:]
    assert len(set(tokens[1:])) == 20  # each page asked once: never page one again
    assert all(c == calls[0] for c in calls)  # otherwise identical parameters
    assert calls[0]["TimePeriod"] == {"Start": "2024-02-01", "End": "2025-04-01"}
    assert calls[0]["Granularity"] == "MONTHLY"
    assert calls[0]["Metrics"] == ["UnblendedCost", "AmortizedCost", "NetUnblendedCost"]

    rows = cost_rows(app_conn, linked)
    assert len(rows) == 14 * 3 * 3
    own = linked.aws_account_id
    assert rows[(own, "2024-02", "Amazon S3", "AmortizedCost")] == (Decimal("0.0123456789"), False)
    assert rows[(own, "2025-03", "Amazon EC2", "NetUnblendedCost")] == (Decimal("12.5"), True)

    (run,) = runs(app_conn, linked)
    assert run["status"] == "succeeded" and run["error_class"] is None
    assert run["ce_requests"] == 21 and run["ce_cost_usd"] == Decimal("0.21")
    assert run["api_calls"] == 22  # the assume-role, then one request per page
    assert len(run["months"]) == 14 and run["rows_written"] == 126
    state = job(app_conn, linked)
    assert state["state"] == "idle" and state["lease_token"] is None
    assert state["next_run_at"] > START and state["last_success_at"] == START


def test_a_re_pulled_month_replaces_its_rows_and_a_vanished_service_vanishes(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture, clock: Clock
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, SERVICES, current="2025-03")
    run_costs(app_conn, linked, clock)
    first = cost_rows(app_conn, linked)

    drop_cost(sim, linked.aws_account_id, "2025-03", "AWS Lambda")
    sim.put_cost(
        linked.aws_account_id, "2025-03", "Amazon EC2", {"UnblendedCost": "1"}, estimated=True
    )
    clock.advance(days=1)
    run_costs(app_conn, linked, clock)

    second = cost_rows(app_conn, linked)
    own = linked.aws_account_id
    assert not [k for k in second if k[1] == "2025-03" and k[2] == "AWS Lambda"]
    assert second[(own, "2025-03", "Amazon EC2", "UnblendedCost")][0] == Decimal("13.5")
    # earlier, final months kept their rows; only February (until the 15th) was asked again
    assert {k: v for k, v in second.items() if k[1] < "2025-03"} == {
        k: v for k, v in first.items() if k[1] < "2025-03"
    }
    assert ce_calls(sim, own)[-1]["TimePeriod"]["Start"] == "2025-02-01"

    clock.advance(days=1)
    run_costs(app_conn, linked, clock)
    assert cost_rows(app_conn, linked) == second  # the same sync twice: identical data


def test_estimated_months_are_pulled_again_until_aws_finalises_them(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture, clock: Clock
) -> None:
    linked = link(sim, app_conn, agency)
    own = linked.aws_account_id
    put_year(sim, own, {"Amazon EC2": "5"}, current="2025-03")
    set_estimated(sim, own, "2025-02", True)  # early March: February not final yet
    run_costs(app_conn, linked, clock)
    assert cost_rows(app_conn, linked)[(own, "2025-02", "Amazon EC2", "UnblendedCost")][1]

    clock.advance(days=1)
    run_costs(app_conn, linked, clock)
    assert ce_calls(sim, own)[-1]["TimePeriod"]["Start"] == "2025-02-01"

    set_estimated(sim, own, "2025-02", False)
    clock.advance(days=1)
    run_costs(app_conn, linked, clock)
    assert ce_calls(sim, own)[-1]["TimePeriod"]["Start"] == "2025-02-01"
    rows = cost_rows(app_conn, linked)
    assert rows[(own, "2025-02", "Amazon EC2", "UnblendedCost")] == (Decimal("5"), False)

    clock.advance(days=1)
    run_costs(app_conn, linked, clock)
    assert ce_calls(sim, own)[-1]["TimePeriod"]["Start"] == "2025-03-01"  # February frozen
    assert [r["ce_requests"] for r in runs(app_conn, linked)] == [1, 1, 1, 1]


def test_a_management_account_syncs_its_members_in_one_request_and_a_linked_member_is_not_queried(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture, clock: Clock
) -> None:
    payer = link(sim, app_conn, agency, management=True)
    member = link(sim, app_conn, agency)
    other_member = "210987654321"
    sim.create_organization(payer.aws_account_id, [member.aws_account_id, other_member])
    put_year(sim, payer.aws_account_id, {"AWS Organizations": "1"}, current="2025-03")
    put_year(sim, member.aws_account_id, {"Amazon EC2": "10"}, current="2025-03")
    put_year(sim, other_member, {"Amazon RDS": "7"}, current="2025-03")

    # The member happens to run first, on its own: it sees only itself.
    run_costs(app_conn, member, clock)
    assert len(ce_calls(sim, member.aws_account_id)) == 1
    run_costs(app_conn, payer, clock)

    (call,) = ce_calls(sim, payer.aws_account_id)
    assert call["GroupBy"] == [
        {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
        {"Type": "DIMENSION", "Key": "SERVICE"},
    ]
    rows = cost_rows(app_conn, payer)
    assert {k[0] for k in rows} == {payer.aws_account_id, member.aws_account_id, other_member}
    assert rows[(other_member, "2025-01", "Amazon RDS", "UnblendedCost")][0] == Decimal("7")
    # Each AWS account's cost is counted once across the agency (the member's own rows went).
    assert cost_rows(app_conn, member) == {}
    total = agency_total(app_conn, agency.id, member.aws_account_id, "UnblendedCost")
    assert total == Decimal("140")
    # The member's idle job is done until the next daily run: no request of its own.
    assert job(app_conn, member)["next_run_at"] == job(app_conn, payer)["next_run_at"]

    # Daily runs after that, whichever of the two runs first: the member stays covered, as
    # long as its payer keeps syncing; it makes no request of its own.
    for _day in range(2):
        now = Clock(job(app_conn, member)["next_run_at"])
        assert run_costs(app_conn, member, now) is None
        run_costs(app_conn, payer, now)
    assert len(ce_calls(sim, member.aws_account_id)) == 1
    assert not [
        c
        for c in sim.calls
        if c.operation == "AssumeRole" and member.aws_account_id in str(c.params.get("RoleArn"))
    ][1:]
    assert [r["ce_requests"] for r in runs(app_conn, member)] == [1, 0, 0]
    assert ce_calls(sim, payer.aws_account_id)[-1]["TimePeriod"]["Start"] == "2025-03-01"
    assert len(ce_calls(sim, payer.aws_account_id)) == 3
    assert agency_total(app_conn, agency.id, member.aws_account_id, "UnblendedCost") == total


def test_three_refused_assumes_in_a_row_pause_the_account_without_a_retry_storm(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture, clock: Clock
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "1"}, current="2025-03")
    sim.faults.add("sts", "AssumeRole", "AccessDenied", status=403, times=3)

    for attempt in (1, 2, 3):
        assert run_costs(app_conn, linked, clock) is None  # classified: acknowledged
        marked = account(app_conn, linked)
        assert marked["consecutive_denials"] == attempt
        if attempt < 3:
            assert marked["status"] == "access_denied"
            assert "trust policy" in marked["status_message"]
            state = job(app_conn, linked)
            assert state["state"] == "idle" and state["next_run_at"] > clock()
            assert run_costs(app_conn, linked, clock) is None  # not due again today
            clock.advance(days=1)

    assert marked["status"] == "paused" and "verify the account again" in marked["status_message"]
    assert job(app_conn, linked)["state"] == "paused"
    assert sim.count_calls("sts", "AssumeRole") == 3  # one per daily run, nothing more
    assert [r["error_class"] for r in runs(app_conn, linked)] == ["AccessDenied"] * 3
    assert cost_rows(app_conn, linked) == {}

    # Paused: no delivery runs it, even days later, until the account is verified again.
    clock.advance(days=3)
    run_costs(app_conn, linked, clock)
    assert sim.count_calls("sts", "AssumeRole") == 3
    with tenant_tx(app_conn, agency.id):
        app_conn.execute(
            "UPDATE cao.accounts SET status = 'active' WHERE id = %s", (linked.account_id,)
        )
        assert jobs.resume(app_conn, agency.id, linked.account_id, clock()) == 1
    run_costs(app_conn, linked, clock)
    assert account(app_conn, linked)["consecutive_denials"] == 0
    assert runs(app_conn, linked)[-1]["status"] == "succeeded"


def test_a_successful_assume_ends_a_denial_streak(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture, clock: Clock
) -> None:
    linked = link(sim, app_conn, agency)
    sim.faults.add("sts", "AssumeRole", "AccessDenied", status=403, times=2)
    run_costs(app_conn, linked, clock)
    clock.advance(days=1)
    run_costs(app_conn, linked, clock)
    clock.advance(days=1)
    run_costs(app_conn, linked, clock)
    marked = account(app_conn, linked)
    assert (marked["status"], marked["consecutive_denials"]) == ("active", 0)


def test_throttling_beyond_botocores_retries_reschedules_with_backoff(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    retry_sleeps: list[float],
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "1"}, current="2025-03")
    sim.faults.add("ce", "GetCostAndUsage", "LimitExceededException", times=6)

    assert run_costs(app_conn, linked, clock) is None

    # botocore's standard mode (max_attempts=5 retries): 6 tries, jittered sleeps between
    assert len(ce_calls(sim, linked.aws_account_id)) == 6
    assert len(retry_sleeps) == 5 and all(s > 0 for s in retry_sleeps)
    (run,) = runs(app_conn, linked)
    assert (run["status"], run["error_class"], run["ce_requests"]) == ("failed", "Throttled", 1)
    state = job(app_conn, linked)
    wait = (state["next_run_at"] - START).total_seconds() / 60
    assert state["state"] == "idle" and 7.5 <= wait <= 15  # backoff with jitter
    assert state["consecutive_failures"] == 1 and state["last_error_class"] == "Throttled"
    assert account(app_conn, linked)["status"] == "active"
    assert cost_rows(app_conn, linked) == {}

    clock.advance(minutes=20)
    run_costs(app_conn, linked, clock)
    assert runs(app_conn, linked)[-1]["status"] == "succeeded"
    assert job(app_conn, linked)["consecutive_failures"] == 0


def test_throttling_that_botocore_retries_away_costs_nothing_more_than_the_pages(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    retry_sleeps: list[float],
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "1"}, current="2025-03")
    sim.faults.add("ce", "GetCostAndUsage", "LimitExceededException", times=2)
    run_costs(app_conn, linked, clock)
    (run,) = runs(app_conn, linked)
    assert run["status"] == "succeeded" and run["ce_requests"] == 1
    assert len(retry_sleeps) == 2


def test_cost_explorer_not_enabled_is_its_own_state_with_instructions(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture, clock: Clock
) -> None:
    linked = link(sim, app_conn, agency)
    sim.disable_cost_explorer(linked.aws_account_id)
    run_costs(app_conn, linked, clock)
    marked = account(app_conn, linked)
    assert marked["status"] == "cost_explorer_not_enabled"
    assert "Cost Explorer" in marked["status_message"] and "console" in marked["status_message"]
    assert runs(app_conn, linked)[-1]["error_class"] == "CostExplorerNotEnabled"
    assert job(app_conn, linked)["next_run_at"].date() > START.date()

    sim.enable_cost_explorer(linked.aws_account_id)
    clock.advance(days=1)
    run_costs(app_conn, linked, clock)
    assert account(app_conn, linked)["status"] == "active"


def test_data_unavailable_is_recorded_and_retried_next_day(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture, clock: Clock
) -> None:
    linked = link(sim, app_conn, agency)
    sim.faults.add("ce", "GetCostAndUsage", "DataUnavailableException")
    assert run_costs(app_conn, linked, clock) is None
    run = runs(app_conn, linked)[-1]
    assert (run["status"], run["error_class"]) == ("failed", "DataUnavailable")
    assert job(app_conn, linked)["next_run_at"].date() > START.date()
    assert account(app_conn, linked)["status"] == "active"


def test_a_session_expiring_mid_pagination_is_assumed_again_once_and_the_page_asked_again(
    sim: SimulatedAws,
    small_pages: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, {"Amazon EC2": "1"}, current="2025-03")
    # The session expires just before the third page.
    sim.faults.add("ce", "GetCostAndUsage", "ExpiredTokenException", after=2)
    run_costs(app_conn, linked, clock)

    calls = ce_calls(sim, linked.aws_account_id)
    assert len(calls) == 7 + 1  # 7 pages, the third asked twice
    assert calls[2] == calls[3] and calls[2]["NextPageToken"]  # same token, same parameters
    assert sim.count_calls("sts", "AssumeRole") == 2
    assert runs(app_conn, linked)[-1]["status"] == "succeeded"
    assert len(cost_rows(app_conn, linked)) == 14 * 3


def test_a_crash_while_writing_leaves_the_previous_data_intact(
    sim: SimulatedAws,
    app_conn: psycopg.Connection[Any],
    agency: AgencyFixture,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    linked = link(sim, app_conn, agency)
    put_year(sim, linked.aws_account_id, SERVICES, current="2025-03")
    run_costs(app_conn, linked, clock)
    before = cost_rows(app_conn, linked)
    drop_cost(sim, linked.aws_account_id, "2025-03", "Amazon EC2")

    real = costs.replace_months

    def crash(*args: Any, **kwargs: Any) -> int:
        real(*args, **kwargs)  # rows deleted and rewritten ... then the worker dies
        raise RuntimeError("worker died")

    monkeypatch.setattr(costs, "replace_months", crash)
    clock.advance(days=1)
    with pytest.raises(RuntimeError):
        run_costs(app_conn, linked, clock)

    assert cost_rows(app_conn, linked) == before
    state = job(app_conn, linked)
    assert state["state"] == "queued" and state["lease_token"] is None  # redelivery claims it
    assert runs(app_conn, linked)[-1]["status"] == "failed"
    assert runs(app_conn, linked)[-1]["error_class"] == "RuntimeError"
