"""The local server serves the console exactly as Vercel does: it reads vercel.json (clean URLs,
headers, rewrites), and on a real build's routing table (tests/devstack/build_output/: the
vercel.json of this branch and the config.json `vercel build` 60.1.3 made of it) it routes every
sample path as the build does; `make deploy-check` repeats that comparison on a fresh build."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from devstack import deploy_check as dc
from devstack.server import (
    PUBLIC_DIR,
    ConsoleServer,
    VercelRoutes,
    function_names,
    load_vercel_json,
)
from shared.settings import Settings
from shared.web import PAGE_CSP

ROOT = Path(__file__).resolve().parent.parent.parent
BUILD = ROOT / "tests" / "devstack" / "build_output"
BUILT_CONFIG = json.loads((BUILD / "vercel.json").read_text())
BUILT_OUTPUT = json.loads((BUILD / "config.json").read_text())
# The static output of that build (public/ as it was then).
BUILT_STATIC = {
    "404.html",
    "index.html",
    "docs.html",
    "openapi.json",
    "robots.txt",
    "assets/console.css",
}
BUILT_FUNCTIONS = function_names()
VERCEL = load_vercel_json()
HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def edge(settings: Settings, local_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(ConsoleServer(local_app), follow_redirects=False) as client:
        yield client


def page_headers() -> dict[str, str]:
    [rule] = [r for r in VERCEL["headers"] if r["source"] == "/(.*)"]
    return {h["key"].lower(): h["value"] for h in rule["headers"]}


@pytest.mark.parametrize(("path", "file"), [("/", "index.html"), ("/docs", "docs.html")])
def test_static_pages_are_served_at_their_clean_url_with_vercel_jsons_headers(
    edge: TestClient, path: str, file: str
) -> None:
    response = edge.get(path, headers=HTML)
    assert response.status_code == 200
    assert response.content == (PUBLIC_DIR / file).read_bytes()
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in page_headers().items():
        assert response.headers[name] == value, name
    assert response.headers["content-security-policy"] == PAGE_CSP


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/docs.html", "/docs"),
        ("/index.html", "/"),
        ("/index", "/"),
        ("/api/trust.py", "/api/trust"),
    ],
)
def test_file_names_redirect_to_the_clean_url(edge: TestClient, path: str, location: str) -> None:
    response = edge.get(path)
    assert (response.status_code, response.headers["location"]) == (308, location)


def test_assets_are_served_with_their_type(edge: TestClient) -> None:
    css = edge.get("/assets/console.css")
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    spec = edge.get("/openapi.json")
    assert spec.headers["content-type"] == "application/json; charset=utf-8"
    assert spec.json()["openapi"].startswith("3.")
    assert edge.head("/assets/console.css").content == b""
    assert edge.post("/assets/console.css").status_code == 405


def test_a_function_keeps_its_own_headers_over_vercel_jsons(edge: TestClient) -> None:
    api = edge.get("/api/security")
    assert api.status_code == 200
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    page = edge.get("/security", headers=HTML)
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == PAGE_CSP
    document = edge.get("/security")
    assert document.json() == api.json()


def test_rewritten_paths_reach_their_function_with_the_original_path(edge: TestClient) -> None:
    assert edge.get("/api/accounts/00000000-0000-4000-8000-000000000000").status_code == 401
    assert edge.get("/.well-known/security.txt").text.startswith("# CloudAgencyOps")


def test_unknown_paths_answer_vercels_404s(edge: TestClient) -> None:
    page = edge.get("/no-such-page")
    assert page.status_code == 404
    assert page.content == (PUBLIC_DIR / "404.html").read_bytes()
    assert page.headers["content-security-policy"] == PAGE_CSP
    # No function at /api/openapi.json on Vercel: the composed app's own document is not served.
    assert edge.get("/api/openapi.json").status_code == 404
    assert edge.get("/api/no-such").status_code == 404


def test_the_server_reads_its_routing_from_vercel_json(
    settings: Settings, local_app: FastAPI
) -> None:
    config = copy.deepcopy(VERCEL)
    config["headers"].append({"source": "/docs", "headers": [{"key": "X-Probe", "value": "1"}]})
    config["rewrites"].append({"source": "/start", "destination": "/index.html"})
    with TestClient(ConsoleServer(local_app, config=config)) as client:
        assert client.get("/docs").headers["x-probe"] == "1"
        assert client.get("/start").content == (PUBLIC_DIR / "index.html").read_bytes()
    with TestClient(ConsoleServer(local_app), follow_redirects=False) as client:
        assert "x-probe" not in client.get("/docs").headers
        assert client.get("/start").status_code == 404


def _problems(config: dict[str, Any], output: dict[str, Any]) -> list[str]:
    return dc.console_problems(config, output, BUILT_STATIC, BUILT_FUNCTIONS, BUILT_STATIC)


def test_the_local_routing_equals_a_real_builds_routing_table() -> None:
    assert _problems(BUILT_CONFIG, BUILT_OUTPUT) == []
    paths = dc.sample_paths(BUILT_CONFIG, BUILT_STATIC)
    assert {"/", "/docs", "/docs.html", "/security", "/no-such-page", "/api/accounts/x"} <= set(
        paths
    )
    routes = VercelRoutes(BUILT_CONFIG, BUILT_STATIC, BUILT_FUNCTIONS)
    built = dc.build_resolution(BUILT_OUTPUT, BUILT_STATIC, BUILT_FUNCTIONS, "/docs")
    assert built == routes.resolve("/docs")
    assert (built.kind, built.target) == ("static", "docs.html")


def test_a_local_server_routing_otherwise_than_the_build_is_reported() -> None:
    config = copy.deepcopy(BUILT_CONFIG)
    config["cleanUrls"] = False
    problems = _problems(config, BUILT_OUTPUT)
    assert any(p.startswith("the local server routes /docs to not_found") for p in problems), (
        problems
    )


def test_a_build_serving_a_console_page_without_the_csp_is_reported() -> None:
    output = copy.deepcopy(BUILT_OUTPUT)
    output["routes"] = [r for r in output["routes"] if "Content-Security-Policy" not in str(r)]
    problems = _problems(BUILT_CONFIG, output)
    assert "console page /docs is served without the pages' CSP" in problems
    assert "console page /security is served without the pages' CSP" in problems


def test_a_build_that_lost_a_console_page_is_reported() -> None:
    static = BUILT_STATIC - {"docs.html"}
    output = copy.deepcopy(BUILT_OUTPUT)
    del output["overrides"]["docs.html"]
    problems = dc.console_problems(BUILT_CONFIG, output, static, BUILT_FUNCTIONS, BUILT_STATIC)
    assert "console page /docs reaches no file or function (not_found)" in problems
    assert dc.static_problems(static, BUILT_STATIC) == [
        "static output lacks 1 file(s) of public/: docs.html"
    ]


def test_passthrough_prefixes_reach_the_app_unrouted(settings: Settings) -> None:
    # make demo's own routes (/demo/...) are no part of vercel.json: they pass straight through.
    demo = FastAPI()

    @demo.get("/demo/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(ConsoleServer(demo, passthrough=("/demo/",))) as client:
        assert client.get("/demo/ping").json() == {"ok": True}
    with TestClient(ConsoleServer(demo)) as client:
        assert client.get("/demo/ping").status_code == 404
