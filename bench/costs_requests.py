"""Benchmark: Cost Explorer requests per sync against the pages one call returns.

    python -m bench.costs_requests [services per account]

Budget (design.md): each request costs the client $0.01, so no request may be repeated or
wasted: the sync's requests must equal the pages of one GetCostAndUsage call. Measured for a
standalone account and for a 20-member organization (management account linked, and its members
linked on their own too), at the first sync (14 months) and at a daily sync (the current month).

Everything runs for real except AWS: the sync (`functions.jobs.worker.process`, i.e. claim,
assume-role, paging, write, run record) on an embedded Postgres, against the simulated AWS.
"Pages" is measured independently: the same request walked page by page with a plain client.
The simulator answers `ce_page_size` groups (service x account x month) per page (50 here);
AWS sizes its pages itself, so absolute page counts differ there; requests == pages must not.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
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
START = datetime(2025, 3, 14, 3, 0, tzinfo=UTC)
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
    """Walk the sync's last request page by page with a plain client: the pages AWS has."""
    calls = [
        c.params
        for c in sim.calls
        if c.operation == "GetCostAndUsage" and c.account_id == linked.aws_account_id
    ]
    params = {k: v for k, v in calls[-1].items() if k != "NextPageToken"}
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


def main(services: int) -> None:
    rows: list[tuple[str, str, int, int, int, str]] = []
    with environment() as (sim, conn, settings):
        page_size = sim.ce_page_size

        agency = new_agency(conn)
        alone = link(sim, conn, agency, "200000000001")
        put_costs(sim, alone.aws_account_id, services)
        for label, now in (("first", START), ("daily", START + timedelta(days=1))):
            run = sync(conn, alone, now)
            pages = pages_of_one_call(sim, settings, alone)
            rows.append(
                ("standalone", label, run["months"], pages, run["requests"], f"${run['cost']}")
            )

        org = new_agency(conn)
        payer = link(sim, conn, org, "300000000000", management=True)
        member_ids = [f"3000000001{n:02d}" for n in range(MEMBERS)]
        sim.create_organization(payer.aws_account_id, member_ids)
        put_costs(sim, payer.aws_account_id, services)
        members = [link(sim, conn, org, m) for m in member_ids]
        for m in member_ids:
            put_costs(sim, m, services)
        for label, now in (("first", START), ("daily", START + timedelta(days=1))):
            sim.clear_calls()
            run = sync(conn, payer, now)
            pages = pages_of_one_call(sim, settings, payer)
            extra = sum(sync(conn, m, now)["requests"] for m in members)
            rows.append(
                (
                    f"organization ({MEMBERS} members)",
                    label,
                    run["months"],
                    pages,
                    run["requests"] + extra,
                    f"${run['cost']}",
                )
            )

    print(
        f"Cost Explorer requests per sync ({services} services per account; the simulator "
        f"answers {page_size} groups per page)\n"
    )
    header = ("account", "sync", "months", "pages of one call", "CE requests", "client cost")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
    verdict = all(r[3] == r[4] for r in rows)
    print(
        f"\nrequests == pages in every sync: {'yes' if verdict else 'NO'} "
        f"(members linked on their own add no request of their own)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
