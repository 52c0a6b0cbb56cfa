"""`make deploy-check`: build the project the way Vercel builds it, then make every function
answer a request from its own bundle.

Steps: copy the working tree (git-tracked files plus uncommitted ones) to a temporary folder;
check that uv.lock is pyproject.toml's (Vercel installs the lock as it is); write a throwaway
`.vercel/project.json` (`"framework": null`); run `vercel build` offline there with uv and
Python 3.12 (Vercel's) on PATH; then for every function in `.vercel/output/functions/`,
assemble its bundle from `.vc-config.json`'s `filePathMap`, check what is in it (size, no
tests/bench/devstack, no development-only package), import its entry point with Python 3.12
(`PYTHONPATH=_vendor:.`, no database configured) and send one request through the built
handler (`vc__handler__python.vc_handler`, the one Vercel invokes). Finally, every rewrite and
cron path in vercel.json must land on a function whose app routes that path (the app in its
bundle is asked), or on a static file that exists; the static output must hold exactly
`public/`'s files (without an output folder Vercel serves the whole repository as static files).

The console: the build's own routing table (`.vercel/output/config.json`: cleanUrls, headers,
rewrites, in Vercel's order) is evaluated for every console page and every file of public/: each
page must reach a file or a function of the build output with the pages' CSP, and the local
server (devstack/server.py, which reads vercel.json) must route every such path, plus the
rewrites, the crons and paths that exist nowhere, exactly as the build does.

A failure prints what failed and the command exits 1. Nothing here is imported by product code;
devstack/ is excluded from every bundle.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import lockfile, server
from devstack.server import Resolution, path_pattern
from shared.web import PAGE_CSP

ROOT = Path(__file__).resolve().parent.parent
# Where the Makefile installs the pinned tools (a test holds these equal to its versions).
VERCEL_VERSION = "60.1.3"
UV_VERSION = "0.13.8"
DEFAULT_VERCEL = ROOT / f".local/vercel-{VERCEL_VERSION}/node_modules/.bin/vercel"
DEFAULT_UV = ROOT / f".local/uv-{UV_VERSION}/bin/uv"
BUNDLE_LIMIT_BYTES = 200 * 1024 * 1024
FORBIDDEN_FOLDERS = ("tests", "bench", "devstack")
STATIC_SOURCE = "public"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RESULT_MARK = "DEPLOY-CHECK-RESULT "
# What a bundle runs with: the variables the platform sets in every function, throwaway
# secrets, and no database or AWS. Every probe below must be answered before anything connects.
BUNDLE_ENV = {
    "VERCEL": "1",
    "VERCEL_ENV": "preview",
    "VERCEL_REGION": "iad1",
    "CRON_SECRET": "deploy-check-cron-secret-not-real",
    "POLAR_WEBHOOK_SECRET": "deploy-check-webhook-secret-not-real",
    "LOG_LEVEL": "WARNING",
}


class CheckError(Exception):
    """The check could not run: a tool is missing or the build failed."""


@dataclass(frozen=True)
class Probe:
    """The one request a function must answer from its bundle, and the statuses it may give."""

    method: str
    path: str
    expect: tuple[int, ...]
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str = ""
    # Response headers the answer must carry (name -> exact value).
    expect_headers: Mapping[str, str] = field(default_factory=dict)


# A key that is not one of ours: authenticated routes refuse it before opening a connection.
_BAD_KEY = {"authorization": "Bearer deploy-check-not-a-key"}


def _authenticated(path: str) -> Probe:
    return Probe("GET", path, (401,), _BAD_KEY)


# One probe per api/*.py: a public route, or the cheapest authenticated one with a bad key.
PROBES: dict[str, Probe] = {
    "access": _authenticated("/api/access/vendor"),
    "accounts": _authenticated("/api/accounts"),
    "agencies": Probe(
        "POST", "/api/agencies", (400, 422), {"content-type": "application/json"}, "{not json"
    ),
    "agency": _authenticated("/api/agency"),
    "audit": _authenticated("/api/audit"),
    "billing": _authenticated("/api/billing"),
    "costs": _authenticated("/api/costs"),
    "cron": Probe("GET", "/api/cron/dispatch", (401,), {"authorization": "Bearer wrong"}),
    "cron_purge": Probe("GET", "/api/cron/purge", (401,), {"authorization": "Bearer wrong"}),
    "cron_verify": Probe("GET", "/api/cron/verify", (401,), {"authorization": "Bearer wrong"}),
    "notices": _authenticated("/api/notices"),
    "onboarding": _authenticated("/api/onboarding"),
    "people": _authenticated("/api/users"),
    "runbooks": _authenticated("/api/runbooks"),
    # The queue's push consumer: a delivery the queue service never made must be refused.
    "sync_worker": Probe(
        "POST", "/api/sync_worker", (400, 401), {"content-type": "application/json"}, "garbage"
    ),
    # The security page as a browser asks for it: its templates are in the bundle, its CSP set.
    "trust": Probe(
        "GET",
        "/security",
        (200,),
        {"accept": "text/html"},
        expect_headers={
            "content-type": "text/html; charset=utf-8",
            "content-security-policy": PAGE_CSP,
        },
    ),
    "webhooks": Probe(
        "POST", "/api/webhooks/polar", (400, 401), {"content-type": "application/json"}, "{}"
    ),
    "clients": _authenticated("/api/clients"),
    "alerts": _authenticated("/api/anomalies"),
}


# --- routing (pure) -----------------------------------------------------------------------------


def is_literal(source: str) -> bool:
    return not re.search(r"[:(*]", source)


def resolve(config: Mapping[str, Any], path: str) -> str:
    """The destination Vercel sends `path` to: the first matching rewrite's, else the path."""
    for rule in config.get("rewrites", []):
        if path_pattern(rule["source"]).match(path):
            return str(rule["destination"]).split("?", 1)[0]
    return path


def function_of(destination: str) -> str | None:
    """`/api/<name>` (or `/api/<name>.py`) -> `<name>`; anything else is not a function."""
    m = re.fullmatch(r"/api/(\w+)(?:\.py)?", destination)
    return m.group(1) if m else None


def probe_paths(config: Mapping[str, Any]) -> list[str]:
    """The paths each function's app is asked about: cron paths and literal rewrite sources."""
    paths = [c["path"] for c in config.get("crons", [])]
    paths += [r["source"] for r in config.get("rewrites", []) if is_literal(r["source"])]
    return sorted(set(paths))


# function name -> {path -> methods its app routes there}
Routes = Mapping[str, Mapping[str, Iterable[str]]]


def routing_problems(
    config: Mapping[str, Any], routes: Routes, static_files: Iterable[str]
) -> list[str]:
    """Every cron path must reach a function whose app routes GET there; every rewrite must land
    on a function that routes its source (for a pattern: at least one path the pattern matches)
    or on a static file that exists."""
    static = {f.lstrip("/") for f in static_files}
    problems: list[str] = []
    for cron in config.get("crons", []):
        path = cron["path"]
        name = function_of(resolve(config, path))
        if name is None or name not in routes:
            problems.append(f"cron {path} reaches no function ({resolve(config, path)})")
        elif "GET" not in set(routes[name].get(path, ())):
            problems.append(f"cron {path} -> api/{name}.py, whose app does not route GET {path}")
    for rule in config.get("rewrites", []):
        source, destination = rule["source"], str(rule["destination"]).split("?", 1)[0]
        name = function_of(destination)
        if name is None:
            if destination.lstrip("/") not in static:
                problems.append(f"rewrite {source} -> {destination}: no such function or file")
            continue
        if name not in routes:
            problems.append(f"rewrite {source} -> {destination}: no function api/{name}.py")
            continue
        served = {p for p, methods in routes[name].items() if set(methods)}
        if is_literal(source):
            ok = source in served
        else:
            pattern = path_pattern(source)
            ok = any(pattern.match(p) and resolve(config, p) == destination for p in served)
        if not ok:
            problems.append(
                f"rewrite {source} -> {destination}: api/{name}.py's app routes no such path"
            )
    return problems


# --- bundles (pure) -----------------------------------------------------------------------------


def bundle_problems(
    name: str,
    files: Mapping[str, int],
    dev_only: Iterable[str] = (),
    limit: int = BUNDLE_LIMIT_BYTES,
) -> list[str]:
    """`files`: bundle path -> size. Too big, test/dev folders, or a dev-only package inside."""
    problems: list[str] = []
    total = sum(files.values())
    if total > limit:
        problems.append(
            f"api/{name}: bundle is {total / 2**20:.1f} MB, over {limit / 2**20:.0f} MB"
        )
    tops = {path.split("/", 1)[0] for path in files}
    for folder in FORBIDDEN_FOLDERS:
        if folder in tops:
            problems.append(f"api/{name}: bundle contains {folder}/")
    vendored = {
        lockfile.normalise(m.group(1))
        for path in files
        if (m := re.match(r"_vendor/([^/]+?)-[^-/]+\.dist-info/", path))
    }
    for package in sorted(vendored & {lockfile.normalise(p) for p in dev_only}):
        problems.append(f"api/{name}: bundle contains the development-only package {package}")
    return problems


def static_problems(static_files: Iterable[str], public_files: Iterable[str]) -> list[str]:
    """The static output must be exactly `public/`: with no output folder, Vercel would serve
    the whole repository (source, tests, schema) as static files; a file of public/ missing
    from it would be a console page or asset that 404s."""
    static = {f.lstrip("/") for f in static_files}
    public = {f.lstrip("/") for f in public_files}
    problems = []
    if extra := sorted(static - public):
        shown = ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")
        problems.append(
            f"static output serves {len(extra)} file(s) that are not in {STATIC_SOURCE}/: {shown}"
        )
    if missing := sorted(public - static):
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        problems.append(f"static output lacks {len(missing)} file(s) of {STATIC_SOURCE}/: {shown}")
    return problems


# --- the console's routes (pure) ----------------------------------------------------------------


def _substitute(template: str, match: re.Match[str]) -> str:
    return re.sub(r"\$(\d+)", lambda m: match.group(int(m.group(1))) or "", template)


def build_resolution(  # noqa: PLR0911 - one return per outcome
    output_config: Mapping[str, Any], static_files: set[str], functions: set[str], path: str
) -> Resolution:
    """Where the build's routing table (Build Output API v3 `routes`: redirects and headers,
    then `handle: filesystem`, then rewrites with `check`, then `handle: error`) sends `path`;
    the same shape as the local server's `VercelRoutes.resolve`."""
    overrides = {v["path"]: k for k, v in output_config.get("overrides", {}).items()}

    def filesystem(p: str) -> tuple[str, str] | None:
        rel = p.lstrip("/") or "index"
        if rel in overrides:
            return "static", overrides[rel]
        if rel in static_files:
            return "static", rel
        if rel in functions:
            return "function", rel
        return None

    headers: dict[str, str] = {}
    phase = ""
    for route in output_config.get("routes", []):
        if "handle" in route:
            phase = route["handle"]
            if phase == "filesystem" and (hit := filesystem(path)):
                return Resolution(hit[0], hit[1], 200, headers)
            continue
        match = re.match(route["src"], path)
        if not match:
            continue
        status = route.get("status")
        if phase == "error":
            page = overrides.get(str(route.get("dest", "")).lstrip("/"), "")
            return Resolution("not_found", page, int(status or 404), headers)
        if status in {301, 302, 307, 308}:
            location = _substitute(route.get("headers", {}).get("Location", ""), match)
            return Resolution("redirect", location, int(status), {})
        if "headers" in route:
            headers.update(route["headers"])
        if "dest" in route:
            destination = _substitute(route["dest"], match).split("?", 1)[0]
            if route.get("check"):
                hit = filesystem(destination)
                if hit is None:
                    return Resolution("not_found", "", 404, headers)
                return Resolution(hit[0], hit[1], 200, headers)
            path = destination
        if status == 404:
            return Resolution("not_found", "", 404, headers)
    return Resolution("not_found", "", 404, headers)


def console_pages(public_files: Iterable[str]) -> list[str]:
    """The console's page URLs: public/'s .html files by their clean URL, and the pages a
    function renders (devstack.server.FUNCTION_PAGES)."""
    pages = [
        "/" + f.removesuffix(".html").removesuffix("index")
        for f in public_files
        if f.endswith(".html") and f != "404.html"
    ]
    return sorted({*pages, *server.FUNCTION_PAGES})


def sample_paths(config: Mapping[str, Any], public_files: Iterable[str]) -> list[str]:
    """Paths whose routing the local server and the build must agree on."""
    files = sorted(public_files)
    paths = {"/", "/index", "/index.html", "/no-such-page", "/api/no-such", "/api/trust.py"}
    paths |= {"/" + f for f in files}
    paths |= set(console_pages(files))
    paths |= set(probe_paths(config))
    for rule in config.get("rewrites", []):
        source = rule["source"]
        if not is_literal(source):
            base = re.split(r"/:|\(", source, maxsplit=1)[0]
            paths |= {base, base + "/x", base + "/x/y"}
    return sorted(paths)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def console_problems(
    config: Mapping[str, Any],
    output_config: Mapping[str, Any],
    static_files: Iterable[str],
    functions: Iterable[str],
    public_files: Iterable[str],
) -> list[str]:
    """Every console page reaches a file or function of the build with the pages' CSP, and
    the local server routes every sample path as the build does."""
    static, funcs, public = set(static_files), set(functions), set(public_files)
    problems = []
    for page in console_pages(public):
        found = build_resolution(output_config, static, funcs, page)
        if found.kind not in {"static", "function"}:
            problems.append(f"console page {page} reaches no file or function ({found.kind})")
        elif _lower(found.headers).get("content-security-policy") != PAGE_CSP:
            problems.append(f"console page {page} is served without the pages' CSP")
    local = server.VercelRoutes(config, public, funcs)
    for path in sample_paths(config, public):
        built = build_resolution(output_config, static, funcs, path)
        mine = local.resolve(path)
        if (built.kind, built.target, built.status, _lower(built.headers)) != (
            mine.kind,
            mine.target,
            mine.status,
            _lower(mine.headers),
        ):
            problems.append(
                f"the local server routes {path} to {mine.kind} {mine.target!r} "
                f"({mine.status}); the build to {built.kind} {built.target!r} ({built.status})"
            )
    return problems


def header_problems(name: str, probe: Probe, headers: Mapping[str, Any]) -> list[str]:
    """The probe's expected response headers (the handler gives name -> list of values)."""
    got = {str(k).lower(): v if isinstance(v, list) else [v] for k, v in headers.items()}
    return [
        f"api/{name}: {probe.method} {probe.path} answered {key}: {got.get(key.lower())}, "
        f"expected {value!r}"
        for key, value in probe.expect_headers.items()
        if value not in got.get(key.lower(), [])
    ]


def unexpected_status(name: str, probe: Probe, status: int, body: str) -> str | None:
    if status in probe.expect:
        return None
    expected = " or ".join(map(str, probe.expect))
    return (
        f"api/{name}: {probe.method} {probe.path} answered {status}, expected {expected}: "
        f"{body[:300]}"
    )


# --- tools ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Python312:
    executable: Path
    pyenv_version: str | None  # set PYENV_VERSION to this so pyenv's shims pick it


def find_python312(environ: Mapping[str, str] = os.environ) -> Python312:
    """Vercel's Python (3.12): $DEPLOY_CHECK_PYTHON, pyenv's newest 3.12.x, or python3.12."""
    if explicit := environ.get("DEPLOY_CHECK_PYTHON"):
        return Python312(Path(explicit), None)
    pyenv_root = environ.get("PYENV_ROOT") or (
        _run_text(["pyenv", "root"]) if shutil.which("pyenv") else ""
    )
    if pyenv_root:
        versions = sorted(
            (p for p in Path(pyenv_root, "versions").glob("3.12.*") if p.name[5:].isdigit()),
            key=lambda p: int(p.name[5:]),
        )
        if versions and (versions[-1] / "bin" / "python3.12").exists():
            return Python312(versions[-1] / "bin" / "python3.12", versions[-1].name)
    found = shutil.which("python3.12")
    if found and _run_text([found, "-c", "import sys; print(sys.version_info[:2])"]) == "(3, 12)":
        return Python312(Path(found), None)
    raise CheckError(
        "Python 3.12 (Vercel's) not found: install it (e.g. `pyenv install 3.12`) or set "
        "DEPLOY_CHECK_PYTHON to a python3.12 executable"
    )


def _run_text(cmd: Sequence[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


# --- the run ------------------------------------------------------------------------------------


def project_files(root: Path) -> list[str]:
    """The working tree as git sees it: tracked files plus untracked ones not ignored (so an
    uncommitted change is checked too). Without git, every file outside caches and tool dirs."""
    if (root / ".git").exists():
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return sorted({p for p in out.split("\0") if p and (root / p).is_file()})
    skip = {".git", ".venv", ".local", ".vercel", "__pycache__", "node_modules", ".mypy_cache"}
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(root).parts)
    )


def copy_project(root: Path, dest: Path) -> None:
    for rel in project_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    (dest / ".vercel").mkdir(exist_ok=True)
    (dest / ".vercel" / "project.json").write_text(
        json.dumps(
            {
                "projectId": "prj_deploycheck",
                "orgId": "team_deploycheck",
                "settings": {"framework": None},
            }
        )
    )


def build(project: Path, vercel: Path, uv: Path, python: Python312) -> None:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(uv.parent), str(python.executable.parent), env["PATH"]])
    env["VERCEL_TELEMETRY_DISABLED"] = "1"
    if python.pyenv_version:
        env["PYENV_VERSION"] = python.pyenv_version
    started = time.monotonic()
    result = subprocess.run(
        [str(vercel), "build", "--yes"],
        check=False,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise CheckError(f"vercel build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    print(f"vercel build: {time.monotonic() - started:.0f} s")


def assemble(func_dir: Path, project: Path, dest: Path) -> dict[str, int]:
    """The bundle of one function, as the platform would unpack it; bundle path -> size."""
    config = json.loads((func_dir / ".vc-config.json").read_text())
    sources: dict[str, Path] = {
        rel: (Path(src) if Path(src).is_absolute() else project / src)
        for rel, src in config.get("filePathMap", {}).items()
    }
    for path in func_dir.rglob("*"):
        if path.is_file() and path.name != ".vc-config.json":
            sources[str(path.relative_to(func_dir))] = path
    sizes: dict[str, int] = {}
    for rel, src in sources.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, target)
        except OSError:
            shutil.copy2(src, target)
        sizes[rel] = src.stat().st_size
    return sizes


# Runs inside the bundle with Python 3.12: calls the built entry point the way the platform does,
# then asks the app which methods it routes at each path it is given.
DRIVER = """
import json, re, sys
spec = json.loads(sys.argv[1])
import vc__handler__python as entry
response = entry.vc_handler({"body": json.dumps(spec["request"])}, None)
app = sys.modules[spec["module"]].app
from starlette.routing import Match
def methods(path):
    out = []
    for method in spec["methods"]:
        scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
        if any(route.matches(scope)[0] == Match.FULL for route in app.routes):
            out.append(method)
    return out
paths = list(spec["paths"]) + list(app.openapi().get("paths", {}))
routes = {}
for path in paths:
    sample = re.sub(r"{[^}]+}", "x", path)
    routes[sample] = methods(sample)
print(spec["mark"] + json.dumps({"response": response, "routes": routes}))
"""


def run_bundle(
    bundle: Path, module: str, probe: Probe, paths: Sequence[str], python: Path
) -> tuple[dict[str, Any], dict[str, list[str]], str]:
    """(the handler's response, the app's routes at `paths` and its own, the process output)."""
    request = {
        "method": probe.method,
        "path": probe.path,
        "headers": {"host": "deploy-check.invalid", **probe.headers},
        "body": probe.body,
    }
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": "_vendor:.",
        "PYTHONDONTWRITEBYTECODE": "1",
        **BUNDLE_ENV,
    }
    spec = json.dumps(
        {
            "request": request,
            "module": module,
            "paths": list(paths),
            "methods": METHODS,
            "mark": RESULT_MARK,
        }
    )
    result = subprocess.run(
        [str(python), "-c", DRIVER, spec],
        check=False,
        cwd=bundle,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = "\n".join(
        line
        for line in (result.stdout + result.stderr).splitlines()
        if not line.startswith(RESULT_MARK)
    )
    for line in reversed(result.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            data = json.loads(line[len(RESULT_MARK) :])
            return data["response"], data["routes"], output
    raise CheckError(f"the bundle did not answer (exit {result.returncode}):\n{output[-3000:]}")


def check(
    root: Path,
    vercel: Path,
    uv: Path,
    only: Sequence[str] = (),
    keep: bool = False,
) -> list[str]:
    """Build `root` and check every function (or those named in `only`); the problems found."""
    python = find_python312()
    for tool in (vercel, uv):
        if not tool.exists():
            raise CheckError(f"{tool} is missing: run `make deploy-check`, which installs it")
    work = Path(tempfile.mkdtemp(prefix="cao-deploy-check-"))
    try:
        project = work / "project"
        copy_project(root, project)
        # Vercel installs a committed uv.lock as it is (uv sync --frozen): a lock that
        # pyproject.toml has moved away from deploys another set of packages than declared.
        problems = lockfile.disagreements(project)
        build(project, vercel.resolve(), uv.resolve(), python)
        return problems + check_output(project, work / "bundles", python.executable, only)
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def check_output(project: Path, bundles: Path, python: Path, only: Sequence[str]) -> list[str]:
    config = json.loads((project / "vercel.json").read_text())
    output = project / ".vercel" / "output"
    lock = lockfile.load(project / "uv.lock")
    dev_only = set(lockfile.dev_packages(lock)) - set(lockfile.runtime_packages(lock))
    problems: list[str] = []
    functions = sorted((output / "functions").rglob("*.func"))
    if not functions:
        problems.append("the build produced no function")
    routes: dict[str, dict[str, list[str]]] = {}
    print(f"{'function':<16} {'bundle MB':>9}  {'request':<40} status")
    for func_dir in functions:
        rel = func_dir.relative_to(output / "functions").with_suffix("")
        name = rel.name
        if only and name not in only:
            continue
        probe = PROBES.get(name)
        if probe is None:
            problems.append(f"{rel}: no probe request (add one to PROBES in {__name__})")
            continue
        bundle = bundles / name
        sizes = assemble(func_dir, project, bundle)
        problems += bundle_problems(name, sizes, dev_only)
        module = ".".join(rel.parts)
        try:
            response, routes[name], log = run_bundle(
                bundle, module, probe, probe_paths(config), python
            )
        except (CheckError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{rel}: {exc}")
            print(f"{name:<16} {sum(sizes.values()) / 2**20:>9.1f}  FAILED")
            continue
        status = int(response["statusCode"])
        print(
            f"{name:<16} {sum(sizes.values()) / 2**20:>9.1f}  "
            f"{probe.method + ' ' + probe.path:<40} {status}"
        )
        if problem := unexpected_status(name, probe, status, str(response.get("body", ""))):
            problems.append(problem + ("\n" + log[-2000:] if status >= 500 else ""))
        problems += header_problems(name, probe, response.get("headers") or {})
    static = [
        str(p.relative_to(output / "static")) for p in (output / "static").rglob("*") if p.is_file()
    ]
    public = (
        sorted(server.public_files(project / STATIC_SOURCE))
        if (project / STATIC_SOURCE).is_dir()
        else []
    )
    problems += static_problems(static, public)
    if not only:
        problems += routing_problems(config, routes, static)
        functions_built = {
            str(f.relative_to(output / "functions").with_suffix("")) for f in functions
        }
        output_config = json.loads((output / "config.json").read_text())
        problems += console_problems(config, output_config, static, functions_built, public)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.deploy_check", description=__doc__)
    parser.add_argument("--vercel", type=Path, default=DEFAULT_VERCEL, help="the Vercel CLI")
    parser.add_argument("--uv", type=Path, default=DEFAULT_UV, help="uv (Vercel's builder runs it)")
    parser.add_argument("--project", type=Path, default=ROOT, help="the project to build")
    parser.add_argument("--only", action="append", default=[], help="check only this function")
    parser.add_argument("--keep", action="store_true", help="keep the temporary build folder")
    args = parser.parse_args(argv)
    try:
        problems = check(args.project.resolve(), args.vercel, args.uv, args.only, args.keep)
    except CheckError as exc:
        print(f"deploy-check: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    print("deploy-check: " + ("FAILED" if problems else "every function answered from its bundle"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
