"""Benchmark: cold import time of every function's module (each `api/*.py`) over a bare
`import fastapi`.

    python -m bench.cold_import [runs]       # default 10

Every file of `api/` is measured (read from the directory: a new function is covered without
editing this list). Target (design.md) for the read functions: each adds at most 150 ms over
`import fastapi`, and loads no boto3 and no botocore.session (the bare `botocore` package,
which Powertools' Logger imports to register a user-agent hook, is allowed: no botocore module
beyond it may load).

Each run is a fresh interpreter (bytecode caches warm, as on a deployed function) that imports
fastapi, then shared.logs (the logger: Powertools' Logger), then shared.web (the web factory
every function loads first: psycopg, Sentry set-up), then the api module, timing each step; the
figure is the median over the runs of the time from the end of `import fastapi` to the end of
the api module (shared.logs and shared.web included), with the shared.web part (shared.logs
included) and the shared.logs part shown beside it. The same interpreter reports which
boto3/botocore modules got loaded beyond the bare `botocore` package.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The functions the budget applies to (what a user waits on when reading); the others (sign-up,
# onboarding, billing, webhooks, the crons, the worker) are measured and shown against it too.
READ_FUNCTIONS = [
    "api.costs",
    "api.access",
    "api.runbooks",
    "api.audit",
    "api.accounts",
    "api.agency",
]
FUNCTIONS = READ_FUNCTIONS + sorted(
    f"api.{p.stem}"
    for p in (ROOT / "api").glob("*.py")
    if p.stem != "__init__" and f"api.{p.stem}" not in READ_FUNCTIONS
)
BUDGET_MS = 150.0
PROBE = """
import json, sys, time
t0 = time.perf_counter()
import fastapi
t1 = time.perf_counter()
import shared.logs
tl = time.perf_counter()
import shared.web
t2 = time.perf_counter()
__import__(sys.argv[1])
t3 = time.perf_counter()
aws = sorted(m for m in sys.modules
             if m.split(".")[0] in {"boto3", "botocore", "s3transfer"} and m != "botocore")
print(json.dumps({"fastapi_ms": (t1 - t0) * 1000, "module_ms": (t3 - t1) * 1000,
                  "web_ms": (t2 - t1) * 1000, "logs_ms": (tl - t1) * 1000, "aws": aws}))
"""


def measure(module: str, runs: int) -> tuple[float, float, float, float, list[str]]:
    fastapi_ms, module_ms, web_ms, logs_ms, aws = [], [], [], [], set()
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, module],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        fastapi_ms.append(result["fastapi_ms"])
        module_ms.append(result["module_ms"])
        web_ms.append(result["web_ms"])
        logs_ms.append(result["logs_ms"])
        aws.update(result["aws"])
    return (
        statistics.median(fastapi_ms),
        statistics.median(module_ms),
        statistics.median(web_ms),
        statistics.median(logs_ms),
        sorted(aws),
    )


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 10
    print(f"median of {runs} fresh interpreters (ms)\n")
    print(
        f"{'module':16} {'import fastapi':>15} {'+ module':>9} {'of which shared.web':>20}"
        f" {'of which shared.logs':>21}  boto3/botocore modules loaded"
    )
    failed = False
    for module in FUNCTIONS:
        base, extra, web, logs, aws = measure(module, runs)
        over = extra > BUDGET_MS or bool(aws)
        read = module in READ_FUNCTIONS
        failed |= over and read
        mark = "" if read else "  (not a read function)"
        print(
            f"{module:16} {base:15.0f} {extra:9.0f} {web:20.0f} {logs:21.0f}"
            f"  {', '.join(aws) or 'none'}{' OVER' if over else ''}{mark}"
        )
    print(
        f"\ntarget (read functions): + at most {BUDGET_MS:.0f} ms and none loaded -> "
        f"{'OVER BUDGET' if failed else 'OK'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
