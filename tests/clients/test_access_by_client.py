"""`client_id` as a filter of the access reads (events, principals, new principals, vendor):
the client's accounts only; with account_id, those of them the client holds; a client with no
account shows nothing (never everything); another agency's client is a 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.support import seed
from tests.support.factories import AgencyFixture, make_account

Conn = psycopg.Connection[Any]
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PATHS = [
    "/api/access/events",
    "/api/access/principals",
    "/api/access/new-principals",
    "/api/access/vendor",
]


@pytest.fixture
def setup(client: TestClient, agency: AgencyFixture, app_conn: Conn) -> dict[str, Any]:
    prod = make_account(app_conn, agency.id, "111111111111", alias="Prod")
    dev = make_account(app_conn, agency.id, "222222222222", alias="Dev")
    for account, aws_id, who in ((prod, "111111111111", "alice"), (dev, "222222222222", "bob")):
        seed.add_events(
            app_conn,
            agency.id,
            account,
            aws_id,
            [
                seed.event(
                    T0 + timedelta(minutes=i),
                    principal_arn=f"arn:aws:iam::{aws_id}:user/{who}",
                    principal_name=who,
                )
                for i in range(3)
            ],
        )

    def make(name: str, accounts: list[Any]) -> str:
        r = client.post(
            "/api/clients",
            json={"name": name, "account_ids": [str(a) for a in accounts]},
            headers=agency.headers,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    return {"prod": prod, "dev": dev, "globex": make("Globex", [prod]), "empty": make("Empty", [])}


def read(client: TestClient, agency: AgencyFixture, path: str, **params: Any) -> Any:
    r = client.get(path, params=params, headers=agency.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_events_and_principals_show_only_the_clients_accounts(
    client: TestClient, agency: AgencyFixture, setup: dict[str, Any]
) -> None:
    everyone = read(client, agency, "/api/access/events")
    assert {e["aws_account_id"] for e in everyone} == {"111111111111", "222222222222"}
    events = read(client, agency, "/api/access/events", client_id=setup["globex"])
    assert len(events) == 3 and {e["aws_account_id"] for e in events} == {"111111111111"}
    principals = read(client, agency, "/api/access/principals", client_id=setup["globex"])
    assert [p["principal"] for p in principals] == ["arn:aws:iam::111111111111:user/alice"]
    # With account_id too: only those of them the client holds.
    both = read(
        client,
        agency,
        "/api/access/events",
        client_id=setup["globex"],
        account_id=str(setup["dev"]),
    )
    assert both == []


@pytest.mark.parametrize("path", PATHS)
def test_a_client_without_accounts_shows_nothing_and_an_unknown_client_is_a_404(
    client: TestClient,
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    setup: dict[str, Any],
    path: str,
) -> None:
    assert read(client, agency, path, client_id=setup["empty"]) == []
    theirs = client.post("/api/clients", json={"name": "Theirs"}, headers=other_agency.headers)
    r = client.get(path, params={"client_id": theirs.json()["id"]}, headers=agency.headers)
    assert r.status_code == 404 and "client" in r.json()["error"]["message"]
