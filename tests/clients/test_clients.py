"""/api/clients: CRUD, an account in at most one client, audited changes; and `client_id` as a
filter of GET /api/costs (JSON and CSV)."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from tests.support import seed
from tests.support.factories import AgencyFixture, make_account, make_api_key

Conn = psycopg.Connection[Any]
MAR = date(2025, 3, 1)


def audit_actions(client: TestClient, agency: AgencyFixture) -> list[str]:
    r = client.get("/api/audit", params={"action": "client.*"}, headers=agency.headers)
    assert r.status_code == 200, r.text
    return [e["action"] for e in r.json()["items"]]


def test_a_client_is_created_edited_and_deleted_with_its_accounts(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    prod = make_account(app_conn, agency.id, alias="Prod")
    dev = make_account(app_conn, agency.id, alias="Dev")
    r = client.post(
        "/api/clients",
        json={"name": "Globex", "notes": "retail", "account_ids": [str(prod)]},
        headers=agency.headers,
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["name"] == "Globex" and made["account_ids"] == [str(prod)]
    assert r.headers["Location"] == f"/api/clients/{made['id']}"

    r = client.patch(
        f"/api/clients/{made['id']}",
        json={"name": "Globex Corp", "account_ids": [str(dev)]},
        headers=agency.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Globex Corp" and r.json()["account_ids"] == [str(dev)]
    listed = client.get("/api/clients", headers=agency.headers).json()["items"]
    assert [c["name"] for c in listed] == ["Globex Corp"]

    assert client.delete(f"/api/clients/{made['id']}", headers=agency.headers).status_code == 204
    assert client.get(f"/api/clients/{made['id']}", headers=agency.headers).status_code == 404
    assert client.delete(f"/api/clients/{made['id']}", headers=agency.headers).status_code == 404
    assert audit_actions(client, agency) == ["client.deleted", "client.updated", "client.created"]


def test_an_account_belongs_to_at_most_one_client(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    prod = make_account(app_conn, agency.id)
    first = client.post(
        "/api/clients", json={"name": "A", "account_ids": [str(prod)]}, headers=agency.headers
    ).json()
    r = client.post(
        "/api/clients", json={"name": "B", "account_ids": [str(prod)]}, headers=agency.headers
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "account_has_client"
    assert first["id"] in r.json()["error"]["message"]
    # Nothing was created by the refused request.
    assert [
        c["name"] for c in client.get("/api/clients", headers=agency.headers).json()["items"]
    ] == ["A"]
    # Moved by removing it first.
    client.patch(f"/api/clients/{first['id']}", json={"account_ids": []}, headers=agency.headers)
    r = client.post(
        "/api/clients", json={"name": "B", "account_ids": [str(prod)]}, headers=agency.headers
    )
    assert r.status_code == 201


def test_bad_input_is_a_clear_4xx_and_changes_nothing(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    client.post("/api/clients", json={"name": "Taken"}, headers=agency.headers)
    cases = [
        ({"name": ""}, 422),
        ({"name": "x" * 201}, 422),
        ({"name": "Taken"}, 409),
        ({"name": "ok", "unknown": 1}, 422),
        ({"name": "ok", "account_ids": ["00000000-0000-0000-0000-000000000000"]}, 404),
    ]
    for body, status in cases:
        r = client.post("/api/clients", json=body, headers=agency.headers)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["message"]
    assert len(client.get("/api/clients", headers=agency.headers).json()["items"]) == 1


def test_member_keys_read_clients_but_do_not_change_them(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    member = {"Authorization": f"Bearer {make_api_key(app_conn, agency.id, 'member')}"}
    assert client.post("/api/clients", json={"name": "X"}, headers=member).status_code == 403
    assert client.get("/api/clients", headers=member).status_code == 200


def test_costs_filtered_by_client_json_and_csv(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    prod = make_account(app_conn, agency.id, "111111111111", alias="Prod")
    dev = make_account(app_conn, agency.id, "222222222222", alias="Dev")
    seed.add_cost(app_conn, agency.id, prod, "111111111111", MAR, "Amazon EC2", "100")
    seed.add_cost(app_conn, agency.id, dev, "222222222222", MAR, "Amazon EC2", "7")
    globex = client.post(
        "/api/clients", json={"name": "Globex", "account_ids": [str(prod)]}, headers=agency.headers
    ).json()["id"]
    empty = client.post("/api/clients", json={"name": "Empty"}, headers=agency.headers).json()["id"]
    params = {"from": "2025-03", "to": "2025-03", "group_by": "account"}

    def report(**extra: Any) -> Any:
        r = client.get("/api/costs", params={**params, **extra}, headers=agency.headers)
        assert r.status_code == 200, r.text
        return r.json()

    assert [g["key"] for g in report()["groups"]] == ["111111111111", "222222222222"]
    only = report(client_id=globex)
    assert [g["key"] for g in only["groups"]] == ["111111111111"]
    assert only["totals"][0]["total"] == "100"
    assert report(client_id=empty)["groups"] == []
    # With account_id too: only the client's among them.
    assert report(client_id=globex, account_id=str(dev))["groups"] == []
    r = client.get(
        "/api/costs",
        params={**params, "client_id": globex},
        headers={**agency.headers, "Accept": "text/csv"},
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["key"] for row in rows} == {"111111111111"}
    unknown = client.get(
        "/api/costs",
        params={**params, "client_id": "00000000-0000-0000-0000-000000000000"},
        headers=agency.headers,
    )
    assert unknown.status_code == 404 and "client" in unknown.json()["error"]["message"]
