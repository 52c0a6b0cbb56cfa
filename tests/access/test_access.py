"""Access governance: events (filtered, newest first, keyset-paged), principals, new principals,
and the vendor-access ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from shared.kit.pages import MAX_LIMIT
from tests.support import seed
from tests.support.factories import AgencyFixture, make_account

Conn = psycopg.Connection[Any]
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
ALICE = "arn:aws:iam::111111111111:user/alice"
BOB = "arn:aws:sts::111111111111:assumed-role/Admin/bob"


def all_pages(client: TestClient, agency: AgencyFixture, path: str, **params: Any) -> list[Any]:
    items: list[Any] = []
    cursor = None
    for _ in range(1000):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        r = client.get(path, params=query, headers=agency.headers)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


@pytest.fixture
def trail(agency: AgencyFixture, app_conn: Conn) -> dict[str, Any]:
    a = make_account(app_conn, agency.id, "111111111111", alias="Prod")
    b = make_account(app_conn, agency.id, "222222222222", alias="Dev")
    events_a = [
        seed.event(
            T0 + timedelta(minutes=i),
            principal_arn=ALICE if i % 2 else BOB,
            principal_name="alice" if i % 2 else "bob",
            event_name="GetObject" if i % 3 else "ConsoleLogin",
            source_ip=f"10.0.0.{i % 4}",
        )
        for i in range(12)
    ]
    # Three events in the same microsecond: the id breaks the tie.
    events_a += [seed.event(T0 + timedelta(minutes=30), principal_arn=ALICE) for _ in range(3)]
    ids_a = seed.add_events(app_conn, agency.id, a, "111111111111", events_a)
    ids_b = seed.add_events(
        app_conn,
        agency.id,
        b,
        "222222222222",
        [
            seed.event(
                T0 + timedelta(minutes=i, seconds=30),
                principal_name="ec2.amazonaws.com",
                source_ip="ec2.amazonaws.com",
            )
            for i in range(5)
        ],
    )
    return {"a": a, "b": b, "ids_a": ids_a, "ids_b": ids_b}


def test_events_come_newest_first_with_ties_broken_by_id(
    client: TestClient, agency: AgencyFixture, trail: dict[str, Any]
) -> None:
    items = all_pages(client, agency, "/api/access/events", limit=4)
    keys = [(i["event_time"], i["id"]) for i in items]
    assert keys == sorted(keys, reverse=True)
    assert len(items) == 20 and len({i["id"] for i in items}) == 20
    first = items[0]
    assert first["account_id"] == str(trail["a"]) and first["principal_arn"] == ALICE
    assert set(first) == {
        "id",
        "account_id",
        "aws_account_id",
        "region",
        "event_id",
        "event_time",
        "event_name",
        "principal_arn",
        "principal_name",
        "source_ip",
        "is_vendor",
    }


def test_pages_are_stable_while_new_events_arrive(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, trail: dict[str, Any]
) -> None:
    first = client.get("/api/access/events", params={"limit": 5}, headers=agency.headers).json()
    # New events land (newer than everything, and one exactly at the page boundary's time).
    boundary = datetime.fromisoformat(first["items"][-1]["event_time"])
    seed.add_events(
        app_conn,
        agency.id,
        trail["a"],
        "111111111111",
        [seed.event(T0 + timedelta(days=1)), seed.event(boundary)],
    )
    rest = all_pages(client, agency, "/api/access/events", limit=5, cursor=first["next_cursor"])
    ids = [i["id"] for i in first["items"]] + [i["id"] for i in rest]
    # Every event that existed is seen exactly once, in order; the new ones are not on the
    # later pages (they sort before the cursor; a new event at the boundary time has a
    # larger id, so it sorts before the boundary row too).
    assert sorted(ids) == sorted(trail["ids_a"] + trail["ids_b"])
    keys = [(i["event_time"], i["id"]) for i in first["items"] + rest]
    assert keys == sorted(keys, reverse=True)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"principal": ALICE}, 9),
        ({"principal": "bob"}, 6),  # a name, not an ARN
        ({"event_name": "ConsoleLogin"}, 4),
        ({"source_ip": "10.0.0.1"}, 3),
        ({"source_ip": "ec2.amazonaws.com"}, 5),
        ({"since": "2025-06-01T12:03:00Z", "until": "2025-06-01T12:06:00Z"}, 5),
        ({"since": "2025-06-01T14:03:00+02:00", "until": "2025-06-01T12:06:00"}, 5),
        ({"principal": ALICE, "event_name": "GetObject"}, 4),
    ],
)
def test_events_are_filtered(
    client: TestClient,
    agency: AgencyFixture,
    trail: dict[str, Any],
    params: dict[str, str],
    expected: int,
) -> None:
    items = all_pages(client, agency, "/api/access/events", **params)
    assert len(items) == expected


def test_events_are_filtered_by_account(
    client: TestClient, agency: AgencyFixture, trail: dict[str, Any]
) -> None:
    items = all_pages(client, agency, "/api/access/events", account_id=str(trail["b"]))
    assert {i["account_id"] for i in items} == {str(trail["b"])} and len(items) == 5
    both = all_pages(
        client, agency, "/api/access/events", account_id=[str(trail["a"]), str(trail["b"])]
    )
    assert len(both) == 20


def test_page_sizes_are_clamped_to_the_maximum(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    account = make_account(app_conn, agency.id)
    with seed.tenant(app_conn, agency.id):
        app_conn.execute(
            "INSERT INTO cao.access_events (agency_id, account_id, aws_account_id, region,"
            " event_id, event_time, event_name) SELECT %s, %s, '123456789012', 'us-east-1',"
            " 'e' || g, %s - g * interval '1 second', 'ListBuckets'"
            " FROM generate_series(1, %s) g",
            (agency.id, account, T0, MAX_LIMIT + 20),
        )
    r = client.get("/api/access/events", params={"limit": 10**6}, headers=agency.headers)
    assert r.status_code == 200
    assert len(r.json()["items"]) == MAX_LIMIT and r.json()["next_cursor"]
    assert (
        client.get("/api/access/events", params={"limit": 0}, headers=agency.headers).status_code
        == 422
    )


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "garbage!"},
        {"since": "2025-06-02T00:00:00Z", "until": "2025-06-01T00:00:00Z"},
        {"since": "yesterday"},
        {"since": "0001-01-01T00:00:00Z"},
        {"limit": -1},
        {"principal": "x\x00y"},
        {"event_name": "a" * 129},
        {"account_id": "123"},
    ],
)
def test_invalid_event_queries_are_422s(
    client: TestClient, agency: AgencyFixture, params: dict[str, Any]
) -> None:
    r = client.get("/api/access/events", params=params, headers=agency.headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request"


def test_principals_are_summarized_with_first_and_last_seen_counts_and_ips(
    client: TestClient, agency: AgencyFixture, trail: dict[str, Any]
) -> None:
    items = all_pages(client, agency, "/api/access/principals", limit=1)
    by = {i["principal"]: i for i in items}
    assert set(by) == {ALICE, BOB, "ec2.amazonaws.com"}
    alice = by[ALICE]
    assert alice["event_count"] == 9
    assert alice["first_seen"] == "2025-06-01T12:01:00Z"
    assert alice["last_seen"] == "2025-06-01T12:30:00Z"
    assert alice["source_ip_count"] == 2 and sorted(alice["source_ips"]) == ["10.0.0.1", "10.0.0.3"]
    service = by["ec2.amazonaws.com"]
    assert service["principal_arn"] is None and service["event_count"] == 5
    # Most recently active first.
    assert items[0]["principal"] == ALICE


def test_new_principals_are_those_first_seen_inside_the_window(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    now = datetime.now(UTC)
    account = make_account(app_conn, agency.id)
    veteran = "arn:aws:iam::111111111111:user/veteran"
    newcomer = "arn:aws:iam::111111111111:user/newcomer"
    seed.add_events(
        app_conn,
        agency.id,
        account,
        "111111111111",
        [
            seed.event(now - timedelta(days=30), principal_arn=veteran),
            seed.event(now - timedelta(hours=1), principal_arn=veteran),
            seed.event(now - timedelta(days=3), principal_arn=newcomer, source_ip="198.51.100.7"),
            seed.event(now - timedelta(hours=2), principal_arn=newcomer, source_ip="198.51.100.8"),
            seed.event(now - timedelta(days=20), principal_name="old.amazonaws.com"),
            seed.event(now - timedelta(hours=3), principal_name="old.amazonaws.com"),
            seed.event(now - timedelta(hours=4), principal_name="new.amazonaws.com"),
        ],
    )

    def new(days: int) -> list[str]:
        r = client.get("/api/access/new-principals", params={"days": days}, headers=agency.headers)
        assert r.status_code == 200, r.text
        return [i["principal"] for i in r.json()["items"]]

    assert new(7) == ["new.amazonaws.com", newcomer]  # newest first appearance first
    assert new(1) == ["new.amazonaws.com"]
    assert set(new(90)) == {veteran, newcomer, "old.amazonaws.com", "new.amazonaws.com"}
    newcomer_row = client.get(
        "/api/access/new-principals", params={"days": 7}, headers=agency.headers
    ).json()["items"][1]
    assert newcomer_row["event_count"] == 2 and newcomer_row["source_ip_count"] == 2
    for days in (0, 91, "x"):
        r = client.get("/api/access/new-principals", params={"days": days}, headers=agency.headers)
        assert r.status_code == 422


def test_the_vendor_ledger_lists_only_our_own_sessions_per_account(
    client: TestClient, agency: AgencyFixture, app_conn: Conn, trail: dict[str, Any]
) -> None:
    ours = "cao-0123abcd-1700000000"
    seed.add_events(
        app_conn,
        agency.id,
        trail["a"],
        "111111111111",
        [
            seed.event(
                T0 + timedelta(hours=1, minutes=i),
                is_vendor=True,
                principal_name=ours,
                principal_arn=f"arn:aws:sts::111111111111:assumed-role/CAO/{ours}",
                event_name=name,
                source_ip="203.0.113.9",
            )
            for i, name in enumerate(["GetCostAndUsage", "LookupEvents", "LookupEvents"])
        ],
    )
    seed.add_events(
        app_conn,
        agency.id,
        trail["b"],
        "222222222222",
        [
            seed.event(T0 + timedelta(hours=2), is_vendor=True, principal_name=ours),
        ],
    )

    items = all_pages(client, agency, "/api/access/vendor", limit=1)

    assert [(i["aws_account_id"], i["session_name"]) for i in items] == [
        ("222222222222", ours),
        ("111111111111", ours),
    ]
    prod = items[1]
    assert prod["alias"] == "Prod" and prod["event_count"] == 3
    assert prod["event_names"] == ["GetCostAndUsage", "LookupEvents"]
    assert prod["source_ips"] == ["203.0.113.9"]
    assert prod["first_event"] == "2025-06-01T13:00:00Z"
    only_b = all_pages(client, agency, "/api/access/vendor", account_id=str(trail["b"]))
    assert len(only_b) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/api/access/events",
        "/api/access/principals",
        "/api/access/vendor",
        "/api/access/new-principals",
    ],
)
def test_access_lists_never_show_another_agencys_events(
    client: TestClient,
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    app_conn: Conn,
    path: str,
) -> None:
    theirs = make_account(app_conn, other_agency.id, "999999999999")
    seed.add_events(
        app_conn,
        other_agency.id,
        theirs,
        "999999999999",
        [
            seed.event(
                datetime.now(UTC),
                principal_arn="arn:aws:iam::999999999999:user/theirs",
                is_vendor=True,
                principal_name="cao-theirs",
            ),
        ],
    )
    r = client.get(path, headers=agency.headers)
    assert r.status_code == 200 and r.json()["items"] == []
    r = client.get(path, params={"account_id": str(theirs)}, headers=agency.headers)
    assert r.status_code == 404
