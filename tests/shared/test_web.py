"""The web factory: error shape, validation without echo, body bound, headers, 503 on config."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from pydantic import Field

from shared.errors import ConflictError, RateLimitedError
from shared.settings import Settings
from shared.web import Body, CallerDep, SettingsDep, create_app
from tests.support.deps import with_settings

router = APIRouter()


class Thing(Body):
    name: str = Field(min_length=1, max_length=10)
    count: int = Field(ge=0, le=5)


@router.post("/api/things")
def create_thing(thing: Thing) -> dict[str, str]:
    return {"name": thing.name}


@router.get("/api/conflict")
def conflict() -> None:
    raise ConflictError("runbook changed since version 3: reload and retry")


@router.get("/api/limited")
def limited() -> None:
    raise RateLimitedError("slow down", retry_after=42)


@router.get("/api/boom")
def boom() -> None:
    raise RuntimeError("secret detail that must not leak: postgresql://u:p@h/db")


def _needs_cron_secret(settings: SettingsDep) -> str:
    return settings.cron_secret.reveal()[:0]


@router.get("/api/needs-config")
def needs_config(value: Annotated[str, Depends(_needs_cron_secret)]) -> dict[str, str]:
    return {"ok": value}


@router.get("/api/whoami")
def whoami(caller: CallerDep) -> dict[str, str]:
    return {"agency": str(caller.agency_id), "role": caller.role}


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(router), raise_server_exceptions=False) as c:
        yield c


def test_a_valid_body_is_accepted(client: TestClient) -> None:
    assert client.post("/api/things", json={"name": "x", "count": 1}).json() == {"name": "x"}


def test_a_validation_error_names_the_field_and_never_echoes_the_value(client: TestClient) -> None:
    canary = "CANARY-VALUE-9f2c"
    r = client.post("/api/things", json={"name": canary, "count": 1})
    assert r.status_code == 422
    body = r.json()
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["message"].startswith("name:")
    assert canary not in r.text


def test_unknown_fields_are_refused(client: TestClient) -> None:
    r = client.post("/api/things", json={"name": "x", "count": 1, "agency_id": "evil"})
    assert r.status_code == 422
    assert r.json()["error"]["fields"][0]["field"] == "agency_id"


def test_malformed_json_is_a_4xx_json_error(client: TestClient) -> None:
    r = client.post(
        "/api/things", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert "error" in r.json()


def test_app_errors_map_to_their_status_and_code(client: TestClient) -> None:
    r = client.get("/api/conflict")
    assert r.status_code == 409
    assert r.json() == {
        "error": {
            "code": "conflict",
            "message": "runbook changed since version 3: reload and retry",
        }
    }
    r = client.get("/api/limited")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "42"


def test_an_unexpected_error_is_a_500_json_without_detail(client: TestClient) -> None:
    r = client.get("/api/boom")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error"
    assert "secret detail" not in r.text and "postgresql" not in r.text


def test_unknown_routes_and_methods_get_json_errors(client: TestClient) -> None:
    r = client.get("/api/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.delete("/api/things")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_a_declared_oversize_body_is_refused_before_it_is_read(client: TestClient) -> None:
    r = client.post(
        "/api/things",
        content=b"x" * (256 * 1024 + 1),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_a_streamed_oversize_body_is_refused(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"x" * 10_000

    r = client.post("/api/things", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for r in (
        client.get("/api/conflict"),
        client.post("/api/things", json={"name": "a", "count": 0}),
    ):
        assert r.headers["strict-transport-security"].startswith("max-age=")
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"


def test_a_missing_setting_is_a_503_naming_the_variable(client: TestClient) -> None:
    with with_settings(Settings({})):
        r = client.get("/api/needs-config")
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "not_configured"
    assert "CRON_SECRET" in r.json()["error"]["message"]


@pytest.mark.usefixtures("settings")
def test_authenticated_routes_need_a_live_key(client: TestClient, agency) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/whoami").status_code == 401
    assert client.get("/api/whoami", headers={"Authorization": "Basic abc"}).status_code == 401
    bad = {"Authorization": "Bearer cao_" + "A" * 43}
    assert client.get("/api/whoami", headers=bad).status_code == 401
    r = client.get("/api/whoami", headers=agency.headers)
    assert r.status_code == 200
    assert r.json() == {"agency": str(agency.id), "role": "admin"}
