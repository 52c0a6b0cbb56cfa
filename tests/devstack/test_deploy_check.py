"""The pure parts of `make deploy-check`: routing, bundle contents, size limit, static output,
probes, and finding Vercel's Python. (The build itself: test_deploy_build.py and .ci/run.)"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Match

from devstack import deploy_check as dc
from devstack.server import api_modules

ROOT = Path(__file__).resolve().parent.parent.parent
VERCEL = json.loads((ROOT / "vercel.json").read_text())


def _methods(app: Any, path: str) -> list[str]:
    """What the bundle driver answers for `path`: the methods the app routes there."""
    scope = {"type": "http", "path": path, "root_path": "", "headers": []}
    return [
        method
        for method in dc.METHODS
        if any(r.matches({**scope, "method": method})[0] == Match.FULL for r in app.routes)
    ]


@functools.cache
def _openapi_paths(name: str) -> tuple[str, ...]:
    return tuple(api_modules()[name].app.openapi().get("paths", {}))


def local_routes(config: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    """Each local api module's answers, as the bundles give them in a real deploy-check."""
    out: dict[str, dict[str, list[str]]] = {}
    for name, module in api_modules().items():
        paths = [*dc.probe_paths(config), *_openapi_paths(name)]
        samples = [p.replace("{", "").replace("}", "") for p in paths]
        out[name] = {p: _methods(module.app, p) for p in samples}
    return out


@pytest.mark.parametrize(
    ("source", "matches", "misses"),
    [
        ("/api/cron/verify", ["/api/cron/verify"], ["/api/cron/verify/x", "/api/cron"]),
        (
            "/api/accounts/:path*",
            ["/api/accounts", "/api/accounts/1", "/api/accounts/1/sync"],
            ["/api/accountsx", "/api/account"],
        ),
        ("/api/a/:id", ["/api/a/1"], ["/api/a", "/api/a/1/2"]),
        ("/api/a/:rest+", ["/api/a/1", "/api/a/1/2"], ["/api/a"]),
        ("/.well-known/security.txt", ["/.well-known/security.txt"], ["/.well-known/securityXtxt"]),
    ],
)
def test_rewrite_sources_match_like_path_to_regexp(
    source: str, matches: list[str], misses: list[str]
) -> None:
    pattern = dc.path_pattern(source)
    assert all(pattern.match(p) for p in matches)
    assert not any(pattern.match(p) for p in misses)


def test_the_real_vercel_json_routes_every_rewrite_and_cron_to_a_function_that_serves_it() -> None:
    assert dc.routing_problems(VERCEL, local_routes(VERCEL), static_files=[]) == []


def test_a_rewrite_to_a_function_that_does_not_exist_is_reported() -> None:
    config = {"rewrites": [{"source": "/api/gone/:path*", "destination": "/api/gone"}]}
    assert dc.routing_problems(config, local_routes(config), []) == [
        "rewrite /api/gone/:path* -> /api/gone: no function api/gone.py"
    ]


def test_a_rewrite_to_the_wrong_function_is_reported() -> None:
    config = {"rewrites": [{"source": "/api/security", "destination": "/api/costs"}]}
    assert dc.routing_problems(config, local_routes(config), []) == [
        "rewrite /api/security -> /api/costs: api/costs.py's app routes no such path"
    ]


def test_a_pattern_rewrite_whose_function_serves_nothing_under_it_is_reported() -> None:
    config = {"rewrites": [{"source": "/api/bills/:path*", "destination": "/api/billing"}]}
    assert dc.routing_problems(config, local_routes(config), []) == [
        "rewrite /api/bills/:path* -> /api/billing: api/billing.py's app routes no such path"
    ]


def test_a_pattern_rewrite_shadowed_by_an_earlier_one_is_reported() -> None:
    config = {
        "rewrites": [
            {"source": "/api/:path*", "destination": "/api/trust"},
            {"source": "/api/costs/:path*", "destination": "/api/costs"},
        ]
    }
    problems = dc.routing_problems(config, local_routes(config), [])
    assert "rewrite /api/costs/:path* -> /api/costs: api/costs.py's app routes no such path" in (
        problems
    )


def test_a_cron_path_that_no_function_serves_with_get_is_reported() -> None:
    config = {
        "crons": [
            {"path": "/api/cron/dispatch", "schedule": "5 * * * *"},
            {"path": "/api/cron/nightly", "schedule": "0 3 * * *"},
            {"path": "/api/cron/purge", "schedule": "0 3 * * *"},
        ],
        "rewrites": [
            {"source": "/api/cron/dispatch", "destination": "/api/cron"},
            {"source": "/api/cron/purge", "destination": "/api/cron_verify"},
        ],
    }
    assert dc.routing_problems(config, local_routes(config), []) == [
        "cron /api/cron/nightly reaches no function (/api/cron/nightly)",
        "cron /api/cron/purge -> api/cron_verify.py, whose app does not route GET /api/cron/purge",
        "rewrite /api/cron/purge -> /api/cron_verify: api/cron_verify.py's app routes no such path",
    ]


def test_a_rewrite_to_a_static_file_needs_the_file() -> None:
    config = {"rewrites": [{"source": "/robots", "destination": "/robots.txt"}]}
    assert dc.routing_problems(config, {}, static_files=["robots.txt"]) == []
    assert dc.routing_problems(config, {}, static_files=[]) == [
        "rewrite /robots -> /robots.txt: no such function or file"
    ]


def _bundle(**extra: int) -> dict[str, int]:
    return {
        "api/costs.py": 300,
        "functions/costs/routes.py": 2_000,
        "_vendor/fastapi/__init__.py": 1_000,
        "_vendor/fastapi-0.163.2.dist-info/METADATA": 100,
        "vc__handler__python.py": 1_200,
        **extra,
    }


def test_a_clean_bundle_under_the_limit_passes() -> None:
    assert dc.bundle_problems("costs", _bundle(), dev_only={"pytest"}) == []


def test_a_bundle_over_200_mb_fails() -> None:
    problems = dc.bundle_problems("costs", _bundle(**{"_vendor/big.so": 200 * 2**20}))
    assert problems == ["api/costs: bundle is 200.0 MB, over 200 MB"]


@pytest.mark.parametrize("folder", ["tests", "bench", "devstack"])
def test_a_bundle_holding_tests_bench_or_devstack_fails(folder: str) -> None:
    problems = dc.bundle_problems("costs", _bundle(**{f"{folder}/conftest.py": 10}))
    assert problems == [f"api/costs: bundle contains {folder}/"]


def test_a_bundle_holding_a_development_only_package_fails() -> None:
    bundle = _bundle(**{"_vendor/pytest-9.2.0.dist-info/METADATA": 10})
    assert dc.bundle_problems("costs", bundle, dev_only={"pytest", "moto"}) == [
        "api/costs: bundle contains the development-only package pytest"
    ]


def test_static_output_must_be_public_only() -> None:
    assert dc.static_problems(["robots.txt"], ["robots.txt"]) == []
    assert dc.static_problems(["robots.txt", "schema.sql", "shared/db.py"], ["robots.txt"]) == [
        "static output serves 2 file(s) that are not in public/: schema.sql, shared/db.py"
    ]


def test_vercel_json_serves_public_only_and_pins_no_framework() -> None:
    # Without an output folder Vercel's "Other" preset serves the repository root as static files
    # (source, tests, schema.sql); without "framework": null, an import may pick the FastAPI
    # preset, which changes how rewritten paths reach the apps.
    assert VERCEL["outputDirectory"] == dc.STATIC_SOURCE
    assert (ROOT / dc.STATIC_SOURCE).is_dir()
    assert "framework" in VERCEL and VERCEL["framework"] is None


def test_every_function_has_a_probe_request_and_it_expects_a_refusal_or_a_public_page() -> None:
    assert set(dc.PROBES) == set(api_modules())
    for name, probe in dc.PROBES.items():
        assert probe.expect, name
        assert all(status < 500 for status in probe.expect), name


def test_every_probe_path_is_routed_by_its_functions_app() -> None:
    for name, module in api_modules().items():
        probe = dc.PROBES[name]
        assert probe.method in _methods(module.app, probe.path), f"{name}: {probe.path}"


def test_an_unexpected_status_is_reported_with_the_body() -> None:
    probe = dc.Probe("GET", "/api/costs", (401,))
    assert dc.unexpected_status("costs", probe, 401, "") is None
    assert dc.unexpected_status("costs", probe, 503, '{"error": 1}') == (
        'api/costs: GET /api/costs answered 503, expected 401: {"error": 1}'
    )


def test_missing_python_3_12_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "versions" / "3.11.7" / "bin").mkdir(parents=True)
    with pytest.raises(dc.CheckError, match=r"Python 3\.12 \(Vercel's\) not found"):
        dc.find_python312({"PYENV_ROOT": str(tmp_path), "PATH": str(tmp_path)})


def test_pyenv_newest_3_12_is_chosen(tmp_path: Path) -> None:
    for version in ("3.12.1", "3.12.10", "3.13.0"):
        (tmp_path / "versions" / version / "bin").mkdir(parents=True)
        (tmp_path / "versions" / version / "bin" / "python3.12").touch()
    found = dc.find_python312({"PYENV_ROOT": str(tmp_path)})
    assert found.pyenv_version == "3.12.10"
    assert found.executable == tmp_path / "versions" / "3.12.10" / "bin" / "python3.12"


def test_the_copy_holds_uncommitted_files_and_not_ignored_ones(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(a, cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q")
    (repo / ".gitignore").write_text(".local/\n")
    (repo / "committed.py").write_text("")
    run("git", "add", "-A")
    run("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    (repo / "new.py").write_text("")
    (repo / ".local").mkdir()
    (repo / ".local" / "tool").write_text("")
    dc.copy_project(repo, tmp_path / "copy")
    copied = {str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*")}
    assert {"committed.py", "new.py", ".gitignore", ".vercel/project.json"} <= copied
    assert not any(p.startswith(".local") for p in copied)
    settings = json.loads((tmp_path / "copy" / ".vercel" / "project.json").read_text())
    assert settings["settings"] == {"framework": None}
