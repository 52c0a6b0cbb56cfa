"""Benchmark: p50/p95 of every read endpoint through the real server, at several data sizes.

    python -m bench.reads_latency [size ...] [--requests N] [--max-case-s S] [--rebuild]
                                              # default: 100k, 200 requests, 60 s
    make bench BENCH=reads_latency ARGS="100k 1M 5M"

Budget (issue 21): every read endpoint's p95 under 100 ms at 100k, 1M and 5M access events for
one agency, and its p95 at the largest size at most 1.5x its p95 at the smallest.

- Data, per size: one agency of 50 linked accounts with `size` access events over 90 days in
  6 regions, skewed as real agencies are: accounts, principals, event names and source IPs
  drawn from Zipf-like weights (a few busy accounts and principals, many quiet ones), each
  principal active from its own first day (so "new principals" has a realistic tail), 1% of
  the events our own `cao-` sessions (the vendor ledger); 14 months x 30 services x 3 metrics
  of cost rows per account; 60 runbooks (some edited), their audit rows, 3 notices; a second
  agency with 10% as many events so row-level security has rows to hide. Loaded with COPY as
  the superuser (what the sync's insert does row by row; the summary triggers run as on
  ingest), then VACUUM ANALYZE (steady state). Sizes are `100k`, `1M`, `5M` or a number.
- Reuse: each size is built once into a template database named by size and a hash of
  `schema.sql` (`cao_bench_tpl_<size>_<hash>`), kept on the server; a run copies it
  (`CREATE DATABASE ... TEMPLATE`) and drops its copy. The default server is an embedded
  Postgres kept in `.local/bench-pg` (git-ignored); $BENCH_DATABASE_URL (a superuser URL on
  loopback) uses yours. `--rebuild` drops the templates of the sizes asked for first.
- "endpoint": an HTTP request to `uvicorn devstack.server:create_local_app` (every router, one
  worker, as each Vercel function serves them) on loopback, over a kept-alive connection,
  parameters drawn per request (accounts, principals, time windows, cursors, runbooks).
  "SQL": the same use case's service call (its queries in their transaction, as the app role)
  on an open connection, for the endpoints whose cost grows with the data (access, costs).
  Every round runs each case once, endpoint then SQL, so load changes hit all alike.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

from bench._cloudtrail import ensure_partitions
from devstack import pg
from functions.access import service as access_service
from functions.costs import service as costs_service
from shared import auth, db
from shared.kit.months import add_months, month_of
from shared.settings import Settings
from shared.store.access import EventFilter

ROOT = Path(__file__).resolve().parent.parent
ACCOUNTS = 50
SERVICES = 30
MONTHS = 14
DAYS = 90
REGIONS = (
    ("us-east-1", 40),
    ("eu-west-1", 20),
    ("us-west-2", 15),
    ("eu-central-1", 10),
    ("ap-southeast-2", 8),
    ("sa-east-1", 7),
)
EVENT_NAMES = 120
IPS = 3000
RUNBOOKS = 60
BUDGET_P95_MS = 100.0
BUDGET_RATIO = 1.5
SIZES = {"100k": 100_000, "1M": 1_000_000, "5M": 5_000_000}
MIN_SAMPLES = 20  # a case past its time (--max-case-s) stops after this many samples


def _size(text: str) -> tuple[str, int]:
    if text in SIZES:
        return text, SIZES[text]
    n = int(text.replace("_", ""))
    return text, n


def _zipf(n: int, s: float, rng: random.Random) -> list[float]:
    weights = [1.0 / (i + 1) ** s for i in range(n)]
    rng.shuffle(weights)
    return list(itertools.accumulate(weights))


def _schema_hash() -> str:
    return hashlib.sha256((ROOT / "schema.sql").read_bytes()).hexdigest()[:10]


# ---- the data ------------------------------------------------------------------------------


@dataclass
class Agency:
    id: uuid.UUID
    key: str
    accounts: list[tuple[uuid.UUID, str]] = field(default_factory=list)


def _make_agency(conn: psycopg.Connection[Any], accounts: int, tag: str) -> Agency:
    key = auth.generate_key()
    with conn.transaction():
        row = conn.execute(
            "SELECT agency_id FROM cao.create_agency(%s, %s, %s, %s, %s)",
            (
                f"Bench agency {tag}",
                "bench@example.com",
                "bench-" + secrets.token_urlsafe(18),
                key.key_hash,
                key.display_prefix,
            ),
        ).fetchone()
        assert row is not None
        agency = Agency(row[0], key.plaintext)
        conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(agency.id),))
        for i in range(accounts):
            aws_id = f"{100000000000 + secrets.randbelow(10**11):012d}"
            got = conn.execute(
                "INSERT INTO cao.accounts (agency_id, aws_account_id, role_arn, alias,"
                " external_id_id, regions) SELECT %s, %s, %s, %s, id, %s FROM cao.external_ids"
                " WHERE agency_id = %s RETURNING id",
                (
                    agency.id,
                    aws_id,
                    f"arn:aws:iam::{aws_id}:role/CloudAgencyOpsReadOnly",
                    f"client-{tag}-{i}",
                    [r for r, _ in REGIONS[:3]],
                    agency.id,
                ),
            ).fetchone()
            assert got is not None
            agency.accounts.append((got[0], aws_id))
    return agency


def _copy_events(admin: psycopg.Connection[Any], agency: Agency, events: int, seed: int) -> None:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    horizon = DAYS * 86400
    account_w = _zipf(len(agency.accounts), 1.1, rng)
    principals = [
        (
            f"arn:aws:sts::{rng.randrange(10**12):012d}:assumed-role/Role{i % 60}/user{i}",
            f"user{i}",
            rng.random() * horizon * 0.95,  # active from this many seconds after the start
        )
        for i in range(max(200, min(20_000, events // 250)))
    ]
    principal_w = _zipf(len(principals), 1.05, rng)
    name_w = _zipf(EVENT_NAMES, 1.2, rng)
    ip_w = _zipf(IPS, 1.1, rng)
    region_names = [r for r, _ in REGIONS]
    region_w = list(itertools.accumulate(w for _, w in REGIONS))
    ips = [f"198.{18 + i // 65000}.{(i // 250) % 256}.{i % 250}" for i in range(IPS)]
    start = now - timedelta(seconds=horizon)
    # The months' partitions first (a bulk load would otherwise fill the default partition).
    ensure_partitions(admin, start, now)
    with (
        admin.cursor() as cur,
        cur.copy(
            "COPY cao.access_events (agency_id, account_id, aws_account_id, region, event_id,"
            " event_time, event_name, principal_arn, principal_name, source_ip, is_vendor)"
            " FROM STDIN"
        ) as copy,
    ):
        accounts = rng.choices(agency.accounts, cum_weights=account_w, k=events)
        for n, (account_id, aws_id) in enumerate(accounts):
            if rng.random() < 0.01:
                arn = f"arn:aws:sts::{aws_id}:assumed-role/CloudAgencyOpsReadOnly/cao-{n % 997:x}"
                name, born, vendor = f"cao-{n % 997:x}", 0.0, True
            else:
                (arn, name, born), vendor = (
                    rng.choices(principals, cum_weights=principal_w)[0],
                    False,
                )
            at = start + timedelta(seconds=born + rng.random() * (horizon - born))
            copy.write_row(
                (
                    agency.id,
                    account_id,
                    aws_id,
                    rng.choices(region_names, cum_weights=region_w)[0],
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    at.replace(microsecond=0),
                    f"Action{rng.choices(range(EVENT_NAMES), cum_weights=name_w)[0]}",
                    arn,
                    name,
                    ips[rng.choices(range(IPS), cum_weights=ip_w)[0]],
                    vendor,
                )
            )


def _copy_costs(admin: psycopg.Connection[Any], agency: Agency, seed: int) -> None:
    rng = random.Random(seed)
    first = add_months(month_of(datetime.now(UTC)), -(MONTHS - 1))
    with (
        admin.cursor() as cur,
        cur.copy(
            "COPY cao.cost_rows (agency_id, account_id, usage_account_id, month, service,"
            " metric, amount, currency, estimated) FROM STDIN"
        ) as copy,
    ):
        for account_id, aws_id in agency.accounts:
            for m in range(MONTHS):
                month = add_months(first, m)
                for s in range(SERVICES):
                    for metric in ("UnblendedCost", "AmortizedCost", "NetUnblendedCost"):
                        amount = Decimal(rng.randrange(10**8)) / 10**4
                        row = (agency.id, account_id, aws_id, month, f"Service {s}", metric)
                        copy.write_row((*row, amount, "USD", m >= MONTHS - 1))


def _runbooks_and_notices(base: str, admin_url: str, agency: Agency) -> None:
    """Runbooks through the API (their versions and audit rows as users make them)."""
    headers = {"Authorization": f"Bearer {agency.key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for i in range(RUNBOOKS):
            account_id = agency.accounts[i % len(agency.accounts)][0]
            made = client.post(
                "/api/runbooks",
                json={
                    "title": f"Runbook {i}",
                    "body": "# Steps\n" + "Do the thing.\n" * 40,
                    "account_id": str(account_id),
                },
            )
            made.raise_for_status()
            if i % 3 == 0:
                client.patch(
                    f"/api/runbooks/{made.json()['id']}",
                    headers={"If-Match": made.headers.get("ETag", '"v1"')},
                    json={"body": "# Steps v2\n" + "Do it again.\n" * 40},
                ).raise_for_status()
    env = {**os.environ, "DATABASE_OWNER_URL": admin_url, "DATABASE_URL": admin_url}
    for n in range(3):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "functions.notices.operator",
                "publish-incident",
                "--title",
                f"Bench notice {n}",
                "--facts",
                "Nothing happened.",
                "--data-categories",
                "none",
                "--mitigation",
                "None needed.",
                "--contact",
                "security@example.com",
                "--agency",
                str(agency.id),
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            check=True,
        )


# ---- the server and the databases -----------------------------------------------------------


@contextmanager
def _admin() -> Iterator[str]:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        yield url
        return
    with pg.embedded_server(ROOT / ".local" / "bench-pg", keep=True) as admin:
        yield admin


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _server(app_url: str) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": app_url, "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "devstack.server:create_local_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/api/security", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def _exists(admin: psycopg.Connection[Any], name: str) -> bool:
    return bool(admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone())


@dataclass
class Built:
    agency: Agency
    other: Agency


def _template(admin_url: str, label: str, events: int, rebuild: bool) -> tuple[str, Built]:
    """The template database of this size (built now if missing), and what it holds."""
    name = f"cao_bench_tpl_{label.lower()}_{_schema_hash()}"
    building = name + "_building"  # renamed to `name` once complete: a killed build never counts
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if rebuild:
            pg.drop(admin_url, name)
        found = _exists(admin, name)
    if not found:
        pg.drop(admin_url, building)
        local = pg.bootstrap(admin_url, building, "bench-owner", "bench-app")
        started = time.perf_counter()
        try:
            with psycopg.connect(local.app_url, autocommit=True) as app:
                agency, other = _make_agency(app, ACCOUNTS, "a"), _make_agency(app, 10, "b")
            with psycopg.connect(local.admin_url, autocommit=True) as admin:
                _copy_events(admin, agency, events, 1)
                _copy_events(admin, other, events // 10, 2)
                _copy_costs(admin, agency, 3)
                admin.execute(
                    "CREATE TABLE IF NOT EXISTS public.bench_keys (agency_id uuid, key text,"
                    " main boolean)"
                )
                admin.execute(
                    "INSERT INTO public.bench_keys VALUES (%s, %s, true), (%s, %s, false)",
                    (agency.id, agency.key, other.id, other.key),
                )
            with _server(local.app_url) as base:
                _runbooks_and_notices(base, local.admin_url, agency)
            with psycopg.connect(local.admin_url, autocommit=True) as admin:
                admin.execute("VACUUM (ANALYZE)")
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(building), sql.Identifier(name)
                    )
                )
        except BaseException:
            pg.drop(admin_url, building)
            raise
        print(f"  built {name} in {time.perf_counter() - started:.0f} s", flush=True)
    local = pg.bootstrap(admin_url, name, "bench-owner", "bench-app")
    with psycopg.connect(local.admin_url, autocommit=True) as admin:
        keys = admin.execute("SELECT agency_id, key, main FROM public.bench_keys").fetchall()
        agencies = {}
        for agency_id, key, main in keys:
            accounts = admin.execute(
                "SELECT id, aws_account_id FROM cao.accounts WHERE agency_id = %s ORDER BY alias",
                (agency_id,),
            ).fetchall()
            agencies[main] = Agency(agency_id, key, [(a, b) for a, b in accounts])
    return name, Built(agencies[True], agencies[False])


@contextmanager
def _copy_of(admin_url: str, template: str) -> Iterator[pg.LocalDatabase]:
    name = f"cao_bench_run_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} OWNER {}").format(
                sql.Identifier(name), sql.Identifier(template), sql.Identifier(pg.OWNER_ROLE)
            )
        )
    try:
        yield pg.bootstrap(admin_url, name, "bench-owner", "bench-app")
    finally:
        pg.drop(admin_url, name)


# ---- the cases ------------------------------------------------------------------------------

Params = dict[str, Any]


@dataclass
class Case:
    label: str
    path: Callable[[random.Random], str]
    params: Callable[[random.Random], Params]
    sql: Callable[[db.Connection, Params], Any] | None = None
    endpoint_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)


def _ids(params: Params) -> list[uuid.UUID] | None:
    one = params.get("account_id")
    return [uuid.UUID(one)] if one else None


def _since(params: Params) -> datetime | None:
    since = params.get("since")
    return datetime.fromisoformat(since) if since else None


def _cases(client: httpx.Client, built: Built, now: datetime) -> list[Case]:
    agency = built.agency
    accounts = [str(a) for a, _ in agency.accounts]
    busy = accounts[:5]  # in alias order; the weights were shuffled: any may be busy

    def account(rng: random.Random) -> str:
        return rng.choice(accounts if rng.random() < 0.5 else busy)

    def days_ago(rng: random.Random, most: int) -> str:
        return (now - timedelta(days=rng.randint(1, most))).isoformat()

    principals = [p["principal"] for p in client.get("/api/access/principals").json()["items"]]
    cursors: list[str] = []
    cursor = None
    for _ in range(30):
        page = client.get("/api/access/events", params={"cursor": cursor} if cursor else {})
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
        cursors.append(cursor)
    runbooks = [r["id"] for r in client.get("/api/runbooks", params={"limit": 100}).json()["items"]]
    months = [add_months(month_of(now), -i).strftime("%Y-%m") for i in range(MONTHS)]
    agency_id = agency.id

    def costs_sql(group_by: str) -> Callable[[db.Connection, Params], Any]:
        def run(conn: db.Connection, p: Params) -> Any:
            q = costs_service.make_query(
                now=now,
                first=p.get("from"),
                last=p.get("to"),
                group_by=group_by,  # type: ignore[arg-type]
                metric="UnblendedCost",
                account_ids=_ids(p),
            )
            return costs_service.report(conn, agency_id, q)

        return run

    def events_sql(conn: db.Connection, p: Params) -> Any:
        f = EventFilter(
            account_ids=_ids(p), principal=p.get("principal"), since=_since(p), until=None
        )
        return access_service.events_page(conn, agency_id, f, limit=100, cursor=p.get("cursor"))

    def principals_sql(conn: db.Connection, p: Params) -> Any:
        f = EventFilter(account_ids=_ids(p), since=_since(p))
        return access_service.principals_page(conn, agency_id, f, limit=100, cursor=None)

    def new_sql(conn: db.Connection, p: Params) -> Any:
        return access_service.new_principals_page(
            conn,
            agency_id,
            account_ids=_ids(p),
            days=p["days"],
            now=now,
            limit=100,
            cursor=None,
        )

    def vendor_sql(conn: db.Connection, p: Params) -> Any:
        f = EventFilter(account_ids=_ids(p), since=_since(p))
        return access_service.vendor_page(conn, agency_id, f, limit=100, cursor=None)

    def fixed(path: str) -> Callable[[random.Random], str]:
        return lambda rng: path

    none: Callable[[random.Random], Params] = lambda rng: {}  # noqa: E731
    return [
        Case(
            "events, first page (maybe since 1-90 d)",
            fixed("/api/access/events"),
            lambda rng: {"since": days_ago(rng, DAYS)} if rng.random() < 0.5 else {},
            events_sql,
        ),
        Case(
            "events, a later page (keyset cursor)",
            fixed("/api/access/events"),
            lambda rng: {"cursor": rng.choice(cursors)},
            events_sql,
        ),
        Case(
            "events of one account",
            fixed("/api/access/events"),
            lambda rng: {"account_id": account(rng)},
            events_sql,
        ),
        Case(
            "events of one principal",
            fixed("/api/access/events"),
            lambda rng: {"principal": rng.choice(principals)},
            events_sql,
        ),
        Case("principals, all time", fixed("/api/access/principals"), none, principals_sql),
        Case(
            "principals of one account",
            fixed("/api/access/principals"),
            lambda rng: {"account_id": account(rng)},
            principals_sql,
        ),
        Case(
            "principals, since 1-30 days",
            fixed("/api/access/principals"),
            lambda rng: {"since": days_ago(rng, 30)},
            principals_sql,
        ),
        Case(
            "new principals, 1-30 days",
            fixed("/api/access/new-principals"),
            lambda rng: {"days": rng.randint(1, 30)},
            new_sql,
        ),
        Case(
            "new principals of one account",
            fixed("/api/access/new-principals"),
            lambda rng: {"days": rng.randint(1, 30), "account_id": account(rng)},
            new_sql,
        ),
        Case(
            "vendor sessions (maybe one account)",
            fixed("/api/access/vendor"),
            lambda rng: {"account_id": account(rng)} if rng.random() < 0.5 else {},
            vendor_sql,
        ),
        Case(
            "costs by service, 1-14 months",
            fixed("/api/costs"),
            lambda rng: {"from": rng.choice(months), "to": months[0]},
            costs_sql("service"),
        ),
        Case(
            "costs by account, 1-14 months",
            fixed("/api/costs"),
            lambda rng: {"group_by": "account", "from": rng.choice(months), "to": months[0]},
            costs_sql("account"),
        ),
        Case(
            "costs of one account",
            fixed("/api/costs"),
            lambda rng: {"account_id": account(rng)},
            costs_sql("service"),
        ),
        Case("accounts (list, sync health)", fixed("/api/accounts"), none),
        Case("one account (detail, runs)", lambda rng: f"/api/accounts/{account(rng)}", none),
        Case("runbooks (list)", fixed("/api/runbooks"), none),
        Case(
            "runbooks of one account",
            fixed("/api/runbooks"),
            lambda rng: {"account_id": account(rng)},
        ),
        Case("one runbook", lambda rng: f"/api/runbooks/{rng.choice(runbooks)}", none),
        Case(
            "a runbook's versions",
            lambda rng: f"/api/runbooks/{rng.choice(runbooks)}/versions",
            none,
        ),
        Case("audit log", fixed("/api/audit"), none),
        Case("notices", fixed("/api/notices"), none),
        Case("agency settings", fixed("/api/agency"), none),
        Case("API keys", fixed("/api/agency/keys"), none),
    ]


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _measure(
    base: str, local: pg.LocalDatabase, built: Built, requests: int, max_case_s: float
) -> list[Case]:
    now = datetime.now(UTC)
    headers = {"Authorization": f"Bearer {built.agency.key}"}
    rng = random.Random(5)
    with (
        httpx.Client(base_url=base, headers=headers, timeout=60) as client,
        db.connect(Settings({"DATABASE_URL": local.app_url}).database_url) as conn,
    ):
        cases = _cases(client, built, now)
        for round_ in range(requests + 5):  # 5 warm-up rounds
            for case in cases:
                if len(case.endpoint_ms) >= MIN_SAMPLES and (
                    sum(case.endpoint_ms) + sum(case.sql_ms) > max_case_s * 1000
                ):
                    continue  # a slow case: enough samples for its p95 within its time
                path, params = case.path(rng), case.params(rng)
                started = time.perf_counter()
                answer = client.get(path, params=params)
                took = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    raise RuntimeError(f"{case.label}: {answer.status_code} {answer.text[:300]}")
                if round_ >= 5:
                    case.endpoint_ms.append(took)
                if case.sql is not None:
                    started = time.perf_counter()
                    try:
                        case.sql(conn, params)
                    except Exception as exc:  # noqa: BLE001 - a changed service: no SQL figure
                        print(f"  ({case.label}: SQL call failed: {type(exc).__name__}: {exc})")
                        case.sql = None
                        continue
                    if round_ >= 5:
                        case.sql_ms.append((time.perf_counter() - started) * 1000)
    return cases


def _footprint(admin_url: str, events: int) -> None:
    """Rows and bytes of each table (partitions summed), per row and per account-month at this
    data's density (the capacity plan's source)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT c.relname,"
            " coalesce((SELECT sum(greatest(l.reltuples, 0)) FROM pg_partition_tree(c.oid) t"
            "   JOIN pg_class l ON l.oid = t.relid), c.reltuples, 0)::bigint,"
            " coalesce((SELECT sum(pg_total_relation_size(t.relid))"
            "   FROM pg_partition_tree(c.oid) t),"
            "   pg_total_relation_size(c.oid))::bigint"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'cao' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            " ORDER BY 3 DESC LIMIT 12"
        ).fetchall()
    accounts = ACCOUNTS + 10
    months = DAYS / 30
    print(
        f"  footprint ({accounts} accounts; events over {months:.0f} months, costs over"
        f" {MONTHS}): table, rows, MB, bytes/row, rows and KB per account-month"
    )
    for name, count, size in rows:
        span = MONTHS if name.startswith("cost") else months
        per = accounts * span
        print(
            f"    {name:32} {count:>10,} {size / 2**20:9.1f} {size / max(count, 1):8.0f}"
            f" {count / per:>10,.0f} {size / per / 1024:9.1f}"
        )


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f}"


def main(argv: list[str]) -> int:
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    requests = 200
    rebuild = "--rebuild" in argv
    args = [a for a in argv if a != "--rebuild"]
    max_case_s = 60.0
    for flag in ("--requests", "--max-case-s"):
        if flag in args:
            i = args.index(flag)
            if flag == "--requests":
                requests = int(args[i + 1])
            else:
                max_case_s = float(args[i + 1])
            del args[i : i + 2]
    sizes = [_size(a) for a in args] or [_size("100k")]
    results: dict[str, list[Case]] = {}
    with _admin() as admin_url:
        for label, events in sizes:
            print(f"\n{label}: {events:,} events ({_load()})", flush=True)
            template, built = _template(admin_url, label, events, rebuild)
            with _copy_of(admin_url, template) as local, _server(local.app_url) as base:
                cases = _measure(base, local, built, requests, max_case_s)
                _footprint(local.admin_url, events)
            results[label] = cases
            print(
                f"  measured, {requests} requests per case, fewer (at least {MIN_SAMPLES}) for a"
                f" case past {max_case_s:.0f} s ({_load()})"
            )
            print(f"  {'case':42} {'endpoint p50':>12} {'p95':>7} {'SQL p50':>8} {'p95':>7}  (ms)")
            for case in cases:
                sql_part = (
                    f"{statistics.median(case.sql_ms):8.1f} {_p(case.sql_ms, 0.95):7.1f}"
                    if case.sql_ms
                    else f"{'-':>8} {'-':>7}"
                )
                e95 = _p(case.endpoint_ms, 0.95)
                print(
                    f"  {case.label:42} {statistics.median(case.endpoint_ms):12.1f}"
                    f" {e95:7.1f} {sql_part}  {'ok' if e95 < BUDGET_P95_MS else 'OVER 100 ms'}"
                    + ("" if len(case.endpoint_ms) >= requests else f" (n={len(case.endpoint_ms)})")
                )
    labels = list(results)
    if len(labels) > 1:
        small, large = labels[0], labels[-1]
        print(
            f"\np95 by size (ms), and {large}/{small} (budget: p95 < {BUDGET_P95_MS:.0f} ms,"
            f" ratio <= {BUDGET_RATIO})"
        )
        print(f"  {'case':42} " + " ".join(f"{x:>8}" for x in labels) + "    ratio")
        for i, case in enumerate(results[small]):
            p95s = [_p(results[x][i].endpoint_ms, 0.95) for x in labels]
            ratio = p95s[-1] / p95s[0]
            fine = max(p95s) < BUDGET_P95_MS and ratio <= BUDGET_RATIO
            print(
                f"  {case.label:42} "
                + " ".join(f"{v:8.1f}" for v in p95s)
                + f"  {ratio:6.2f}  {'ok' if fine else 'OUT OF BUDGET'}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
