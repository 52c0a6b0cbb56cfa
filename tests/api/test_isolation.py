"""Tenant isolation over the whole API: every operation of the local server's OpenAPI document
(every api file's routes, not only the read API's) is called with agency A's admin key and
agency B's ids, in the path, in the query and in the body, one place at a time (the other
places hold A's own ids, so the 404 can only come from B's id). Each call must answer 404 (or
401 from routes that take no agency key at all: cron, webhooks), echo nothing of B, and leave
every row of B exactly as it was. Operations with no id anywhere are read (GETs only, so no
call reaches AWS or Polar) and must show nothing of B either. The walk runs twice: with A's admin
API key, and with the browser session of A's admin user (cookie, Origin and CSRF token).
"""

from __future__ import annotations

import secrets
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from hypothesis.errors import NonInteractiveExampleWarning

from shared import auth
from tests.support import seed
from tests.support.alerts import add_alert_rows
from tests.support.factories import AgencyFixture, make_account, make_agency, make_api_key

Conn = psycopg.Connection[Any]
METHODS = ("get", "post", "put", "patch", "delete")
PERSON_ONLY = ("/api/passkeys", "/api/sessions", "/api/session")


@dataclass
class Tenant:
    """An agency with a row in every table, and the ids a client could name."""

    agency: AgencyFixture
    ids: dict[str, Any]
    aws_account_id: str
    marker: str
    spare_key: str = ""
    session_token: str = ""
    texts: list[str] = field(default_factory=list)

    def headers(self, how: str) -> dict[str, str]:
        """A's admin key, or A's admin user's browser session."""
        if how == "key":
            return self.agency.headers
        return {
            "Cookie": f"{auth.SESSION_COOKIE}={self.session_token}",
            "Origin": "https://cloudagencyops.com",
            "X-CSRF-Token": auth.csrf_token(self.session_token),
        }


def build_tenant(conn: Conn, marker: str) -> Tenant:
    agency = make_agency(conn, name=f"{marker} agency")
    aws_id = f"{secrets.randbelow(10**12):012d}"
    account = make_account(conn, agency.id, aws_id, alias=f"{marker}-alias", is_management=True)
    seed.insert(
        conn,
        agency.id,
        "discovered_accounts",
        management_id=account,
        aws_account_id=f"{secrets.randbelow(10**12):012d}",
        name=f"{marker}-member",
    )
    seed.add_cost(
        conn, agency.id, account, aws_id, date.today().replace(day=1), f"{marker}-service", "42.42"
    )
    seed.add_events(
        conn,
        agency.id,
        account,
        aws_id,
        [
            seed.event(
                datetime.now(UTC) - timedelta(hours=1),
                principal_arn=f"arn:aws:iam::{aws_id}:user/{marker}-user",
                principal_name=f"{marker}-user",
                source_ip="192.0.2.77",
                is_vendor=True,
            ),
        ],
    )
    seed.insert(conn, agency.id, "sync_jobs", account_id=account, kind="costs")
    seed.insert(
        conn,
        agency.id,
        "sync_runs",
        account_id=account,
        kind="costs",
        error_class=f"{marker}-error",
    )
    seed.insert(
        conn,
        agency.id,
        "sync_cursors",
        account_id=account,
        region="us-east-1",
        position=datetime.now(UTC),
    )
    runbook = seed.insert(
        conn,
        agency.id,
        "runbooks",
        title=f"{marker}-runbook",
        body=f"{marker}-body",
        account_id=account,
        version=2,
    )
    seed.insert(
        conn,
        agency.id,
        "runbook_versions",
        runbook_id=runbook,
        version=1,
        title=f"{marker}-old-title",
        body=f"{marker}-old-body",
    )
    seed.insert(
        conn, agency.id, "audit_log", actor="test", action="test.marker", target=f"{marker}-target"
    )
    spare = make_api_key(conn, agency.id, "member")
    key_id = conn.execute(
        "SELECT k.key_id FROM cao.authenticate_key(%s) k",
        (auth.hash_key(spare),),
    ).fetchone()
    assert key_id is not None
    people = seed.add_people(conn, agency.id, marker)
    alert_ids = add_alert_rows(conn, agency.id, account, aws_id, marker)
    ids = {
        "agency": agency.id,
        "account": account,
        "runbook": runbook,
        "key": key_id[0],
        **{k: people[k] for k in ("user", "passkey", "session", "invitation")},
        **alert_ids,
    }
    return Tenant(agency, ids, aws_id, marker, spare, people["session_token"])


# Path/query/body names -> which of a tenant's ids they hold.
_ID_KINDS = {
    "client_id": "client",
    "budget_id": "budget",
    "anomaly_id": "anomaly",
    "runbook_id": "runbook",
    "key_id": "key",
    "agency_id": "agency",
    "user_id": "user",
    "passkey_id": "passkey",
    "session_id": "session",
    "invitation_id": "invitation",
}


# Realistic values for fields whose rules the schema cannot express (validators in code): a
# route added later may need an entry here when its 422 hides the answer under test.
KNOWN_VALUES: dict[str, Any] = {
    "regions": ["us-east-1"],
    "default_regions": ["us-east-1"],
    "region": "us-east-1",
    "alias": "walk-alias",
    "name": "walk-name",
    "contact_email": "ops@example.com",
    "role_arn": "arn:aws:iam::210987654321:role/CloudAgencyOpsReadOnly",
    "cloudtrail_retention_days": 30,
    "cloudtrail_backfill_days": 7,
}


def id_for(name: str, tenant: Tenant) -> Any:
    return tenant.ids[_ID_KINDS.get(name, "account")]


class Builder:
    """Minimal valid requests from the OpenAPI document, with chosen ids placed."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.spec["components"]["schemas"][name]
        return schema

    @staticmethod
    def is_uuid(schema: dict[str, Any]) -> bool:
        if schema.get("format") == "uuid":
            return True
        return any(Builder.is_uuid(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))

    def is_id(self, name: str, schema: dict[str, Any]) -> bool:
        schema = self.resolve(schema)
        if schema.get("type") == "array":
            return self.is_id(name, schema.get("items", {}))
        for option in schema.get("anyOf", []):
            if self.resolve(option).get("type") == "array":
                return self.is_id(name, self.resolve(option).get("items", {}))
        return self.is_uuid(schema)

    def value(self, name: str, schema: dict[str, Any], tenant: Tenant | None) -> Any:
        """A valid value; an id of `tenant` when the field holds an id."""
        if name in KNOWN_VALUES:
            return KNOWN_VALUES[name]
        schema = self.resolve(schema)
        options = [self.resolve(s) for s in schema.get("anyOf", []) + schema.get("oneOf", [])]
        options = [o for o in options if o.get("type") != "null"]
        if options:
            return self.value(name, options[0], tenant)
        kind = schema.get("type")
        if kind == "array":
            item = self.value(name, schema.get("items", {}), tenant)
            return [item]
        if kind == "object":
            return self.body(schema, tenant)
        if self.is_uuid(schema):
            return str(id_for(name, tenant)) if tenant else str(uuid.uuid4())
        if "enum" in schema:
            return schema["enum"][0]
        if kind in {"integer", "number"}:
            return max(1, schema.get("minimum", 1))
        if kind == "boolean":
            return False
        if schema.get("format") == "date-time":
            return datetime.now(UTC).isoformat()
        if "pattern" in schema:
            strategy = st.from_regex(schema["pattern"], fullmatch=True)
            if "maxLength" in schema:
                strategy = strategy.filter(lambda s: len(s) <= schema["maxLength"])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NonInteractiveExampleWarning)
                return strategy.example()
        return "x" * max(1, schema.get("minLength", 1))

    def body(self, schema: dict[str, Any], tenant: Tenant | None) -> dict[str, Any]:
        """Every field (so that no "nothing to change" hides the answer), ids from `tenant`."""
        schema = self.resolve(schema)
        return {
            name: self.value(name, prop, tenant)
            for name, prop in schema.get("properties", {}).items()
        }


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, Any]
    body: Any
    placed: str  # where the other agency's ids are: path, query, body or "" (nowhere)


def requests_for(
    builder: Builder, path: str, method: str, op: dict[str, Any], a: Tenant, b: Tenant
) -> list[Request]:
    params = op.get("parameters", [])
    path_params = [p for p in params if p["in"] == "path"]
    query_params = [p for p in params if p["in"] == "query"]
    body_schema = (
        op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    )
    has_query_ids = any(builder.is_id(p["name"], p.get("schema", {})) for p in query_params)
    has_body_ids = body_schema is not None and any(
        builder.is_id(n, s) for n, s in builder.resolve(body_schema).get("properties", {}).items()
    )

    def make(path_owner: Tenant, query_owner: Tenant, body_owner: Tenant, placed: str) -> Request:
        concrete = path
        for p in path_params:
            concrete = concrete.replace(
                "{" + p["name"] + "}", str(builder.value(p["name"], p["schema"], path_owner))
            )
        query = {}
        for p in query_params:
            if query_owner is not None and builder.is_id(p["name"], p.get("schema", {})):
                query[p["name"]] = builder.value(p["name"], p["schema"], query_owner)
            elif p.get("required"):
                query[p["name"]] = builder.value(p["name"], p["schema"], None)
        body = builder.body(body_schema, body_owner) if body_schema is not None else None
        return Request(method.upper(), concrete, query, body, placed)

    # One place at a time holds B's ids; the others hold A's own, so a 404 can only come
    # from B's id.
    out = []
    if path_params:
        out.append(make(b, a, a, "path"))
    if has_query_ids:
        out.append(make(a, b, a, "query"))
    if has_body_ids:
        out.append(make(a, a, b, "body"))
    if not out and method == "get":
        out.append(make(a, a, a, ""))
    return out


def operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    spec = app.openapi()
    return [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def b_texts(b: Tenant) -> list[str]:
    return [
        b.marker,
        str(b.ids["agency"]),
        str(b.ids["account"]),
        str(b.ids["runbook"]),
        str(b.ids["key"]),
        str(b.ids["user"]),
        str(b.ids["passkey"]),
        str(b.ids["session"]),
        str(b.ids["invitation"]),
        b.aws_account_id,
    ]


@pytest.mark.parametrize("how", ["key", "session"])
def test_every_route_refuses_another_agencys_ids_and_shows_nothing_of_it(
    how: str,
    aws_env: dict[str, str],  # first: the settings the client uses are built from it
    local_app: FastAPI,
    client: TestClient,
    app_conn: Conn,
    owner_conn: Conn,
) -> None:
    a = build_tenant(app_conn, "ALPHA")
    b = build_tenant(app_conn, "BRAVO")
    before = seed.all_rows_of(owner_conn, b.agency.id)
    builder = Builder(local_app.openapi())
    checked: list[str] = []
    failures: list[str] = []

    for path, method, op in operations(local_app):
        for req in requests_for(builder, path, method, op, a, b):
            r = client.request(
                req.method, req.path, params=req.params, json=req.body, headers=a.headers(how)
            )
            label = f"{req.method} {path} (B's ids in {req.placed or 'nothing'})"
            checked.append(label)
            sent = f"{req.path} {req.params} {req.body}"
            leaked = [t for t in b_texts(b) if t in r.text and t not in sent]
            if r.status_code >= 500:
                failures.append(f"{label}: {r.status_code} {r.text[:200]}")
            elif how == "key" and path.startswith(PERSON_ONLY) and r.status_code == 403:
                pass  # a person's own passkeys and sessions: a key is no person, whatever the id
            elif req.placed and r.status_code not in {404, 401}:
                failures.append(f"{label}: expected 404, got {r.status_code} {r.text[:200]}")
            elif req.placed and r.status_code == 401:
                # Only routes that take no agency key at all may answer 401 to A's admin key.
                bare = client.request(req.method, req.path, params=req.params, json=req.body)
                if bare.status_code != 401:
                    failures.append(f"{label}: 401 with A's key but {bare.status_code} without")
            if leaked:
                failures.append(f"{label}: response shows B's {leaked}")
            if seed.all_rows_of(owner_conn, b.agency.id) != before:
                failures.append(f"{label}: changed B's rows")
                before = seed.all_rows_of(owner_conn, b.agency.id)

    assert not failures, "\n".join(failures)
    # The walk covered the read API's routes in every place they take an id.
    for expected in (
        "GET /api/accounts/{account_id} (B's ids in path)",
        "GET /api/costs (B's ids in query)",
        "GET /api/access/events (B's ids in query)",
        "POST /api/runbooks (B's ids in body)",
        "PATCH /api/runbooks/{runbook_id} (B's ids in body)",
        "DELETE /api/runbooks/{runbook_id} (B's ids in path)",
        "GET /api/runbooks/{runbook_id}/versions/{version} (B's ids in path)",
        "GET /api/audit (B's ids in nothing)",
        "GET /api/agency/export (B's ids in nothing)",
        "PATCH /api/users/{user_id} (B's ids in path)",
        "DELETE /api/passkeys/{passkey_id} (B's ids in path)",
        "DELETE /api/sessions/{session_id} (B's ids in path)",
        "DELETE /api/invitations/{invitation_id} (B's ids in path)",
        "GET /api/users (B's ids in nothing)",
    ):
        assert expected in checked, checked
    # A's key or session still works: nothing in the walk touched A's access either.
    assert client.get("/api/accounts", headers=a.headers(how)).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/accounts",
        "/api/costs",
        "/api/access/events",
        "/api/access/principals",
        "/api/access/new-principals",
        "/api/access/vendor",
        "/api/runbooks",
        "/api/audit",
    ],
)
def test_lists_and_totals_hold_only_the_callers_rows(
    client: TestClient, app_conn: Conn, path: str
) -> None:
    a = build_tenant(app_conn, "ALPHA")
    b = build_tenant(app_conn, "BRAVO")
    r = client.get(path, params={"limit": 500}, headers=a.agency.headers)
    assert r.status_code == 200
    assert "ALPHA" in r.text or (path == "/api/accounts" and str(a.ids["account"]) in r.text)
    assert not [t for t in b_texts(b) if t in r.text]
    if path == "/api/costs":
        assert [t["total"] for t in r.json()["totals"]] == ["42.42"]


def test_a_transaction_never_leaks_the_tenant_to_the_next_request(
    client: TestClient, app_conn: Conn
) -> None:
    """Alternating agencies on one process: each sees only its own accounts every time."""
    a = build_tenant(app_conn, "ALPHA")
    b = build_tenant(app_conn, "BRAVO")
    for _ in range(3):
        for t in (a, b):
            items = client.get("/api/accounts", headers=t.agency.headers).json()["items"]
            assert [i["id"] for i in items] == [str(t.ids["account"])]


def test_unknown_ids_are_404_like_another_agencys(client: TestClient, app_conn: Conn) -> None:
    a = build_tenant(app_conn, "ALPHA")
    for path in (f"/api/accounts/{uuid.uuid4()}", f"/api/runbooks/{uuid.uuid4()}"):
        assert client.get(path, headers=a.agency.headers).status_code == 404
