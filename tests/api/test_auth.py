"""Every read API route needs a live key of the agency; admin routes need an admin key."""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from functions.access.routes import access_router
from functions.accounts.routes import accounts_router
from functions.agency.routes import agency_router
from functions.audit.routes import audit_router
from functions.costs.routes import costs_router
from functions.runbooks.routes import runbooks_router
from tests.support.factories import AgencyFixture, make_api_key

ROUTERS = [
    accounts_router,
    costs_router,
    access_router,
    runbooks_router,
    audit_router,
    agency_router,
]
ADMIN_ONLY = {
    ("GET", "/api/audit"),
    ("GET", "/api/agency/export"),
    ("DELETE", "/api/agency"),
    ("PATCH", "/api/agency"),
    ("GET", "/api/agency/keys"),
    ("POST", "/api/agency/keys"),
    ("DELETE", "/api/agency/keys/{key_id}"),
    ("POST", "/api/agency/external-id/rotate"),
    ("PATCH", "/api/accounts/{account_id}"),
    ("DELETE", "/api/accounts/{account_id}"),
}


def operations() -> list[tuple[str, str]]:
    ops = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            ops += [(method, route.path) for method in sorted(route.methods or ())]
    return ops


def concrete(path: str) -> str:
    return re.sub(r"\{version\}", "1", re.sub(r"\{\w+_id\}", str(uuid.uuid4()), path))


def call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    body = {"title": "t", "version": 1} if method in {"POST", "PATCH"} else None
    return client.request(method, concrete(path), json=body, headers=headers)


@pytest.mark.parametrize(("method", "path"), operations())
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer cao_" + "x" * 43, "Bearer not-a-key"],
)
def test_a_missing_or_unknown_key_is_401(
    client: TestClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    r = call(client, method, path, headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("method", "path"), operations())
def test_a_revoked_key_is_401(
    client: TestClient,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    method: str,
    path: str,
) -> None:
    revoked = make_api_key(app_conn, agency.id, "admin", revoked=True)
    r = call(client, method, path, {"Authorization": f"Bearer {revoked}"})
    assert r.status_code == 401


@pytest.mark.parametrize(("method", "path"), sorted(ADMIN_ONLY))
def test_member_keys_are_403_on_admin_routes(
    client: TestClient,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    method: str,
    path: str,
) -> None:
    member = make_api_key(app_conn, agency.id, "member")
    r = call(client, method, path, {"Authorization": f"Bearer {member}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    ("method", "path"), [op for op in operations() if op not in ADMIN_ONLY and op[0] == "GET"]
)
def test_member_keys_may_read(
    client: TestClient,
    agency: AgencyFixture,
    app_conn: psycopg.Connection[Any],
    method: str,
    path: str,
) -> None:
    member = make_api_key(app_conn, agency.id, "member")
    r = call(client, method, path, {"Authorization": f"Bearer {member}"})
    assert r.status_code in {200, 404}, r.text
