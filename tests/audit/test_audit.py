"""GET /api/audit: admins read the agency's log, filtered by action and time, keyset-paged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from tests.support import seed
from tests.support.factories import AgencyFixture, make_api_key

Conn = psycopg.Connection[Any]
T0 = datetime(2025, 5, 1, tzinfo=UTC)


def add_entries(conn: Conn, agency: AgencyFixture) -> None:
    for i, action in enumerate(
        ["key.created", "account.linked", "runbook.created", "runbook.updated", "runbook.deleted"]
    ):
        seed.insert(
            conn,
            agency.id,
            "audit_log",
            at=T0 + timedelta(hours=i),
            actor="key:x",
            action=action,
            target=f"t{i}",
            details=Jsonb({"n": i}),
        )


def actions(client: TestClient, agency: AgencyFixture, **params: Any) -> list[str]:
    r = client.get("/api/audit", params=params, headers=agency.headers)
    assert r.status_code == 200, r.text
    return [i["action"] for i in r.json()["items"]]


def test_admins_read_the_log_newest_first(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    add_entries(app_conn, agency)
    items = client.get("/api/audit", headers=agency.headers).json()["items"]
    # The sign-up row is now (newer than T0), then the seeded ones newest first.
    assert [i["action"] for i in items] == [
        "agency.created",
        "runbook.deleted",
        "runbook.updated",
        "runbook.created",
        "account.linked",
        "key.created",
    ]
    assert items[1]["details"] == {"n": 4} and items[1]["target"] == "t4"


def test_the_log_is_filtered_by_action_or_prefix_and_time(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    add_entries(app_conn, agency)
    assert actions(client, agency, action="runbook.updated") == ["runbook.updated"]
    assert actions(client, agency, action="runbook.*") == [
        "runbook.deleted",
        "runbook.updated",
        "runbook.created",
    ]
    window = {
        "since": (T0 + timedelta(hours=1)).isoformat(),
        "until": (T0 + timedelta(hours=3)).isoformat(),
    }
    assert actions(client, agency, **window) == ["runbook.created", "account.linked"]
    for bad in (
        {"action": "drop table;"},
        {"action": "a*b"},
        {"since": "nope"},
        {"since": T0.isoformat(), "until": T0.isoformat()},
    ):
        assert client.get("/api/audit", params=bad, headers=agency.headers).status_code == 422


def test_the_log_pages_by_keyset(client: TestClient, agency: AgencyFixture, app_conn: Conn) -> None:
    add_entries(app_conn, agency)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/audit", params=params, headers=agency.headers).json()
        seen += [i["action"] for i in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 6 and len(set(seen)) == 6


def test_members_cannot_read_the_log(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    member = {"Authorization": f"Bearer {make_api_key(app_conn, agency.id, 'member')}"}
    r = client.get("/api/audit", headers=member)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


def test_another_agencys_entries_never_appear(
    client: TestClient, agency: AgencyFixture, other_agency: AgencyFixture, app_conn: Conn
) -> None:
    add_entries(app_conn, other_agency)
    items = client.get("/api/audit", params={"limit": 500}, headers=agency.headers).json()["items"]
    assert [i["action"] for i in items] == ["agency.created"]
    assert items[0]["target"] == str(agency.id)
