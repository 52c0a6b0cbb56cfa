"""Crafted cursors through the real API: anything that is not a cursor the endpoint produced is a
400 naming the cursor, never a 500 (issue 15, item 3).

`str.isdigit()` accepts superscripts and other Unicode digits that `int()` refuses; a cursor
whose numeric tie-breaker was one of those used to reach `int()` and answer 500.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from shared.kit.pages import CursorKind, encode_cursor
from tests.support.factories import AgencyFixture

AT = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)

# Tie-breakers `encode_cursor` never writes for a numeric key.
NOT_ASCII_DIGITS = [
    "\u00b2",  # superscript two: isdigit() but not int()
    "1\u00b3",
    "\u0663",  # Arabic-Indic three: int() takes it, but it is not what we write
    "\uff11",  # fullwidth one
    "-1",
    "+1",
    " 1",
    "1_000",
    "",
    "99999999999999999999",  # past bigint
]


def _create_runbook(client: TestClient, agency: AgencyFixture) -> str:
    r = client.post(
        "/api/runbooks", json={"title": "Rotate keys", "body": "steps"}, headers=agency.headers
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _endpoints(client: TestClient, agency: AgencyFixture) -> list[tuple[str, CursorKind]]:
    runbook = _create_runbook(client, agency)
    return [
        ("/api/access/events", "events"),
        ("/api/audit", "audit"),
        (f"/api/runbooks/{runbook}/versions", "versions"),
    ]


@pytest.mark.parametrize("key", NOT_ASCII_DIGITS)
def test_a_cursor_with_a_key_that_is_not_ascii_digits_is_a_400(
    client: TestClient, agency: AgencyFixture, key: str
) -> None:
    for path, kind in _endpoints(client, agency):
        r = client.get(
            path, params={"cursor": encode_cursor(kind, AT, key)}, headers=agency.headers
        )
        assert r.status_code == 400, (path, key, r.status_code, r.text)
        assert r.json()["error"]["code"] == "invalid_cursor"
        assert r.json()["error"]["message"].startswith("cursor:")


def test_a_version_cursor_past_int4_is_a_400_and_a_real_one_pages(
    client: TestClient, agency: AgencyFixture
) -> None:
    runbook = _create_runbook(client, agency)
    path = f"/api/runbooks/{runbook}/versions"
    too_big = encode_cursor("versions", AT, str(2**31))
    assert client.get(path, params={"cursor": too_big}, headers=agency.headers).status_code == 400
    fine = encode_cursor("versions", AT, "7")
    assert client.get(path, params={"cursor": fine}, headers=agency.headers).status_code == 200


@pytest.mark.parametrize(
    ("path", "kind"), [("/api/accounts", "accounts"), ("/api/runbooks", "runbooks")]
)
def test_a_uuid_cursor_must_hold_a_canonical_uuid(
    client: TestClient, agency: AgencyFixture, path: str, kind: CursorKind
) -> None:
    for key in ("{12345678-1234-5678-1234-567812345678}", "12345678123456781234567812345678"):
        r = client.get(
            path, params={"cursor": encode_cursor(kind, AT, key)}, headers=agency.headers
        )
        assert r.status_code == 400, r.text
    canonical = encode_cursor(kind, AT, "12345678-1234-5678-1234-567812345678")
    assert client.get(path, params={"cursor": canonical}, headers=agency.headers).status_code == 200


def test_another_endpoints_cursor_is_a_400(client: TestClient, agency: AgencyFixture) -> None:
    audit_cursor = encode_cursor("audit", AT, "1")
    r = client.get("/api/access/events", params={"cursor": audit_cursor}, headers=agency.headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"


@pytest.mark.parametrize("path", ["/api/access/events", "/api/audit", "/api/accounts"])
def test_a_cursor_nesting_json_arrays_is_a_400_not_a_recursion_error(
    client: TestClient, agency: AgencyFixture, path: str
) -> None:
    raw = b'["events",' + b"[" * 3000  # within the 4096-character cursor bound
    token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    r = client.get(path, params={"cursor": token}, headers=agency.headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"
