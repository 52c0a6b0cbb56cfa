"""End to end on the simulated AWS (issue 19's "done when"): 60 simulated days of noisy normal
spend, with month starts and their fees, a credit, an Estimated revision, Cost Explorer's lag
and a payer outage (its member pulled on its own, then through the payer again), raise no
anomaly; a planted EC2 spike with matching RunInstances events raises exactly one, naming the
planted principal and events. Every sync goes through the worker (the costs job: the sync,
then the evaluation), the CloudTrail events through the real CloudTrail job.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from devstack.simaws import SimulatedAws
from devstack.spend import Adjustment, Line, SpendScenario, run_instances_events
from functions.alerts import service as alerts
from functions.jobs import worker
from functions.jobs.schemas import JobMessage
from shared import bootstrap
from shared.db import tenant_tx
from tests.support.factories import AgencyFixture
from tests.support.jobs import Clock, Linked, ce_calls, job_id, link, run_costs

pytestmark = pytest.mark.usefixtures("aws_settings")

EC2 = "Amazon Elastic Compute Cloud - Compute"
DAY0 = datetime(2025, 1, 6, 6, 0, tzinfo=UTC)
NORMAL_DAYS = 60
SPIKE_DAYS = (NORMAL_DAYS + 1, NORMAL_DAYS + 2, NORMAL_DAYS + 3)
OUTAGE_DAYS = (30, 31, 32)
PRINCIPAL = "deploy-bot"
SOURCE_IP = "203.0.113.7"


def scenario(a: str, payer: str, member: str, seed: int = 19) -> SpendScenario:
    day = DAY0.date()
    return SpendScenario(
        seed=seed,
        lines=[
            Line(a, EC2, Decimal(60)),
            Line(a, "Amazon Simple Storage Service", Decimal(3), noise=0.3),
            Line(a, "AWS Lambda", Decimal("0.40"), noise=0.9),  # cents: never an alert
            Line(payer, "Amazon Relational Database Service", Decimal(25)),
            Line(member, EC2, Decimal(120)),
            Line(member, "Amazon CloudFront", Decimal(8), noise=0.4),
        ],
        month_fees=[
            Line(a, "AWS Support (Business)", Decimal(100)),
            Line(payer, "Tax", Decimal(45)),
            Line(member, "Savings Plans for AWS Compute usage", Decimal(500)),
        ],
        adjustments=[
            # A reservation's monthly fee on EC2 itself, posted on the 3rd.
            Adjustment(date(2025, 2, 3), a, EC2, Decimal(300)),
            Adjustment(date(2025, 3, 3), a, EC2, Decimal(300)),
            Adjustment(date(2025, 2, 10), a, EC2, Decimal(-80)),  # a credit
            Adjustment(date(2025, 2, 20), member, EC2, Decimal(-40)),  # an Estimated revision
            *(Adjustment(day + timedelta(days=n), a, EC2, Decimal(400)) for n in SPIKE_DAYS),
        ],
    )


def run_cloudtrail(conn: psycopg.Connection[Any], linked: Linked, clock: Clock) -> None:
    deps = bootstrap.current().but(clock=clock)
    message = JobMessage(
        job_id(conn, linked, "cloudtrail"), linked.agency_id, "cloudtrail", clock()
    )
    worker.process(conn, message, 1, deps)


def anomalies(conn: psycopg.Connection[Any], agency: AgencyFixture) -> list[dict[str, Any]]:
    with tenant_tx(conn, agency.id):
        cur = conn.execute("SELECT * FROM cao.anomalies ORDER BY first_detected_at")
        assert cur.description is not None
        names = [c.name for c in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def test_normal_spend_is_quiet_and_a_planted_spike_is_one_anomaly_with_what_changed(
    sim: SimulatedAws, app_conn: psycopg.Connection[Any], agency: AgencyFixture
) -> None:
    clock = Clock(DAY0)
    sim.clock = clock
    a = link(sim, app_conn, agency, due_at=DAY0, aws_account_id="190000000001")
    payer = link(sim, app_conn, agency, management=True, due_at=DAY0, aws_account_id="190000000002")
    member = link(sim, app_conn, agency, due_at=DAY0, aws_account_id="190000000003")
    sim.create_organization(payer.aws_account_id, [member.aws_account_id])
    spend = scenario(
        a.aws_account_id,
        payer.aws_account_id,
        member.aws_account_id,
    )
    first_day = DAY0.date() - timedelta(days=5)
    a_requests: list[int] = []

    def one_day(n: int) -> None:
        now = DAY0 + timedelta(days=n, minutes=(n * 7) % 50)
        clock.advance(seconds=(now - clock()).total_seconds())
        spend.post_through(sim, now.date(), first_day)
        if n in OUTAGE_DAYS:
            sim.faults.add(
                "ce",
                "GetCostAndUsage",
                "DataUnavailableException",
                account_id=payer.aws_account_id,
            )
        before = len(ce_calls(sim, a.aws_account_id))
        for linked in (payer, member, a):
            run_costs(app_conn, linked, clock)
        a_requests.append(len(ce_calls(sim, a.aws_account_id)) - before)

    for n in range(NORMAL_DAYS + 1):
        one_day(n)

    assert anomalies(app_conn, agency) == []
    # The snapshots added no Cost Explorer request: one page a day, as before them.
    assert a_requests == [1] * (NORMAL_DAYS + 1)
    with tenant_tx(app_conn, agency.id):
        sources = app_conn.execute(
            "SELECT DISTINCT account_id FROM cao.cost_snapshots WHERE usage_account_id = %s",
            (member.aws_account_id,),
        ).fetchall()
        months = app_conn.execute(
            "SELECT DISTINCT month FROM cao.cost_snapshots WHERE usage_account_id = %s",
            (a.aws_account_id,),
        ).fetchall()
    # The member's series came through its payer and, during the outage, through its own link.
    assert {r[0] for r in sources} == {payer.account_id, member.account_id}
    assert {r[0] for r in months} >= {date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)}

    # The spike, and the calls behind it, the day it starts.
    spike_day = DAY0 + timedelta(days=SPIKE_DAYS[0])
    calls = [spike_day + timedelta(hours=1, minutes=3 * k) for k in range(14)]
    events = run_instances_events(
        a.aws_account_id, principal=PRINCIPAL, source_ip=SOURCE_IP, times=calls
    )
    events += run_instances_events(
        a.aws_account_id,
        principal=PRINCIPAL,
        source_ip=SOURCE_IP,
        times=calls[:5],
        event_name="CreateTags",
    )
    events += run_instances_events(
        a.aws_account_id,
        principal="alice",
        source_ip="198.51.100.4",
        times=calls[:2],
        event_name="CreateRole",
    )
    events += run_instances_events(
        a.aws_account_id,
        principal="alice",
        source_ip="198.51.100.4",
        times=calls[:3],
        event_name="DescribeInstances",
    )
    sim.put_events(a.aws_account_id, "us-east-1", events)
    for n in range(NORMAL_DAYS + 1, SPIKE_DAYS[-1] + 4):
        one_day(n)
    run_cloudtrail(app_conn, a, clock)

    (found,) = anomalies(app_conn, agency)
    assert found["usage_account_id"] == a.aws_account_id and found["service"] == EC2
    assert found["rate_per_day"] > 2 * found["baseline_per_day"]
    assert found["last_detected_at"] > found["first_detected_at"]  # extended, not raised again

    detail = alerts.get_anomaly(app_conn, agency.id, found["id"])
    changed = detail.what_changed
    top = changed.groups[0]
    assert top.event_name == "RunInstances" and top.count == 14 and top.match == "service"
    assert top.principal_arn == f"arn:aws:iam::{a.aws_account_id}:user/{PRINCIPAL}"
    assert top.source_ips == [SOURCE_IP]
    names = [g.event_name for g in changed.groups]
    assert names == ["RunInstances", "CreateTags", "CreateRole"]  # no read, ranked by service
    assert changed.groups[1].match == "shared" and changed.groups[2].match == "other"
    assert "us-east-1" in [r.region for r in changed.regions_read]
    assert changed.since <= calls[0] <= changed.until
    assert detail.summary.startswith(f"{a.aws_account_id}: {EC2} grew ")
