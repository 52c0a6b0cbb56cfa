"""Every authenticated route refuses a missing or malformed `Authorization` header before it
opens a database connection (issue 15, item 7).

The database is pointed at a port where nothing listens: a route that connected first would
answer 503 (database unavailable); one that looks at the header first answers 401. Every route
of the local app that depends on an API key or on the cron secret is walked, so a new route
that lists `conn` before its caller fails here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from devstack.server import create_local_app
from shared import web
from shared.cron import require_cron
from tests.conftest import base_env
from tests.support.database import TestDatabase

UNREACHABLE = "postgresql://cao_app@127.0.0.1:9/nowhere?connect_timeout=1"
GATES: tuple[Callable[..., Any], ...] = (web.get_credential, require_cron)

MALFORMED = [
    None,
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "bearer cao_short",
    "Bearer " + "x" * 47,  # the right length, not our prefix
    "Bearer cao_" + "A" * 44,  # one character too many
    "Token cao_" + "A" * 43,
]


@pytest.fixture
def env(database: TestDatabase) -> dict[str, str]:
    return {**base_env(database), "DATABASE_URL": UNREACHABLE}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_local_app()


@pytest.fixture
def http(settings: Any, app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


def _gated(dependant: Dependant) -> bool:
    return any(d.call in GATES or _gated(d) for d in dependant.dependencies)


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI >= 0.160 keeps routers
        if included is not None:
            yield from _api_routes(included.routes)


def _authenticated_routes() -> list[tuple[str, str]]:
    found = set()
    for route in _api_routes(create_local_app().routes):
        if _gated(route.dependant):
            path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), route.path)
            found |= {(method, path) for method in route.methods - {"HEAD"}}
    return sorted(found)


ROUTES = _authenticated_routes()


def test_the_walk_finds_the_authenticated_routes() -> None:
    paths = {p for _, p in ROUTES}
    assert len(ROUTES) > 30
    assert {"/api/accounts", "/api/audit", "/api/cron/dispatch"} <= paths


def test_the_database_really_is_unreachable_here(http: TestClient) -> None:
    # The control: a well-formed key has to be looked up, and that fails for want of a database.
    r = http.get("/api/accounts", headers={"Authorization": "Bearer cao_" + "A" * 43})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "database_unavailable"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_malformed_authorization_header_is_a_401_before_any_connection(
    http: TestClient, method: str, path: str
) -> None:
    for header in MALFORMED:
        headers = {} if header is None else {"Authorization": header}
        r = http.request(method, path, headers=headers, json={})
        assert r.status_code == 401, (method, path, header, r.status_code, r.text)
        assert r.json()["error"]["code"] == "unauthorized"


MALFORMED_COOKIES = [
    "",
    "short",
    "x" * 42,
    "x" * 44,
    "A" * 42 + "!",  # right length, not our alphabet
]


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/accounts"), ("POST", "/api/runbooks")])
def test_a_malformed_session_cookie_is_a_401_before_any_connection(
    http: TestClient, method: str, path: str
) -> None:
    for cookie in MALFORMED_COOKIES:
        r = http.request(
            method,
            path,
            headers={
                "Cookie": f"__Host-cao_session={cookie}",
                "Origin": "https://cloudagencyops.com",
            },
            json={},
        )
        assert r.status_code == 401, (cookie, r.status_code, r.text)


def test_a_well_formed_cookie_is_looked_up_and_a_bad_csrf_token_refused_before_it(
    http: TestClient,
) -> None:
    cookie = {"Cookie": "__Host-cao_session=" + "A" * 43}
    # The control: a well-formed session token has to be looked up (no database here: 503).
    assert http.get("/api/accounts", headers=cookie).status_code == 503
    # A change without our origin or CSRF token is refused first: no connection either.
    r = http.post("/api/runbooks", headers={**cookie, "Origin": "https://cloudagencyops.com"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_token"
