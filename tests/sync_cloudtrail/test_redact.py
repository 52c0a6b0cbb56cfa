"""Redaction by allowlist: only the published fields survive, each within its bound."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.trailgen import make_events
from functions.sync_cloudtrail.redact import COLUMNS, redact
from shared.policy import STORED_CLOUDTRAIL_FIELDS
from tests.sync_cloudtrail.helpers import NOW, lookup_item

ACCOUNT = "210987654321"
OURS = "arn:aws:sts::210987654321:assumed-role/CloudAgencyOpsReadOnly/cao-sync-0a1b2c"
CANARY = "CANARY-redact-7f3c9e1d"


def _row(identity: dict[str, Any] | None, **record: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventVersion": "1.09",
        "eventID": "0f5b7e0c-1111-4222-8333-444455556666",
        "eventTime": "2025-03-14T11:59:58Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "DescribeInstances",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2",
        "requestParameters": {"secret": "x"},
    }
    if identity is not None:
        base["userIdentity"] = identity
    base.update(record)
    row = redact(lookup_item(base), ACCOUNT, "us-east-1")
    assert row is not None
    return dict(zip(COLUMNS, row, strict=True))


def test_the_row_holds_exactly_the_allowlisted_columns_and_the_vendor_flag() -> None:
    assert (*(f.column for f in STORED_CLOUDTRAIL_FIELDS), "is_vendor") == COLUMNS
    row = _row({"type": "IAMUser", "userName": "alice", "arn": "arn:aws:iam::1:user/alice"})
    assert set(row) == {f.column for f in STORED_CLOUDTRAIL_FIELDS} | {"is_vendor"}
    assert row["event_time"] == datetime(2025, 3, 14, 11, 59, 58, tzinfo=UTC)
    assert row["aws_account_id"] == ACCOUNT and row["region"] == "us-east-1"
    assert row["source_ip"] == "198.51.100.7"


@pytest.mark.parametrize(
    ("identity", "name", "arn", "vendor"),
    [
        (
            {"type": "IAMUser", "userName": "bob", "arn": "arn:aws:iam::210987654321:user/bob"},
            "bob",
            "arn:aws:iam::210987654321:user/bob",
            False,
        ),
        (
            {
                "type": "AssumedRole",
                "principalId": "AROAEXAMPLEROLEID0001:maria@client.example",
                "arn": "arn:aws:sts::210987654321:assumed-role/Admin/maria@client.example",
                "sessionContext": {"sessionIssuer": {"userName": "Admin"}},
            },
            "maria@client.example",
            "arn:aws:sts::210987654321:assumed-role/Admin/maria@client.example",
            False,
        ),
        (
            {
                "type": "AssumedRole",
                "principalId": "AROAEXAMPLEROLEID0002:cao-sync-0a1b2c",
                "arn": OURS,
            },
            "cao-sync-0a1b2c",
            OURS,
            True,
        ),
        (
            # No ARN: the session name is the part of principalId after the role id.
            {"type": "AssumedRole", "principalId": "AROAEXAMPLEROLEID0003:cao-x"},
            "cao-x",
            None,
            True,
        ),
        ({"type": "Root", "arn": "arn:aws:iam::210987654321:root"}, "root", None, False),
        (
            {"type": "AWSService", "invokedBy": "config.amazonaws.com"},
            "config.amazonaws.com",
            None,
            False,
        ),
        (
            {"type": "FederatedUser", "arn": "arn:aws:sts::210987654321:federated-user/carol"},
            "carol",
            "arn:aws:sts::210987654321:federated-user/carol",
            False,
        ),
        # An IAM user named with our prefix is not one of our role sessions.
        (
            {
                "type": "IAMUser",
                "userName": "cao-imposter",
                "arn": "arn:aws:iam::1:user/cao-imposter",
            },
            "cao-imposter",
            "arn:aws:iam::1:user/cao-imposter",
            False,
        ),
        # IAM Identity Center user (bearer token): the Identity Store user id; no ARN exists.
        (
            {
                "type": "IdentityCenterUser",
                "accountId": "210987654321",
                "onBehalfOf": {
                    "userId": "544894e8-80c1-707f-60e3-3ba6510dfac1",
                    "identityStoreArn": "arn:aws:identitystore::210987654321:identitystore/d-1",
                },
                "credentialId": "EXAMPLEVHULjJdTUdPJfofVa1sufHDoj7aYcOYcxFVllWR_Whr1fEXAMPLE",
            },
            "544894e8-80c1-707f-60e3-3ba6510dfac1",
            None,
            False,
        ),
        # Another AWS account using a role of the client: that account; no ARN exists.
        (
            {
                "type": "AWSAccount",
                "principalId": "AIDAJ45Q7YFFAREXAMPLE",
                "accountId": "777788889999",
            },
            "777788889999",
            None,
            False,
        ),
        (None, None, None, False),
    ],
)
def test_principal_name_arn_and_vendor_flag_by_identity_type(
    identity: dict[str, Any] | None, name: str | None, arn: str | None, vendor: bool
) -> None:
    row = _row(identity)
    assert row["principal_name"] == name
    if arn is not None:
        assert row["principal_arn"] == arn
    elif identity is None or identity.get("type") != "Root":
        assert row["principal_arn"] is None
    assert row["is_vendor"] is vendor


def test_identity_center_and_cross_account_principals_keep_nothing_beyond_the_allowlist() -> None:
    center = _row(
        {
            "type": "IdentityCenterUser",
            "accountId": ACCOUNT,
            "onBehalfOf": {"userId": "u-1", "identityStoreArn": f"arn:{CANARY}"},
            "credentialId": CANARY,
        },
        additionalEventData={"UserName": CANARY},
    )
    other = _row({"type": "AWSAccount", "principalId": f"AIDA{CANARY}", "accountId": "1" * 12})
    assert (center["principal_name"], other["principal_name"]) == ("u-1", "1" * 12)
    assert CANARY not in repr(center) + repr(other)


def test_a_service_name_in_the_source_ip_field_is_kept_as_given() -> None:
    row = _row({"type": "AWSService", "invokedBy": "lambda.amazonaws.com"},
               sourceIPAddress="lambda.amazonaws.com")  # fmt: skip
    assert row["source_ip"] == "lambda.amazonaws.com"


def test_every_text_field_is_cut_to_its_bound() -> None:
    bounds = {f.column: f.max_length for f in STORED_CLOUDTRAIL_FIELDS}
    long_name = "u" * 5000
    row = _row(
        {"type": "IAMUser", "userName": long_name, "arn": "arn:" + "a" * 5000},
        eventName="E" * 500,
        sourceIPAddress="s" * 900,
        eventID="i" * 400,
    )
    for column in ("principal_name", "principal_arn", "event_name", "source_ip", "event_id"):
        assert len(row[column]) == bounds[column], column


def test_nul_characters_are_dropped_so_one_event_cannot_fail_a_batch() -> None:
    row = _row({"type": "IAMUser", "userName": "ev\x00il"})
    assert row["principal_name"] == "evil"


def test_an_event_without_id_time_or_name_is_dropped() -> None:
    item = {"CloudTrailEvent": json.dumps({"eventName": "X", "eventTime": "2025-01-01T00:00:00Z"})}
    assert redact(item, ACCOUNT, "us-east-1") is None
    assert redact({"EventId": "a", "EventName": "X", "CloudTrailEvent": "{}"}, ACCOUNT, "r") is None


def test_unparseable_cloudtrail_json_keeps_only_the_lookup_fields() -> None:
    item = {
        "EventId": "e-1",
        "EventName": "ConsoleLogin",
        "EventTime": NOW,
        "CloudTrailEvent": "{not json " + CANARY,
    }
    row = redact(item, ACCOUNT, "us-east-1")
    assert row is not None
    assert row[COLUMNS.index("event_id")] == "e-1"
    assert CANARY not in repr(row)


def test_planted_values_never_survive_redaction_of_a_realistic_trail() -> None:
    events = make_events(ACCOUNT, "us-east-1", NOW - timedelta(hours=2), NOW, 400, seed=5,
                         planted=CANARY)  # fmt: skip
    assert sum(CANARY in json.dumps(e) for e in events) >= 4  # the generator did plant it
    rows = [redact(lookup_item(e), ACCOUNT, "us-east-1") for e in events]
    assert all(r is not None for r in rows)
    assert CANARY not in repr(rows)
    # Nothing else of requestParameters/responseElements/userAgent/access keys either.
    text = repr(rows)
    assert "AKIA" not in text and "ASIA" not in text and "aws-cli" not in text
    names = {r[COLUMNS.index("principal_name")] for r in rows if r}
    assert "root" in names
    assert any(r[COLUMNS.index("is_vendor")] for r in rows if r)
