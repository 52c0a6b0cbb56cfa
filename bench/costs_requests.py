"""Benchmark: Cost Explorer requests per day, re-pulls included, against the pages AWS has.

    python -m bench.costs_requests [services per account]

Budget (design.md, as the README restates it): each request costs the client $0.01 and no
page is bought twice: a sync's requests equal the pages of its one GetCostAndUsage call. Steady
state: one request per page per account or organization per day, plus the scheduled re-pulls of
months not yet settled (the previous month daily until the 15th; the last 3 months weekly).

Measured for a standalone account and a 20-member organization (management account linked, and
its members linked on their own too), with the simulator answering 50 and then 500 groups per
page (AWS does not document its page size): the first sync (14 months, on the 1st of a month),
then a daily sync every day of that month, 30 days, which covers both halves of the month and
four weekly re-pulls.

Everything runs for real except AWS: the sync (`functions.jobs.worker.process`, i.e. claim,
assume-role, paging, writes, run record) on an embedded Postgres, against the simulated AWS
whose clock follows the benchmark's. "Pages" of the first sync is measured independently: the
same request walked page by page with a plain client. Last, the organization's first sync
failing half way and retried (`FAILURES`): resumed from its kept page token when the retry comes
within the token's life, each page bought once; asked again for the months not stored when the
token has expired.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from devstack import pg
from devstack.simaws import SimulatedAws
from functions.jobs import worker
from functions.jobs.schemas import JobMessage
from shared import aws, bootstrap
from shared.bootstrap import Deps
from shared.db import tenant_tx
from shared.policy import ROLE_POLICY, trust_policy
from shared.settings import Settings
from shared.store import jobs

OUR_ACCOUNT = "123456789012"
ROLE = "CloudAgencyOpsReadOnly"
START = datetime(2025, 3, 1, 3, 0, tzinfo=UTC)  # the first sync, on the 1st
DAYS = 30  # daily syncs after it: every other day of March
PAGE_SIZES = (50, 500)
MEMBERS = 20
METRICS = ("UnblendedCost", "AmortizedCost", "NetUnblendedCost")
_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
}


@dataclass(frozen=True)
class Linked:
    agency_id: Any
    account_id: Any
    aws_account_id: str
    role_arn: str
    external_id: str


@contextmanager
def environment() -> Iterator[tuple[SimulatedAws, psycopg.Connection[Any], Settings]]:
    for name, value in _DUMMY_ENV.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # the table, not a log line per sync
    os.environ.pop("MOTO_ACCOUNT_ID", None)
    name = f"cao_bench_{secrets.token_hex(3)}"
    with (
        tempfile.TemporaryDirectory(prefix="cao-bench-") as tmp,
        pg.embedded_server(Path(tmp), keep=False) as admin,
        SimulatedAws() as sim,
    ):
        db = pg.bootstrap(admin, name, "bench-owner", "bench-app")
        key, secret = sim.create_user_with_key(OUR_ACCOUNT, "cao-service")
        settings = Settings(
            {
                "DATABASE_URL": db.app_url,
                "CAO_AWS_ACCOUNT_ID": OUR_ACCOUNT,
                "CAO_AWS_ACCESS_KEY_ID": key,
                "CAO_AWS_SECRET_ACCESS_KEY": secret,
                "CAO_AWS_ENDPOINT_URL": sim.endpoint_url,
            }
        )
        try:
            with (
                bootstrap.use(Deps(settings)),
                psycopg.connect(db.app_url, autocommit=True, prepare_threshold=None) as conn,
            ):
                yield sim, conn, settings
        finally:
            pg.drop(admin, name)


def new_agency(conn: psycopg.Connection[Any]) -> tuple[Any, str]:
    external_id = "bench-" + secrets.token_urlsafe(18)
    row = conn.execute(
        "SELECT agency_id FROM cao.create_agency(%s, %s, %s, %s, %s)",
        ("Bench agency", "bench@example.com", external_id, secrets.token_bytes(32), "cao_b"),
    ).fetchone()
    assert row is not None
    return row[0], external_id


def link(
    sim: SimulatedAws,
    conn: psycopg.Connection[Any],
    agency: tuple[Any, str],
    aws_account_id: str,
    management: bool = False,
) -> Linked:
    agency_id, external_id = agency
    role_arn = sim.create_role(
        aws_account_id, ROLE, trust_policy(OUR_ACCOUNT, external_id), ROLE_POLICY
    )
    with tenant_tx(conn, agency_id):
        row = conn.execute(
            "INSERT INTO cao.accounts (agency_id, aws_account_id, role_arn, external_id_id,"
            " is_management) SELECT %s, %s, %s, id, %s FROM cao.external_ids"
            " WHERE agency_id = %s AND retired_at IS NULL RETURNING id",
            (agency_id, aws_account_id, role_arn, management, agency_id),
        ).fetchone()
        assert row is not None
        jobs.ensure_jobs(conn, agency_id, row[0], ["costs"], due_at=START)
    return Linked(agency_id, row[0], aws_account_id, role_arn, external_id)


def put_costs(sim: SimulatedAws, account: str, services: int) -> None:
    """14 months of `services` services: the current month Estimated, the rest final."""
    for back in range(14):
        index = 2025 * 12 + 2 - back
        month = f"{index // 12}-{index % 12 + 1:02d}"
        for n in range(services):
            amount = f"{(n + 1) * 1.25 + back:.4f}"
            sim.put_cost(
                account,
                month,
                f"Service {n:02d}",
                dict.fromkeys(METRICS, amount),
                estimated=back == 0,
            )


def sync(conn: psycopg.Connection[Any], linked: Linked, now: datetime) -> dict[str, Any]:
    """One delivery of the account's costs job; returns its run record."""
    with tenant_tx(conn, linked.agency_id):
        job_row = conn.execute(
            "SELECT id FROM cao.sync_jobs WHERE account_id = %s AND kind = 'costs'",
            (linked.account_id,),
        ).fetchone()
    assert job_row is not None
    message = JobMessage(job_row[0], linked.agency_id, "costs", now)
    worker.process(conn, message, 1, bootstrap.current().but(clock=lambda: now))
    with tenant_tx(conn, linked.agency_id):
        cur = conn.execute(
            "SELECT status, ce_requests, ce_cost_usd, coalesce(cardinality(months), 0)"
            " FROM cao.sync_runs WHERE account_id = %s ORDER BY started_at DESC LIMIT 1",
            (linked.account_id,),
        )
        status, requests, cost, months = cur.fetchone() or (None, 0, 0, 0)
    return {"status": status, "requests": requests, "cost": cost, "months": months}


def pages_of_one_call(sim: SimulatedAws, settings: Settings, linked: Linked) -> int:
    """Walk the first sync's request page by page with a plain client: the pages AWS has."""
    calls = [
        c.params
        for c in sim.calls
        if c.operation == "GetCostAndUsage" and c.account_id == linked.aws_account_id
    ]
    params = {k: v for k, v in calls[0].items() if k != "NextPageToken"}
    clients = aws.assume_role(
        Deps(settings).our_clients(), linked.role_arn, linked.external_id, "cao-bench-reference"
    )
    ce = clients.client("ce")
    pages, token = 0, None
    while True:
        answer = ce.get_cost_and_usage(**params, **({"NextPageToken": token} if token else {}))
        pages += 1
        token = answer.get("NextPageToken")
        if not token:
            return pages


@dataclass(frozen=True)
class Row:
    account: str
    page_size: int
    first_pages: int
    first_requests: int
    daily: list[int]  # requests of each daily sync after the first

    def cells(self) -> tuple[str, ...]:
        days = self.daily
        return (
            self.account,
            str(self.page_size),
            str(self.first_pages),
            str(self.first_requests),
            f"{min(days)}-{max(days)}",
            str(sum(days)),
            f"{sum(days) / len(days):.2f}",
            f"${sum(days) / 100:.2f}",
        )


def _at(now: datetime) -> Callable[[], datetime]:
    return lambda: now


def month_of_syncs(
    sim: SimulatedAws,
    settings: Settings,
    conn: psycopg.Connection[Any],
    first: Linked,
    others: list[Linked],
) -> tuple[int, int, list[int]]:
    """The first sync on START, then one a day for DAYS days; `first` syncs before `others`
    each day. Returns (pages of the first sync's call, its requests, requests of each day)."""
    daily: list[int] = []
    first_pages = first_requests = 0
    for day in range(DAYS + 1):
        now = START + timedelta(days=day)
        sim.clock = _at(now)
        requests = sync(conn, first, now)["requests"]
        if day == 0:
            first_pages, first_requests = pages_of_one_call(sim, settings, first), requests
        requests += sum(sync(conn, m, now)["requests"] for m in others)
        if day:
            daily.append(requests)
    return first_pages, first_requests, daily


# A failure half way through the organization's first sync, and when its retry comes: a
# transient error retried after the backoff (within the simulator's page-token lifetime, 1 h),
# or DataUnavailableException, retried the next day (the kept token has expired by then).
FAILURES = (
    ("BillExpirationException", timedelta(minutes=20)),
    ("DataUnavailableException", timedelta(days=1)),
)


@dataclass(frozen=True)
class Resumed:
    page_size: int
    code: str
    retry_after: timedelta
    pages: int  # pages of the one call
    failing: int  # the page whose request failed
    answered: int  # pages answered in all (refused requests excluded)
    refused: int  # requests answered with an error (the failure, an expired token)

    def line(self) -> str:
        minutes = int(self.retry_after.total_seconds() // 60)
        after = f"{minutes // 1440} day" if minutes >= 1440 else f"{minutes} min"
        return (
            f"{self.page_size} groups/page, {self.code} at page {self.failing} of {self.pages},"
            f" retried after {after}: {self.answered} pages bought for a call of {self.pages},"
            f" {self.refused} refused"
        )


def failed_and_resumed(
    sim: SimulatedAws,
    conn: psycopg.Connection[Any],
    prefix: str,
    services: int,
    page_size: int,
    failure: tuple[str, timedelta],
) -> Resumed:
    """The organization's first sync failing at its middle page, then retried."""
    code, retry_after = failure
    sim.ce_page_size = page_size
    org = new_agency(conn)
    payer = link(sim, conn, org, f"{prefix}00", management=True)
    member_ids = [f"{prefix}{m + 1:02d}" for m in range(MEMBERS)]
    sim.create_organization(payer.aws_account_id, member_ids)
    for account in [payer.aws_account_id, *member_ids]:
        put_costs(sim, account, services)
    pages = -(-(MEMBERS + 1) * services * 14 // page_size)
    failing = pages // 2 + 1
    sim.clock = _at(START)
    sim.faults.add(
        "ce", "GetCostAndUsage", code, account_id=payer.aws_account_id, after=failing - 1
    )
    before = len(sim.calls)
    assert sync(conn, payer, START)["status"] == "failed"
    retry = START + retry_after
    sim.clock = _at(retry)
    assert sync(conn, payer, retry)["status"] == "succeeded"
    calls = [
        c
        for c in sim.calls[before:]
        if c.operation == "GetCostAndUsage" and c.account_id == payer.aws_account_id
    ]
    # The failure is refused; so is the retry's first request when it sends the kept token
    # and the next one starts again from a first page (the token had expired).
    retried = [c.params for c in calls[failing:]]
    expired = (
        len(retried) > 1 and "NextPageToken" in retried[0] and "NextPageToken" not in retried[1]
    )
    refused = 1 + int(expired)
    return Resumed(page_size, code, retry_after, pages, failing, len(calls) - refused, refused)


def main(services: int) -> None:
    rows: list[Row] = []
    resumed: list[Resumed] = []
    with environment() as (sim, conn, settings):
        for n, page_size in enumerate(PAGE_SIZES):
            sim.ce_page_size = page_size
            agency = new_agency(conn)
            alone = link(sim, conn, agency, f"2000000000{n:02d}")
            put_costs(sim, alone.aws_account_id, services)
            pages, first, daily = month_of_syncs(sim, settings, conn, alone, [])
            rows.append(Row("standalone", page_size, pages, first, daily))

            org = new_agency(conn)
            payer = link(sim, conn, org, f"30000000{n:02d}00", management=True)
            member_ids = [f"30000000{n:02d}{m + 1:02d}" for m in range(MEMBERS)]
            sim.create_organization(payer.aws_account_id, member_ids)
            put_costs(sim, payer.aws_account_id, services)
            members = [link(sim, conn, org, m) for m in member_ids]
            for m in member_ids:
                put_costs(sim, m, services)
            pages, first, daily = month_of_syncs(sim, settings, conn, payer, members)
            rows.append(Row(f"organization ({MEMBERS} members)", page_size, pages, first, daily))
            for f, failure in enumerate(FAILURES):
                prefix = f"4000000{f}{n:02d}"
                resumed.append(failed_and_resumed(sim, conn, prefix, services, page_size, failure))

    print(
        f"Cost Explorer requests ({services} services per account; first sync on "
        f"{START:%Y-%m-%d}, then {DAYS} daily syncs with their re-pulls)\n"
    )
    header = (
        "account",
        "groups/page",
        "pages (first)",
        "requests (first)",
        "requests/day",
        f"{DAYS} days",
        "mean/day",
        f"cost of {DAYS} days",
    )
    table = [header, *(r.cells() for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row.cells()))
    print("\nthe organization's first sync failing half way, then retried:")
    for r in resumed:
        print(f"  {r.line()}")
    verdict = all(r.first_pages == r.first_requests for r in rows)
    print(
        f"\nfirst sync: requests == pages of one call: {'yes' if verdict else 'NO'}; "
        "members linked on their own add no request of their own"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
