"""vercel.json routes every public path to the function whose app serves it.

Vercel maps api/<name>.py to /api/<name> and applies `rewrites` in order (path-to-regexp
syntax). Locally one app serves every router; here each OpenAPI path (and each cron path) is
resolved the way Vercel would, and the destination file's own `app` must serve it.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Match

from devstack.server import api_modules, create_local_app

ROOT = Path(__file__).resolve().parent.parent
VERCEL = json.loads((ROOT / "vercel.json").read_text())
CRON = json.loads((ROOT / "cron.json").read_text())


def _pattern(source: str) -> re.Pattern[str]:
    """path-to-regexp, the subset Vercel documents: :name, :name*, :name+, and (regex) groups."""
    out = ""
    for part in re.split(r"(:\w+[*+?]?|\(.*?\))", source):
        if not part:
            continue
        if part.startswith(":"):
            suffix = part[-1] if part[-1] in "*+?" else ""
            out += {"*": "(?:.*)", "+": "(?:.+)", "?": "(?:[^/]*)", "": "(?:[^/]+)"}[suffix]
        elif part.startswith("("):
            out += part
        else:
            out += re.escape(part)
    out = out.replace("/(?:.*)", "(?:/.*)?")  # "/x/:path*" also matches "/x"
    return re.compile(f"^{out}$")


def resolve(path: str) -> str:
    """The api file stem Vercel would run for `path`."""
    for rule in VERCEL.get("rewrites", []):
        if _pattern(rule["source"]).match(path):
            path = rule["destination"]
            break
    m = re.fullmatch(r"/api/(\w+)", path)
    assert m, f"{path} reaches no function (add a rewrite)"
    return m.group(1)


def served_by(app: Any, method: str, path: str) -> bool:
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.routes)


def _sample(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", path)


def _operations() -> list[tuple[str, str]]:
    spec = create_local_app().openapi()
    return [
        (method.upper(), _sample(path))
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_every_openapi_operation_is_routed_to_the_function_that_serves_it(
    method: str, path: str
) -> None:
    stem = resolve(path)
    module = importlib.import_module(f"api.{stem}")
    assert served_by(module.app, method, path), (
        f"{method} {path} -> api/{stem}.py does not serve it"
    )


def test_cron_json_is_the_same_schedule_as_vercel_json() -> None:
    assert CRON["crons"] == VERCEL["crons"]


@pytest.mark.parametrize("cron", VERCEL["crons"], ids=lambda c: c["path"])
def test_every_cron_path_is_served_with_get(cron: dict[str, str]) -> None:
    assert len(cron["schedule"].split()) == 5
    stem = resolve(cron["path"])
    assert served_by(importlib.import_module(f"api.{stem}").app, "GET", cron["path"])


def test_every_configured_function_file_exists() -> None:
    for key in VERCEL["functions"]:
        assert list(ROOT.glob(key)), f"vercel.json functions entry {key} matches no file"


def test_every_api_file_is_a_function_with_routers() -> None:
    for name, module in api_modules().items():
        assert hasattr(module, "app"), name
        assert getattr(module, "routers", ()), f"api/{name}.py declares no routers"


def test_functions_run_in_iad1_next_to_neon_us_east() -> None:
    # The security page: "Hosting is in the United States (Vercel iad1, Neon US-East)".
    assert VERCEL["regions"] == ["iad1"]


def test_no_test_benchmark_or_dev_tooling_is_bundled_into_a_function() -> None:
    for key, config in VERCEL["functions"].items():
        excluded = config.get("excludeFiles", "")
        for folder in ("tests/**", "bench/**", "devstack/**"):
            assert folder in excluded, f"{key} bundles {folder}"
