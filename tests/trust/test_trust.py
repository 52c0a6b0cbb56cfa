"""The public trust endpoints publish exactly what the security page says, from shared.policy."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from functions.trust import service as trust
from shared import policy
from shared.settings import Settings
from shared.store import snapshots
from tests.support.deps import with_settings

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "security_page_tables.txt"
# The handouts beside the repository (CI's clone has them; elsewhere they may be absent).
PAGE = HERE.parent.parent.parent / "shared" / "seed" / "security-page.txt"


def blocks() -> dict[str, list[str]]:
    """The fixture's blocks (`## name` ... up to the next), verbatim lines of the page."""
    out: dict[str, list[str]] = {}
    name = ""
    for line in FIXTURE.read_text().splitlines():
        if line.startswith("## "):
            name = line[3:]
            out[name] = []
        elif name and not line.startswith("#"):
            out[name].append(line)
    return out


def table(lines: list[str], title: str) -> list[tuple[str, ...]]:
    """The rows (without the header) of the markdown table after the line `title`."""
    start = lines.index(title)
    rows: list[tuple[str, ...]] = []
    for line in lines[start + 1 :]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        rows.append(tuple(cell.strip() for cell in line.strip("|").split("|")))
    return rows[2:]  # skip the header and the |---| line


def bullets(lines: list[str], title: str) -> list[str]:
    start = lines.index(title)
    items = []
    for line in lines[start + 1 :]:
        if not line.startswith("- "):
            break
        items.append(line[2:].lstrip("✗✓ ").strip())
    return items


@pytest.mark.skipif(not PAGE.exists(), reason="the handouts are not beside this clone")
def test_the_fixture_is_still_verbatim_from_the_security_page() -> None:
    page = PAGE.read_text()
    for name, lines in blocks().items():
        if name != "end":
            assert "\n".join(lines) in page, f"block {name} no longer matches the page"


@pytest.mark.parametrize("path", ["/subprocessors", "/api/subprocessors"])
def test_the_published_subprocessors_equal_the_security_pages_tables(
    path: str, client: TestClient
) -> None:
    page = blocks()["subprocessors"]
    response = client.get(path)
    assert response.status_code == 200
    doc = response.json()
    published = [(p["provider"], p["purpose"], p["region"]) for p in doc["subprocessors"]]
    assert published == [row[:3] for row in table(page, "CloudAgencyOps subprocessors")]
    customer = [
        (p["provider"], p["purpose"], p["region"]) for p in doc["customer_controlled_services"]
    ]
    assert customer == [row[:3] for row in table(page, "Customer-controlled services we access")]
    for entry in doc["subprocessors"] + doc["customer_controlled_services"]:
        assert entry["privacy"].startswith("https://")
    assert doc["canonical_url"].endswith("/subprocessors")
    assert doc["change_notice_days"] == 30


def test_the_security_document_publishes_the_policies_the_page_shows(client: TestClient) -> None:
    doc = client.get("/api/security").json()
    page = blocks()
    assert doc["role_policy"] == json.loads("\n".join(page["role-policy"]))
    assert doc["role_policy"] == policy.ROLE_POLICY
    assert doc["trust_policy_template"] == json.loads("\n".join(page["trust-policy"]))
    assert set(doc["trust_policy_placeholders"]) == {
        "REPLACE-WITH-CAO-AWS-ACCOUNT-ID",
        "REPLACE-WITH-YOUR-AGENCY-EXTERNAL-ID",
    }


def test_what_we_store_and_never_store_equal_the_page(client: TestClient) -> None:
    doc = client.get("/api/security").json()
    page = blocks()["stores"]
    assert doc["we_never_store"] == bullets(page, "What we do NOT store")
    on_page = bullets(page, "What we DO store")
    # Every line of the page, verbatim and in order, then our named additions only.
    assert doc["we_store"][: len(on_page)] == on_page
    assert doc["we_store"][len(on_page) :] == [a.text for a in policy.WE_STORE_ADDITIONS]
    assert [a.name for a in policy.WE_STORE_ADDITIONS] == [
        "people",
        "month_to_date_cost_snapshots",
        "clients_budgets_anomalies",
    ]
    people = doc["we_store"][len(on_page)]
    assert all(w in people for w in ("name", "email", "role", "passkey public keys", "session"))


def test_the_month_to_date_snapshots_are_a_named_addition_with_their_retention(
    client: TestClient,
) -> None:
    doc = client.get("/api/security").json()
    additions = {a["name"]: a["text"] for a in doc["we_store_additions"]}
    assert set(additions) == {"people", "month_to_date_cost_snapshots", "clients_budgets_anomalies"}
    text = additions["month_to_date_cost_snapshots"]
    assert "more than one figure per month" in text
    assert f"Kept {snapshots.RETENTION_MONTHS} months." in text
    # The page's own lines are untouched (the test above): the addition is not among them.
    on_page = bullets(blocks()["stores"], "What we DO store")
    assert not any("snapshot" in line for line in doc["we_store"][: len(on_page)])
    assert text in doc["we_store"][len(on_page) :]


def test_the_stored_cloudtrail_fields_are_the_redaction_allowlist(client: TestClient) -> None:
    doc = client.get("/api/security").json()
    assert [f["field"] for f in doc["stored_cloudtrail_fields"]] == [
        f.column for f in policy.STORED_CLOUDTRAIL_FIELDS
    ]
    # The page's list of CloudTrail metadata is the allowlist's published labels, in order.
    store_line = next(s for s in doc["we_store"] if s.startswith("CloudTrail event metadata"))
    listed = re.search(r"\(([^)]*)\)", store_line)
    assert listed is not None
    labels = [f["label"] for f in doc["stored_cloudtrail_fields"] if "(" not in f["label"]]
    assert listed.group(1).split(", ") == labels


def test_vulnerability_reporting_matches_the_page(client: TestClient) -> None:
    report = client.get("/api/security").json()["vulnerability_reporting"]
    assert report["contact"] == "security@cloudagencyops.com"
    assert report["disclosure_window_days"] == 90
    assert report["acknowledge_within_hours"] == 48
    assert report["remediation_timeline_business_days"] == 5
    assert report["bug_bounty"] is False


def parse_security_txt(text: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(": ")
        assert sep and re.fullmatch(r"[A-Za-z-]+", name), f"not a field line: {line!r}"
        fields.setdefault(name.lower(), []).append(value)
    return fields


def test_security_txt_has_the_rfc_9116_fields_and_expires_in_the_future(
    client: TestClient,
) -> None:
    response = client.get("/.well-known/security.txt")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    fields = parse_security_txt(response.text)
    assert fields["contact"] == ["mailto:security@cloudagencyops.com"]
    [expires] = fields["expires"]
    at = datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    now = datetime.now(UTC)
    assert now < at < now + timedelta(days=365)  # RFC 9116: less than a year is recommended
    assert len(fields["expires"]) == 1
    [canonical] = fields["canonical"]
    assert canonical == "https://cloudagencyops.com/.well-known/security.txt"
    [policy_url] = fields["policy"]
    assert policy_url.startswith("https://") and policy_url.endswith("/api/security")


def test_security_txt_expiry_is_computed_from_the_clock() -> None:
    later = datetime(2031, 3, 4, 15, 0, tzinfo=UTC)
    fields = parse_security_txt(trust.security_txt("https://x.example", later))
    assert fields["expires"] == [
        (datetime(2031, 3, 4, tzinfo=UTC) + timedelta(days=180)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ]


def test_trust_documents_need_no_credentials_and_no_configuration(client: TestClient) -> None:
    with with_settings(Settings({})):  # no database, no secrets: a public page must still answer
        for path in ("/subprocessors", "/api/subprocessors", "/api/security"):
            assert client.get(path).status_code == 200, path
        assert client.get("/.well-known/security.txt").status_code == 200
