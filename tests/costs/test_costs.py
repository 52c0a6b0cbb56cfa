"""GET /api/costs: grouping, totals, month-over-month change, Estimated flags, CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from shared.kit.months import add_months, month_of
from tests.support import seed
from tests.support.factories import AgencyFixture, make_account

Conn = psycopg.Connection[Any]
JAN, FEB, MAR = date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)
RANGE = {"from": "2025-01", "to": "2025-03"}


@pytest.fixture
def ledger(agency: AgencyFixture, app_conn: Conn) -> dict[str, Any]:
    """Two linked accounts; the first is a management account whose sync also brought a
    member's (unlinked) costs."""
    prod = make_account(app_conn, agency.id, "111111111111", alias="Prod", is_management=True)
    dev = make_account(app_conn, agency.id, "222222222222", alias="Dev")
    seed.insert(
        app_conn,
        agency.id,
        "discovered_accounts",
        management_id=prod,
        aws_account_id="333333333333",
        name="Member three",
    )
    rows = [
        (prod, "111111111111", JAN, "Amazon EC2", "100.10"),
        (prod, "111111111111", FEB, "Amazon EC2", "110.20"),
        (prod, "111111111111", MAR, "Amazon EC2", "121.0000000001"),
        (prod, "111111111111", MAR, "Amazon S3", "5"),
        (prod, "333333333333", FEB, "Amazon S3", "7.5"),
        (dev, "222222222222", JAN, "Amazon EC2", "10"),
        (dev, "222222222222", MAR, "AWS Lambda", "0.0000000001"),
    ]
    for account, usage, month, service, amount in rows:
        seed.add_cost(
            app_conn, agency.id, account, usage, month, service, amount, estimated=(month == MAR)
        )
    # Another metric that must never be summed into UnblendedCost.
    seed.add_cost(
        app_conn, agency.id, dev, "222222222222", JAN, "Amazon EC2", "999", metric="AmortizedCost"
    )
    return {"prod": prod, "dev": dev}


def get(client: TestClient, agency: AgencyFixture, **params: Any) -> Any:
    r = client.get("/api/costs", params={**RANGE, **params}, headers=agency.headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_costs_by_service_have_dense_months_totals_and_change(
    client: TestClient, agency: AgencyFixture, ledger: dict[str, Any]
) -> None:
    body = get(client, agency, group_by="service")

    assert body["months"] == ["2025-01", "2025-02", "2025-03"]
    groups = {g["key"]: g for g in body["groups"]}
    assert [g["key"] for g in body["groups"]] == ["Amazon EC2", "Amazon S3", "AWS Lambda"]
    ec2 = groups["Amazon EC2"]
    assert ec2["total"] == "341.3000000001"
    assert ec2["months"] == ["2025-01", "2025-02", "2025-03"]
    assert ec2["amounts"] == ["110.1", "110.2", "121.0000000001"]
    assert ec2["change"] == {
        "month": "2025-03",
        "previous_month": "2025-02",
        "amount": "10.8000000001",
        "percent": "9.8",
    }
    s3 = groups["Amazon S3"]
    assert s3["amounts"] == ["0", "7.5", "5"]  # zero-filled
    assert groups["AWS Lambda"]["change"]["percent"] is None  # from 0
    [totals] = body["totals"]
    assert totals["currency"] == "USD"
    assert totals["total"] == "353.8000000002"
    assert [m["amount"] for m in totals["months"]] == ["110.1", "117.7", "126.0000000002"]
    assert totals["months"][0]["change_amount"] is None
    assert totals["months"][1]["change_amount"] == "7.6"
    assert totals["months"][1]["change_percent"] == "6.9"


def test_amounts_are_decimal_strings_never_floats(
    client: TestClient, agency: AgencyFixture, ledger: dict[str, Any]
) -> None:
    body = get(client, agency)
    amounts = [a for g in body["groups"] for a in g["amounts"]]
    amounts += [g["total"] for g in body["groups"]] + [t["total"] for t in body["totals"]]
    assert amounts and all(isinstance(a, str) for a in amounts)
    assert "0.0000000001" in amounts  # a float would have lost or rounded it


def test_estimated_months_are_flagged(
    client: TestClient, agency: AgencyFixture, ledger: dict[str, Any]
) -> None:
    body = get(client, agency, group_by="service")
    assert body["estimated_months"] == ["2025-03"]
    ec2 = next(g for g in body["groups"] if g["key"] == "Amazon EC2")
    assert ec2["amounts_estimated"] == [False, False, True]
    assert ec2["estimated"] is True and body["totals"][0]["estimated"] is True


def test_costs_by_account_are_attributed_to_the_usage_account_with_its_name(
    client: TestClient, agency: AgencyFixture, ledger: dict[str, Any]
) -> None:
    groups = {g["key"]: g for g in get(client, agency, group_by="account")["groups"]}
    assert groups["111111111111"]["label"] == "Prod"
    assert groups["111111111111"]["account_id"] == str(ledger["prod"])
    assert groups["111111111111"]["total"] == "336.3000000001"
    assert groups["333333333333"]["label"] == "Member three"  # discovered, not linked
    assert groups["333333333333"]["account_id"] is None
    assert groups["222222222222"]["total"] == "10.0000000001"


def test_costs_by_month_compare_each_month_with_the_one_before(
    client: TestClient, agency: AgencyFixture, ledger: dict[str, Any]
) -> None:
    groups = get(client, agency, group_by="month")["groups"]
    assert [g["key"] for g in groups] == ["2025-01", "2025-02", "2025-03"]
    assert groups[0]["change"] is None
    assert groups[2]["change"]["amount"] == "8.3000000002"


def test_filters_by_account_service_aws_account_and_metric(
    client: TestClient, agency: AgencyFixture, ledger: dict[str, Any]
) -> None:
    only_dev = get(client, agency, account_id=str(ledger["dev"]))
    assert only_dev["totals"][0]["total"] == "10.0000000001"
    # A management account brings its members' costs synced through it.
    prod = get(client, agency, account_id=str(ledger["prod"]), group_by="account")
    assert {g["key"] for g in prod["groups"]} == {"111111111111", "333333333333"}
    s3 = get(client, agency, service=["Amazon S3"])
    assert [g["key"] for g in s3["groups"]] == ["Amazon S3"]
    member = get(client, agency, aws_account_id="333333333333")
    assert member["totals"][0]["total"] == "7.5"
    amortized = get(client, agency, metric="AmortizedCost")
    assert amortized["totals"][0]["total"] == "999"


def test_the_default_range_is_the_last_six_months(
    client: TestClient, agency: AgencyFixture
) -> None:
    r = client.get("/api/costs", headers=agency.headers)
    assert r.status_code == 200
    this_month = month_of(datetime.now(UTC))
    expected = [add_months(this_month, -n).strftime("%Y-%m") for n in range(5, -1, -1)]
    assert r.json()["months"] == expected
    assert r.json()["groups"] == [] and r.json()["totals"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2025-04", "to": "2025-03"},
        {"from": "2020-01", "to": "2025-12"},  # more than 60 months
        {"from": "2025-13"},
        {"to": "March"},
        {"group_by": "region"},
        {"metric": "BlendedCost"},
        {"account_id": "not-a-uuid"},
        {"aws_account_id": "12345"},
        {"service": "bad\x01name"},
    ],
)
def test_invalid_filters_are_422s_that_name_the_problem(
    client: TestClient, agency: AgencyFixture, params: dict[str, str]
) -> None:
    r = client.get("/api/costs", params=params, headers=agency.headers)
    assert r.status_code == 422
    assert r.json()["error"]["message"]


def test_another_agencys_account_in_the_filter_is_not_found(
    client: TestClient,
    agency: AgencyFixture,
    other_agency: AgencyFixture,
    app_conn: Conn,
    ledger: dict[str, Any],
) -> None:
    theirs = make_account(app_conn, other_agency.id, "444444444444")
    seed.add_cost(app_conn, other_agency.id, theirs, "444444444444", JAN, "Amazon EC2", "5")
    r = client.get(
        "/api/costs", params={**RANGE, "account_id": str(theirs)}, headers=agency.headers
    )
    assert r.status_code == 404
    # Their AWS account id as a filter finds nothing of theirs either.
    body = get(client, agency, aws_account_id="444444444444")
    assert body["groups"] == [] and body["totals"] == []


def test_csv_is_served_when_the_client_asks_for_it(
    client: TestClient, agency: AgencyFixture, ledger: dict[str, Any]
) -> None:
    r = client.get(
        "/api/costs",
        params={**RANGE, "group_by": "account"},
        headers={**agency.headers, "Accept": "text/csv"},
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 3 * 3  # three accounts x three months
    prod_march = next(x for x in rows if x["key"] == "111111111111" and x["month"] == "2025-03")
    assert prod_march == {
        "group_by": "account",
        "key": "111111111111",
        "label": "Prod",
        "month": "2025-03",
        "currency": "USD",
        "amount": "126.0000000001",
        "estimated": "true",
    }


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_stay_text(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    account = make_account(app_conn, agency.id, "555555555555", alias="=HYPERLINK(1)")
    seed.add_cost(app_conn, agency.id, account, "555555555555", JAN, "@SUM(A1)", "1")
    r = client.get(
        "/api/costs",
        params={**RANGE, "group_by": "service"},
        headers={**agency.headers, "Accept": "text/csv"},
    )
    assert "'@SUM(A1)" in r.text and "\n@" not in r.text and ",@" not in r.text


# Cells a spreadsheet in some locale would run as a formula (OWASP CSV injection): each must
# come back as the same text behind an apostrophe.
FORMULA_CELLS = [
    "=1+1",
    "+1+1",
    "-1+1",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    " =1+1",
    "   @SUM(A1)",
    ";=1+1",
    " ;=1+1",
    "\u3000=1+1",  # ideographic space
    "\uff1d1+1",  # fullwidth equals sign
    "\uff0b1",
    "\uff20SUM(A1)",
]


def test_every_cell_that_could_start_a_formula_in_any_locale_stays_text(
    client: TestClient, agency: AgencyFixture, app_conn: Conn
) -> None:
    account = make_account(app_conn, agency.id, "555555555555", alias=" =HYPERLINK(1)")
    for service in [*FORMULA_CELLS, "Amazon EC2", "AWS Lambda (1 = 1)"]:
        seed.add_cost(app_conn, agency.id, account, "555555555555", JAN, service, "1")
    r = client.get(
        "/api/costs",
        params={**RANGE, "group_by": "service"},
        headers={**agency.headers, "Accept": "text/csv"},
    )
    assert r.status_code == 200
    cells = {row["key"] for row in csv.DictReader(io.StringIO(r.text, newline=""))}
    for formula in FORMULA_CELLS:
        assert "'" + formula in cells, repr(formula)
        assert formula not in cells, repr(formula)
    # Ordinary text is left alone.
    assert {"Amazon EC2", "AWS Lambda (1 = 1)"} <= cells
    by_account = client.get(
        "/api/costs",
        params={**RANGE, "group_by": "account"},
        headers={**agency.headers, "Accept": "text/csv"},
    )
    labels = {row["label"] for row in csv.DictReader(io.StringIO(by_account.text, newline=""))}
    assert "' =HYPERLINK(1)" in labels


def test_an_accept_header_that_allows_neither_json_nor_csv_is_a_406(
    client: TestClient, agency: AgencyFixture
) -> None:
    r = client.get("/api/costs", headers={**agency.headers, "Accept": "application/xml"})
    assert r.status_code == 406
    assert "text/csv" in r.json()["error"]["message"]


def test_the_per_account_month_totals_follow_every_write_to_cost_rows(
    agency: AgencyFixture, app_conn: Conn, owner_conn: Conn
) -> None:
    """Reports by account or month read cao.cost_account_months; triggers keep it equal to
    cost_rows summed over services, through inserts, upserts, updates, deletes and unlinking."""
    a = make_account(app_conn, agency.id, "111111111111")
    b = make_account(app_conn, agency.id, "222222222222")

    def compare() -> None:
        expected = owner_conn.execute(
            "SELECT account_id, usage_account_id, month, metric, currency, sum(amount),"
            " bool_or(estimated) FROM cao.cost_rows WHERE agency_id = %s"
            " GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
            (agency.id,),
        ).fetchall()
        totals = owner_conn.execute(
            "SELECT account_id, usage_account_id, month, metric, currency, amount, estimated"
            " FROM cao.cost_account_months WHERE agency_id = %s ORDER BY 1, 2, 3, 4, 5",
            (agency.id,),
        ).fetchall()
        assert totals == expected

    for service, amount in (("EC2", "1.5"), ("S3", "2.25"), ("Lambda", "0.0000000001")):
        seed.add_cost(app_conn, agency.id, a, "111111111111", JAN, service, amount)
    seed.add_cost(app_conn, agency.id, b, "333333333333", JAN, "EC2", "7", estimated=True)
    compare()
    with seed.tenant(app_conn, agency.id):
        # A month re-pulled: upsert (insert + update in one statement), then a vanished service.
        app_conn.execute(
            "INSERT INTO cao.cost_rows (agency_id, account_id, usage_account_id, month, service,"
            " metric, amount, currency, estimated) VALUES (%s, %s, '111111111111', %s, 'EC2',"
            " 'UnblendedCost', 10, 'USD', true), (%s, %s, '111111111111', %s, 'RDS',"
            " 'UnblendedCost', 4, 'USD', false) ON CONFLICT (account_id, usage_account_id, month,"
            " service, metric) DO UPDATE SET amount = excluded.amount,"
            " estimated = excluded.estimated",
            (agency.id, a, JAN, agency.id, a, JAN),
        )
        app_conn.execute("DELETE FROM cao.cost_rows WHERE service = 'S3'")
        app_conn.execute("UPDATE cao.cost_rows SET month = %s WHERE service = 'Lambda'", (FEB,))
    compare()
    with seed.tenant(app_conn, agency.id):
        app_conn.execute("DELETE FROM cao.cost_rows WHERE account_id = %s", (b,))
    compare()
    with seed.tenant(app_conn, agency.id):
        app_conn.execute("DELETE FROM cao.accounts WHERE id = %s", (a,))  # unlink: cascades
    compare()
    assert owner_conn.execute(
        "SELECT count(*) FROM cao.cost_account_months WHERE agency_id = %s", (agency.id,)
    ).fetchone() == (0,)
