"""`make demo`: the whole product on this machine, seeded, at http://127.0.0.1:3000 (the console:
http://localhost:3000, the passkeys' relying party).

What it starts (all stopped by Ctrl-C):
- Postgres: the embedded server (data under .local/pg, git-ignored) unless DATABASE_URL and
  DATABASE_OWNER_URL are set; a fresh `cao_demo` database with the schema applied.
- the simulated AWS on loopback (moto, extended), with our own `cao-service` user and fictional
  client accounts holding 14 months of costs and two weeks of CloudTrail events;
- the embedded Vercel Queues service, which delivers sync jobs to the same consumer as on Vercel;
- every api function composed into one local server (uvicorn), behind the console's static files
  (public/), routed by vercel.json as Vercel routes them (devstack.server.ConsoleServer): the
  console at http://localhost:3000/.

Then it seeds the way a customer would, through the HTTP API: it signs up a demo agency,
"installs" our CloudFormation template in the simulated client accounts with that agency's
ExternalId, links them (which queues their first syncs), and waits for the syncs. A demo-only
route, POST /demo/install-role, plays the client's part for agencies you sign up yourself.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from random import Random
from typing import Any

import httpx
import uvicorn
from fastapi import APIRouter
from pydantic import Field

from devstack import demo_alerts, pg, trailgen
from devstack.server import all_routers, create_console_server
from devstack.simaws import OUR_ACCOUNT_ID, SimulatedAws, delivery_delays
from functions.jobs import worker
from functions.onboard import templates
from shared import bootstrap
from shared.bootstrap import Deps
from shared.settings import Settings
from shared.web import Body, create_app

HOST, PORT = "127.0.0.1", 3000
BASE = f"http://{HOST}:{PORT}"
# The console's address: WebAuthn refuses IP addresses as relying party IDs, so people sign in
# at localhost (CAO_PUBLIC_URL; browsers keep Secure cookies on http://localhost).
CONSOLE = f"http://localhost:{PORT}"
CONSOLE_URL = f"{CONSOLE}/"
ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
DB_NAME = "cao_demo"
REGIONS = ["us-east-1", "eu-west-1"]

# Fictional client accounts.
ACME = "210987654321"  # a standalone account
GLOBEX = "310000000001"  # an organization's management account...
GLOBEX_MEMBERS = {"310000000002": "Globex Production", "310000000003": "Globex Staging"}
GLOBEX_PRODUCTION = "310000000002"  # its EC2 jumps (demo_alerts)
SPARE = "410000000004"  # no role installed: for agencies you sign up yourself
SERVICES = {
    "Amazon Elastic Compute Cloud - Compute": 820,
    "Amazon Simple Storage Service": 140,
    "Amazon Relational Database Service": 390,
    "AWS Lambda": 35,
    "Amazon CloudFront": 60,
    "Amazon DynamoDB": 75,
}


def log(message: str) -> None:
    sys.stdout.write(f"[demo] {message}\n")
    sys.stdout.flush()


# ---- simulated client accounts -------------------------------------------------------------


def seed_costs(
    sim: SimulatedAws, account_id: str, scale: float, rng: Random, *, daily: str | None = None
) -> None:
    """14 months of monthly costs per service; the last two months still Estimated. The
    `daily` service's last two months are posted day by day instead (demo_alerts)."""
    today = datetime.now(UTC).date().replace(day=1)
    for back in range(14):
        year, month = divmod(today.year * 12 + today.month - 1 - back, 12)
        for service, base in SERVICES.items():
            if service == daily and back < 2:
                continue
            amount = Decimal(str(round(base * scale * rng.uniform(0.7, 1.3), 2)))
            sim.put_cost(
                account_id,
                f"{year:04d}-{month + 1:02d}",
                service,
                {
                    "UnblendedCost": amount,
                    "AmortizedCost": (amount * Decimal("0.97")).quantize(Decimal("0.01")),
                    "NetUnblendedCost": (amount * Decimal("0.95")).quantize(Decimal("0.01")),
                },
                estimated=back < 2,
            )


def seed_events(sim: SimulatedAws, account_id: str, seed: int) -> None:
    end = datetime.now(UTC)
    for i, region in enumerate(REGIONS):
        sim.put_events(
            account_id,
            region,
            trailgen.make_events(
                account_id, region, end - timedelta(days=13), end, 300, seed=seed * 10 + i
            ),
        )


def install_role(sim: SimulatedAws, account_id: str, external_id: str, *, stackset: bool) -> str:
    """What the client does: create our CloudFormation stack with the agency's ExternalId."""
    body = templates.render_yaml(templates.template(stackset=stackset))
    params = {"CaoAccountId": OUR_ACCOUNT_ID, "ExternalId": external_id}
    outputs = sim.install_stack(account_id, "CloudAgencyOps", body, params)
    return outputs["RoleArn"]


class InstallRole(Body):
    account_id: str = Field(pattern=r"^\d{12}$", description="simulated client account")
    external_id: str = Field(min_length=2, max_length=1224, description="your ExternalId")


def demo_router(sim: SimulatedAws) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.post("/demo/install-role")
    def install(body: InstallRole) -> dict[str, str]:
        """Simulate a client creating our stack in its account (demo only)."""
        return {"role_arn": install_role(sim, body.account_id, body.external_id, stackset=False)}

    return router


# ---- local services ------------------------------------------------------------------------


@contextmanager
def database() -> Iterator[tuple[str, str]]:
    """(app URL, owner URL) of a fresh demo database."""
    if os.environ.get("DATABASE_URL") and os.environ.get("DATABASE_OWNER_URL"):
        log("using DATABASE_URL / DATABASE_OWNER_URL from the environment")
        yield os.environ["DATABASE_URL"], os.environ["DATABASE_OWNER_URL"]
        return
    log("starting the embedded Postgres (data in .local/pg)")
    with pg.embedded_server(LOCAL / "pg", keep=True) as admin:
        pg.drop(admin, DB_NAME)
        local = pg.bootstrap(admin, DB_NAME, secrets.token_hex(12), secrets.token_hex(12))
        yield local.app_url, local.owner_url


@contextmanager
def serve(app: Any) -> Iterator[uvicorn.Server]:
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=PORT, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit(f"the local server could not start on {BASE} (port in use?)")
        time.sleep(0.05)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=10)


RUNBOOK = """# Monthly cost review (Acme Retail)

1. `GET /api/costs?group_by=service&account_id=<acme>`: compare with last month.
2. Anything up more than 20%? Check `GET /api/access/principals` for new principals.
3. Write the findings to the client's shared channel.
"""


def seed(http: httpx.Client, sim: SimulatedAws) -> dict[str, Any]:
    """Sign up the demo agency and link its simulated client accounts, through the API."""
    rng = Random(7)
    for account, scale in ((ACME, 1.0), (GLOBEX, 0.2), *((m, 1.6) for m in GLOBEX_MEMBERS)):
        daily = demo_alerts.EC2 if account == GLOBEX_PRODUCTION else None
        seed_costs(sim, account, scale, rng, daily=daily)
    demo_alerts.prepare(sim, GLOBEX_PRODUCTION)
    for n, account in enumerate((ACME, GLOBEX, *GLOBEX_MEMBERS, SPARE)):
        seed_events(sim, account, n)
    sim.create_organization(GLOBEX, list(GLOBEX_MEMBERS), GLOBEX_MEMBERS)

    r = http.post(
        "/api/agencies",
        json={
            "name": "Demo Cloud Partners",
            "contact_email": "ops@demo-partners.example",
            "admin": {"name": "Demo Admin", "email": "admin@demo-partners.example"},
        },
    )
    r.raise_for_status()
    agency = r.json()
    key, external_id = agency["api_key"], agency["external_id"]
    auth = {"Authorization": f"Bearer {key}"}
    http.patch("/api/agency", headers=auth, json={"default_regions": REGIONS}).raise_for_status()

    acme_role = install_role(sim, ACME, external_id, stackset=False)
    globex_role = install_role(sim, GLOBEX, external_id, stackset=False)
    for member in GLOBEX_MEMBERS:
        install_role(sim, member, external_id, stackset=True)
    for role, alias in ((acme_role, "Acme Retail"), (globex_role, "Globex (management)")):
        http.post("/api/accounts", headers=auth, json={"role_arn": role, "alias": alias})
    http.post("/api/accounts/discovered/link", headers=auth).raise_for_status()
    acme = next(
        a["id"]
        for a in http.get("/api/accounts", headers=auth).json()["items"]
        if a["aws_account_id"] == ACME
    )
    http.post(
        "/api/runbooks",
        headers=auth,
        json={"title": "Acme: monthly cost review", "body": RUNBOOK, "account_id": acme},
    ).raise_for_status()
    return {
        "key": key,
        "external_id": external_id,
        "agency_id": agency["agency_id"],
        "enrolment": agency["enrolment"]["token"],
    }


def wait_for_syncs(http: httpx.Client, key: str, timeout_s: float = 90) -> list[dict[str, Any]]:
    auth = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + timeout_s
    accounts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        accounts = http.get("/api/accounts", headers=auth).json()["items"]
        pending = [
            job
            for a in accounts
            for job in a.get("jobs", [])
            if job["kind"] in {"costs", "cloudtrail"} and not job.get("last_success_at")
        ]
        if accounts and not pending:
            break
        time.sleep(0.5)
    return accounts


def banner(info: dict[str, Any], accounts: list[dict[str, Any]], cron_secret: str) -> str:
    key = info["key"]
    rows = "\n".join(
        f"    {a.get('alias') or '-':<22} {a['aws_account_id']}  {a['status']}" for a in accounts
    )
    return f"""
CloudAgencyOps is running (Ctrl-C stops everything):
    console        {CONSOLE_URL}
    API reference  {CONSOLE_URL}docs   (OpenAPI document: {CONSOLE_URL}openapi.json)

Open the console at {CONSOLE}, not at 127.0.0.1: passkeys (WebAuthn) refuse IP addresses.
The demo admin (admin@demo-partners.example) registers a passkey with this enrolment within
15 minutes (POST /api/passkeys/registration/options, then /api/passkeys/registration):
    {info["enrolment"]}
Later, invite people with the API key (the link is the invitation):
    curl -s -X POST $CAO/api/invitations -H "Authorization: Bearer $KEY" \
      -H 'content-type: application/json' -d '{{"email":"you@example.com","role":"admin"}}'

Demo agency "Demo Cloud Partners" (admin API key, shown once):
    export CAO={BASE} KEY={key}

Linked client accounts (simulated AWS, first syncs done):
{rows}

Try:
    curl -s "$CAO/api/costs?group_by=service" -H "Authorization: Bearer $KEY"
    curl -s "$CAO/api/access/events?limit=5" -H "Authorization: Bearer $KEY"
    curl -s "$CAO/api/access/principals" -H "Authorization: Bearer $KEY"
    curl -s "$CAO/api/onboarding" -H "Authorization: Bearer $KEY"
    curl -s "$CAO/api/clients" -H "Authorization: Bearer $KEY"
    curl -s "$CAO/api/forecasts?group_by=client" -H "Authorization: Bearer $KEY"
    curl -s "$CAO/api/budgets" -H "Authorization: Bearer $KEY"     # Globex: forecast ~95 %
    curl -s "$CAO/api/anomalies" -H "Authorization: Bearer $KEY"   # Globex Production's EC2
    curl -s "$CAO/api/anomalies/<id>" -H "Authorization: Bearer $KEY"   # + what changed
    curl -s "$CAO/subprocessors"
    curl -s "$CAO/api/cron/dispatch" -H "Authorization: Bearer {cron_secret}"

Sign up an agency of your own and connect the spare simulated account {SPARE}:
    curl -s -X POST $CAO/api/agencies -H 'content-type: application/json' \\
      -d '{{"name":"My Agency","contact_email":"me@example.com"}}'
    curl -s -X POST $CAO/demo/install-role -H 'content-type: application/json' \\
      -d '{{"account_id":"{SPARE}","external_id":"<your external_id>"}}'   # the client's part
    curl -s -X POST $CAO/api/accounts -H "Authorization: Bearer <your api_key>" \\
      -H 'content-type: application/json' -d '{{"role_arn":"<role_arn from above>"}}'

Replay a signed Polar webhook that makes the demo agency a paying customer:
    .venv/bin/python -m devstack.polar_replay --url $CAO/api/webhooks/polar \\
      --agency {info["agency_id"]} --product {DEMO_PRO_PRODUCT} --secret {DEMO_WEBHOOK_SECRET}
    curl -s "$CAO/api/billing" -H "Authorization: Bearer $KEY"     # now active, plan pro
"""


DEMO_WEBHOOK_SECRET = "demo-webhook-secret-not-for-production"
DEMO_PRO_PRODUCT = "prod_demo_pro"  # a fictional Polar product id


def main() -> int:
    LOCAL.mkdir(exist_ok=True)
    # The JSON request log would drown the banner; LOG_LEVEL=INFO make demo shows it.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    cron_secret = secrets.token_urlsafe(24)
    with ExitStack() as stack:
        app_url, owner_url = stack.enter_context(database())
        log("starting the simulated AWS")
        sim = stack.enter_context(SimulatedAws())
        # As AWS does: most events are delivered within minutes, some up to an hour late.
        sim.delivery_delay = delivery_delays(3600)
        key_id, secret = sim.create_user_with_key(OUR_ACCOUNT_ID, "cao-service")
        env = {
            "DATABASE_URL": app_url,
            "DATABASE_OWNER_URL": owner_url,
            "CAO_AWS_ACCOUNT_ID": OUR_ACCOUNT_ID,
            "CAO_AWS_ACCESS_KEY_ID": key_id,
            "CAO_AWS_SECRET_ACCESS_KEY": secret,
            "CAO_AWS_ENDPOINT_URL": sim.endpoint_url,
            # Fictional: shows the quick-create link; production publishes to S3 (README).
            "CAO_TEMPLATE_URL": "https://cloudagencyops-demo.s3.amazonaws.com/role.yaml",
            "CAO_PUBLIC_URL": CONSOLE,
            "CRON_SECRET": cron_secret,
            "POLAR_WEBHOOK_SECRET": DEMO_WEBHOOK_SECRET,
            "POLAR_ACCESS_TOKEN": "demo-polar-token-not-for-production",
            "POLAR_PRODUCT_STARTER": "prod_demo_starter",
            "POLAR_PRODUCT_PRO": DEMO_PRO_PRODUCT,
            "NO_PROXY": "127.0.0.1,localhost",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        os.environ.update(env)
        log("starting the embedded queue")
        queue = stack.enter_context(worker.local_queue())
        stack.enter_context(
            bootstrap.use(
                Deps(Settings(), publisher_for=lambda _headers: queue, queue_client=queue.client)
            )
        )
        routers = [*all_routers(), demo_router(sim)]
        api = create_app(*routers, title="CloudAgencyOps (demo)", openapi=True)
        server = stack.enter_context(serve(create_console_server(api, passthrough=("/demo/",))))
        with httpx.Client(base_url=BASE, timeout=60) as http:
            log("seeding the demo agency through the API")
            info = seed(http, sim)
            log("waiting for the first syncs")
            accounts = wait_for_syncs(http, info["key"])
            log("seeding snapshot history, clients and a budget")
            demo_alerts.seed(
                http,
                info["key"],
                info["agency_id"],
                app_url=app_url,
                member=GLOBEX_PRODUCTION,
                acme=ACME,
            )
        sys.stdout.write(banner(info, accounts, cron_secret))
        sys.stdout.flush()
        try:
            while not server.should_exit:
                time.sleep(0.5)
        except KeyboardInterrupt:
            log("stopping")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
