"""The simulated AWS behaves like AWS where moto does not: proved with plain boto3 clients.

Every client points at `sim.endpoint_url` with explicit credentials; the account a client acts
in follows from its access key, exactly as for production code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import botocore.endpoint
import botocore.exceptions
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack import simaws
from devstack.simaws import SimulatedAws
from devstack.trailgen import make_events

CAO = "123456789012"  # our account: moto's default account
MGMT = "222222222222"  # a client's organization management account
MEMBER = "333333333333"
MEMBER2 = "444444444444"
STANDALONE = "555555555555"
STRANGER = "666666666666"  # someone else's account
EXTERNAL_ID = "cao-ext-5f0c1d2e3a4b5c6d7e8f9a0b1c2d3e4f"

# A minimal stand-in for the product's template (the real one is built elsewhere).
TEMPLATE: dict[str, Any] = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {
        "CaoAccountId": {"Type": "String"},
        "ExternalId": {"Type": "String", "NoEcho": True},
    },
    "Resources": {
        "CaoRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": "CloudAgencyOpsReadOnly",
                "MaxSessionDuration": 3600,
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": {"Fn::Sub": "arn:aws:iam::${CaoAccountId}:root"}},
                            "Action": "sts:AssumeRole",
                            "Condition": {
                                "StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}
                            },
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "CloudAgencyOpsRead",
                        "PolicyDocument": {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Action": [
                                        "ce:GetCostAndUsage",
                                        "cloudtrail:LookupEvents",
                                        "organizations:ListAccounts",
                                    ],
                                    "Resource": "*",
                                }
                            ],
                        },
                    }
                ],
            },
        }
    },
    "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["CaoRole", "Arn"]}}},
}


@dataclass(frozen=True)
class Creds:
    key: str
    secret: str
    token: str | None = None


_SESSION = boto3.session.Session()


def client(
    sim: SimulatedAws,
    service: str,
    creds: Creds | None = None,
    *,
    region: str = "us-east-1",
    attempts: int = 1,
    validate: bool = True,
) -> Any:
    """A plain boto3 client on the simulator; no retries unless asked."""
    creds = creds or Creds("AKIAUNKNOWNKEY000000", "unknown")
    return _SESSION.client(
        service,
        endpoint_url=sim.endpoint_url,
        region_name=region,
        aws_access_key_id=creds.key,
        aws_secret_access_key=creds.secret,
        aws_session_token=creds.token,
        config=Config(
            retries={"mode": "standard", "total_max_attempts": attempts},
            parameter_validation=validate,
            proxies={},
        ),
    )


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response: Any = exc.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


def user_creds(sim: SimulatedAws, account: str, name: str) -> Creds:
    return Creds(*sim.create_user_with_key(account, name))


def assume(sim: SimulatedAws, caller: Creds, role_arn: str, **kwargs: Any) -> Creds:
    answer = client(sim, "sts", caller).assume_role(
        RoleArn=role_arn, RoleSessionName=kwargs.pop("RoleSessionName", "cao-test"), **kwargs
    )
    c = answer["Credentials"]
    return Creds(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def install_role(sim: SimulatedAws, account: str) -> str:
    outputs = sim.install_stack(
        account,
        "cloudagencyops",
        json.dumps(TEMPLATE),
        {"CaoAccountId": CAO, "ExternalId": EXTERNAL_ID},
    )
    return outputs["RoleArn"]


def session_in(sim: SimulatedAws, cao: Creds, account: str) -> Creds:
    """Credentials of our role session in a client account (template installed there)."""
    return assume(sim, cao, install_role(sim, account), ExternalId=EXTERNAL_ID)


@pytest.fixture
def cao(fresh_sim: SimulatedAws) -> Creds:
    """Our own principal `cao-service`, in our account."""
    return user_creds(fresh_sim, CAO, "cao-service")


# ------------------------------------------------------------------------------------------
# AssumeRole
# ------------------------------------------------------------------------------------------


def test_template_role_accepts_only_our_principal_with_the_external_id(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    role_arn = install_role(fresh_sim, MGMT)
    assert role_arn == f"arn:aws:iam::{MGMT}:role/CloudAgencyOpsReadOnly"

    session = assume(fresh_sim, cao, role_arn, ExternalId=EXTERNAL_ID, DurationSeconds=900)
    identity = client(fresh_sim, "sts", session).get_caller_identity()
    assert identity["Account"] == MGMT
    assert identity["Arn"] == f"arn:aws:sts::{MGMT}:assumed-role/CloudAgencyOpsReadOnly/cao-test"

    stranger = user_creds(fresh_sim, STRANGER, "mallory")
    cao_arn = f"arn:aws:iam::{CAO}:user/cao-service"
    refusals = {
        "wrong external id": (cao, {"ExternalId": "cao-ext-wrong"}, cao_arn),
        "no external id": (cao, {}, cao_arn),
        "untrusted principal": (
            stranger,
            {"ExternalId": EXTERNAL_ID},
            f"arn:aws:iam::{STRANGER}:user/mallory",
        ),
    }
    for case, (caller, extra, caller_arn) in refusals.items():
        with pytest.raises(ClientError) as exc:
            assume(fresh_sim, caller, role_arn, **extra)
        assert error_of(exc) == (
            "AccessDenied",
            403,
            f"User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: "
            f"{role_arn}",
        ), case


def test_refusal_is_the_same_whether_the_role_exists_or_not(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    existing = install_role(fresh_sim, MGMT)
    missing = f"arn:aws:iam::{MGMT}:role/NoSuchRole"
    unknown_account = "arn:aws:iam::999999999999:role/CloudAgencyOpsReadOnly"
    answers = []
    for arn in (existing, missing, unknown_account):
        with pytest.raises(ClientError) as exc:
            assume(fresh_sim, cao, arn, ExternalId="cao-ext-wrong")
        code, status, message = error_of(exc)
        answers.append((code, status, message.replace(arn, "<role>")))
    assert len(set(answers)) == 1
    assert answers[0][:2] == ("AccessDenied", 403)


def test_role_without_external_id_condition_accepts_any(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    unsafe = fresh_sim.create_role(
        MGMT,
        "UnsafeRole",
        trust_policy={
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": CAO}, "Action": "sts:AssumeRole"}
            ],
        },
        policy={
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "ce:GetCostAndUsage", "Resource": "*"}],
        },
    )
    for extra in ({}, {"ExternalId": "anything-at-all"}, {"ExternalId": EXTERNAL_ID}):
        assert assume(fresh_sim, cao, unsafe, **extra).key.startswith("ASIA")


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        (f"arn:aws:iam::{CAO}:user/cao-service", True),
        (f"arn:aws:iam::{CAO}:root", True),
        (CAO, True),
        ([f"arn:aws:iam::{STRANGER}:root", f"arn:aws:iam::{CAO}:user/cao-service"], True),
        (f"arn:aws:iam::{CAO}:user/someone-else", False),
        (f"arn:aws:iam::{STRANGER}:root", False),
        (STRANGER, False),
    ],
)
def test_trust_policy_principal_forms(
    fresh_sim: SimulatedAws, cao: Creds, principal: Any, allowed: bool
) -> None:
    arn = fresh_sim.create_role(
        MGMT,
        "Target",
        trust_policy={
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": principal},
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                    "Condition": {"StringEquals": {"sts:ExternalId": ["x-1", EXTERNAL_ID]}},
                }
            ],
        },
    )
    if allowed:
        assume(fresh_sim, cao, arn, ExternalId=EXTERNAL_ID)
    else:
        with pytest.raises(ClientError, match="AccessDenied"):
            assume(fresh_sim, cao, arn, ExternalId=EXTERNAL_ID)


def test_role_chaining_and_explicit_deny(fresh_sim: SimulatedAws, cao: Creds) -> None:
    hop = fresh_sim.create_role(
        CAO,
        "Hop",
        trust_policy={
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": CAO}, "Action": "sts:*"}]
        },
    )
    target = fresh_sim.create_role(
        MGMT,
        "Target",
        trust_policy={
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": hop}, "Action": "sts:AssumeRole"},
                {
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": "sts:AssumeRole",
                    "Condition": {"StringEquals": {"sts:ExternalId": "blocked"}},
                },
            ]
        },
    )
    hop_session = assume(fresh_sim, cao, hop)
    # A role principal matches that role's sessions, not other principals of its account.
    assume(fresh_sim, hop_session, target)
    with pytest.raises(ClientError, match="AccessDenied"):
        assume(fresh_sim, cao, target)
    with pytest.raises(ClientError) as exc:
        assume(fresh_sim, hop_session, target, ExternalId="blocked")
    assert f"User: arn:aws:sts::{CAO}:assumed-role/Hop/cao-test is not" in error_of(exc)[2]


def test_unknown_access_keys_act_as_root_of_our_account(fresh_sim: SimulatedAws) -> None:
    arn = fresh_sim.create_role(
        MGMT,
        "TrustsOurRoot",
        trust_policy={
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{CAO}:root"},
                    "Action": "sts:AssumeRole",
                }
            ]
        },
    )
    assume(fresh_sim, Creds("testing", "testing"), arn)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"DurationSeconds": 899}, "durationSeconds"),
        ({"DurationSeconds": 43201}, "durationSeconds"),
        ({"DurationSeconds": 3601}, "exceeds the MaxSessionDuration"),
        ({"RoleSessionName": "x"}, "roleSessionName"),
        ({"RoleSessionName": "a" * 65}, "roleSessionName"),
        ({"RoleSessionName": "has space"}, "roleSessionName"),
        ({"ExternalId": "x"}, "externalId"),
    ],
)
def test_assume_role_validation(
    fresh_sim: SimulatedAws, cao: Creds, extra: dict[str, Any], fragment: str
) -> None:
    role_arn = install_role(fresh_sim, MGMT)
    sts = client(fresh_sim, "sts", cao, validate=False)
    kwargs = {"RoleArn": role_arn, "RoleSessionName": "cao-ok", "ExternalId": EXTERNAL_ID, **extra}
    with pytest.raises(ClientError) as exc:
        sts.assume_role(**kwargs)
    code, status, message = error_of(exc)
    assert (code, status) == ("ValidationError", 400)
    assert fragment in message
    # The bounds themselves are fine.
    bounds = {"DurationSeconds": 3600, "RoleSessionName": "cao-" + "x" * 60}
    sts.assume_role(**{**kwargs, **bounds, "ExternalId": EXTERNAL_ID})


# ------------------------------------------------------------------------------------------
# CloudTrail LookupEvents
# ------------------------------------------------------------------------------------------

START = datetime(2024, 5, 1, tzinfo=UTC)
END = datetime(2024, 5, 8, tzinfo=UTC)


def lookup_all(trail: Any, **params: Any) -> list[list[dict[str, Any]]]:
    pages = []
    token = None
    while True:
        answer = trail.lookup_events(**params, **({"NextToken": token} if token else {}))
        pages.append(answer["Events"])
        token = answer.get("NextToken")
        if not token:
            return pages


def test_lookup_events_walks_every_event_once_newest_first(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    records = make_events(MGMT, "us-east-1", START, END, 137, seed=1)
    fresh_sim.put_events(MGMT, "us-east-1", records)
    fresh_sim.put_events(MGMT, "eu-west-1", make_events(MGMT, "eu-west-1", START, END, 7, seed=2))
    fresh_sim.put_events(MEMBER, "us-east-1", make_events(MEMBER, "us-east-1", START, END, 9, 3))
    trail = client(fresh_sim, "cloudtrail", session_in(fresh_sim, cao, MGMT))
    fresh_sim.clear_calls()

    pages = lookup_all(trail, MaxResults=50)
    assert [len(p) for p in pages] == [50, 50, 37]
    assert fresh_sim.count_calls("cloudtrail", "LookupEvents", MGMT) == 3
    events = [e for page in pages for e in page]
    expected = sorted(records, key=lambda r: (r["eventTime"], r["eventID"]), reverse=True)
    assert [e["EventId"] for e in events] == [r["eventID"] for r in expected]
    times = [e["EventTime"] for e in events]
    assert times == sorted(times, reverse=True)
    first = events[0]
    assert json.loads(first["CloudTrailEvent"]) == expected[0]
    assert first["EventName"] == expected[0]["eventName"]
    assert first["ReadOnly"] in ("true", "false")

    # Regions and accounts are separate stores; our own account has no events.
    eu = client(
        fresh_sim, "cloudtrail", session_in_existing(fresh_sim, cao, MGMT), region="eu-west-1"
    )
    assert sum(len(p) for p in lookup_all(eu)) == 7
    assert client(fresh_sim, "cloudtrail", cao).lookup_events()["Events"] == []


def session_in_existing(sim: SimulatedAws, cao: Creds, account: str) -> Creds:
    return assume(
        sim, cao, f"arn:aws:iam::{account}:role/CloudAgencyOpsReadOnly", ExternalId=EXTERNAL_ID
    )


def test_lookup_events_token_survives_new_events_and_binds_parameters(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    records = make_events(MGMT, "us-east-1", START, END, 60, seed=4)
    fresh_sim.put_events(MGMT, "us-east-1", records)
    trail = client(fresh_sim, "cloudtrail", session_in(fresh_sim, cao, MGMT))

    first = trail.lookup_events(MaxResults=25)
    # Late-arriving events (newer than everything) must not shift the pages already walked.
    fresh_sim.put_events(
        MGMT, "us-east-1", make_events(MGMT, "us-east-1", END, END + timedelta(hours=1), 5, 5)
    )
    seen = [e["EventId"] for e in first["Events"]]
    token = first["NextToken"]
    while token:
        answer = trail.lookup_events(MaxResults=25, NextToken=token)
        seen += [e["EventId"] for e in answer["Events"]]
        token = answer.get("NextToken")
    assert sorted(seen) == sorted(r["eventID"] for r in records)

    changed: list[dict[str, Any]] = [
        {"StartTime": START},
        {"EndTime": END},
        {"LookupAttributes": [{"AttributeKey": "ReadOnly", "AttributeValue": "true"}]},
    ]
    for params in changed:
        with pytest.raises(ClientError) as exc:
            trail.lookup_events(MaxResults=25, NextToken=first["NextToken"], **params)
        assert error_of(exc)[0] == "InvalidNextTokenException"
    with pytest.raises(ClientError, match="InvalidNextTokenException"):
        trail.lookup_events(NextToken="not-a-token")
    # The same token in another account is not valid either.
    other = client(fresh_sim, "cloudtrail", cao)
    with pytest.raises(ClientError, match="InvalidNextTokenException"):
        other.lookup_events(MaxResults=25, NextToken=first["NextToken"])


def test_lookup_events_filters(fresh_sim: SimulatedAws, cao: Creds) -> None:
    records = make_events(MGMT, "us-east-1", START, END, 120, seed=6)
    fresh_sim.put_events(MGMT, "us-east-1", records)
    trail = client(fresh_sim, "cloudtrail", session_in(fresh_sim, cao, MGMT))

    def ids(**params: Any) -> set[str]:
        return {e["EventId"] for page in lookup_all(trail, **params) for e in page}

    def attr(key: str, value: str) -> dict[str, Any]:
        return {"LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}]}

    # Time bounds are inclusive on both ends.
    middle = sorted(records, key=lambda r: r["eventTime"])[40:80]
    lo, hi = (datetime.fromisoformat(middle[i]["eventTime"]) for i in (0, -1))
    assert ids(StartTime=lo, EndTime=hi) == {
        r["eventID"] for r in records if lo <= datetime.fromisoformat(r["eventTime"]) <= hi
    }
    assert {r["eventID"] for r in middle} <= ids(StartTime=lo, EndTime=hi)

    login = next(r for r in records if r["eventName"] == "ConsoleLogin")
    assert ids(**attr("EventName", "ConsoleLogin")) == {
        r["eventID"] for r in records if r["eventName"] == "ConsoleLogin"
    }
    assert ids(**attr("EventId", login["eventID"])) == {login["eventID"]}
    assert ids(**attr("ReadOnly", "true")) == {r["eventID"] for r in records if r["readOnly"]}
    assert ids(**attr("EventSource", "kms.amazonaws.com")) == {
        r["eventID"] for r in records if r["eventSource"] == "kms.amazonaws.com"
    }
    ours = [
        r for r in records if r["userIdentity"].get("arn", "").split("/")[-1].startswith("cao-")
    ]
    session_name = ours[0]["userIdentity"]["arn"].split("/")[-1]
    assert ids(**attr("Username", session_name)) == {ours[0]["eventID"]}
    key = ours[0]["userIdentity"]["accessKeyId"]
    assert ids(**attr("AccessKeyId", key)) == {ours[0]["eventID"]}
    assert ids(**attr("ResourceType", "AWS::KMS::Key")) == {
        r["eventID"]
        for r in records
        if any(x["type"] == "AWS::KMS::Key" for x in r.get("resources", []))
    }


def test_lookup_events_rejects_bad_parameters(fresh_sim: SimulatedAws, cao: Creds) -> None:
    trail = client(fresh_sim, "cloudtrail", cao, validate=False)
    two = [
        {"AttributeKey": "EventName", "AttributeValue": "A"},
        {"AttributeKey": "EventName", "AttributeValue": "B"},
    ]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"LookupAttributes": two}, "InvalidLookupAttributesException"),
        (
            {"LookupAttributes": [{"AttributeKey": "Color", "AttributeValue": "x"}]},
            "InvalidLookupAttributesException",
        ),
        ({"MaxResults": 51}, "InvalidMaxResultsException"),
        ({"MaxResults": 0}, "InvalidMaxResultsException"),
        ({"StartTime": END, "EndTime": START}, "InvalidTimeRangeException"),
    ]
    for params, code in cases:
        with pytest.raises(ClientError) as exc:
            trail.lookup_events(**params)
        assert error_of(exc)[:2] == (code, 400), params


# ------------------------------------------------------------------------------------------
# Cost Explorer
# ------------------------------------------------------------------------------------------

LEDGER: list[tuple[str, str, str, str, bool]] = [
    # account, month, service, UnblendedCost, estimated
    (MGMT, "2024-01", "Amazon Simple Storage Service", "3.10", False),
    (MGMT, "2024-01", "AWS Key Management Service", "1", False),
    (MGMT, "2024-02", "Amazon Simple Storage Service", "3.40", False),
    (MEMBER, "2024-01", "Amazon Elastic Compute Cloud - Compute", "120.0012345678", False),
    (MEMBER, "2024-01", "AWS Lambda", "0.1", False),
    (MEMBER, "2024-01", "AWS Lambda", "0.2", False),  # same key: adds up exactly to 0.3
    (MEMBER, "2024-02", "Amazon Elastic Compute Cloud - Compute", "118.5", False),
    (MEMBER, "2024-03", "Amazon Elastic Compute Cloud - Compute", "60.25", True),
    (MEMBER, "2024-03", "Amazon Relational Database Service", "40", True),
    (MEMBER2, "2024-02", "Amazon Elastic Compute Cloud - Compute", "12", False),
    (MEMBER2, "2024-03", "Amazon Elastic Compute Cloud - Compute", "13", False),
    (STANDALONE, "2024-01", "Amazon Elastic Compute Cloud - Compute", "7.77", False),
]
Q1 = {"Start": "2024-01-01", "End": "2024-04-01"}


def seed_ledger(sim: SimulatedAws) -> None:
    for account, month, service, amount, estimated in LEDGER:
        sim.put_cost(
            account,
            month,
            service,
            {"UnblendedCost": amount, "AmortizedCost": Decimal(amount) / 2},
            estimated=estimated,
        )


def seed_org(sim: SimulatedAws) -> None:
    sim.create_organization(
        MGMT, [MEMBER, MEMBER2], {MGMT: "client-mgmt", MEMBER: "client-prod", MEMBER2: "client-dev"}
    )


def expected_groups(accounts: set[str]) -> dict[tuple[str, ...], Decimal]:
    totals: defaultdict[tuple[str, ...], Decimal] = defaultdict(Decimal)
    for account, month, service, amount, _ in LEDGER:
        if account in accounts:
            totals[(f"{month}-01", account, service)] += Decimal(amount)
    return dict(totals)


def walk_costs(ce: Any, **params: Any) -> list[dict[str, Any]]:
    pages = []
    token = None
    while True:
        answer = ce.get_cost_and_usage(**params, **({"NextPageToken": token} if token else {}))
        pages.append(answer)
        token = answer.get("NextPageToken")
        if not token:
            return pages


def test_management_account_pages_through_all_members(fresh_sim: SimulatedAws, cao: Creds) -> None:
    seed_org(fresh_sim)
    seed_ledger(fresh_sim)
    fresh_sim.ce_page_size = 4
    ce = client(fresh_sim, "ce", session_in(fresh_sim, cao, MGMT))
    fresh_sim.clear_calls()

    params = {
        "TimePeriod": Q1,
        "Granularity": "MONTHLY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [
            {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
            {"Type": "DIMENSION", "Key": "SERVICE"},
        ],
    }
    pages = walk_costs(ce, **params)
    got: dict[tuple[str, ...], Decimal] = {}
    for page in pages:
        assert page["GroupDefinitions"] == params["GroupBy"]
        for result in page["ResultsByTime"]:
            assert result["Total"] == {}
            for group in result["Groups"]:
                key = (result["TimePeriod"]["Start"], *group["Keys"])
                assert key not in got  # each group exactly once across pages
                metric = group["Metrics"]["UnblendedCost"]
                assert set(group["Metrics"]) == {"UnblendedCost"}
                assert isinstance(metric["Amount"], str)
                assert metric["Unit"] == "USD"
                got[key] = Decimal(metric["Amount"])
    want = expected_groups({MGMT, MEMBER, MEMBER2})
    assert got == want
    assert len(pages) == -(-len(want) // 4)
    assert fresh_sim.count_calls("ce", "GetCostAndUsage", MGMT) == len(pages)
    names = {
        a["Value"]: a["Attributes"]["description"]
        for p in pages
        for a in p["DimensionValueAttributes"]
    }
    assert names[MEMBER] == "client-prod"

    lambda_jan = got[("2024-01-01", MEMBER, "AWS Lambda")]
    assert str(lambda_jan) == "0.3"
    estimated = {
        r["TimePeriod"]["Start"]: r["Estimated"] for p in pages for r in p["ResultsByTime"]
    }
    assert estimated == {"2024-01-01": False, "2024-02-01": False, "2024-03-01": True}


def test_next_page_token_is_bound_to_the_request(fresh_sim: SimulatedAws, cao: Creds) -> None:
    seed_org(fresh_sim)
    seed_ledger(fresh_sim)
    fresh_sim.ce_page_size = 2
    ce = client(fresh_sim, "ce", session_in(fresh_sim, cao, MGMT))
    params: dict[str, Any] = {
        "TimePeriod": Q1,
        "Granularity": "MONTHLY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    token = ce.get_cost_and_usage(**params)["NextPageToken"]
    for changed in (
        {"Metrics": ["AmortizedCost"]},
        {"TimePeriod": {"Start": "2024-01-01", "End": "2024-03-01"}},
        {"GroupBy": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"}]},
    ):
        with pytest.raises(ClientError) as exc:
            ce.get_cost_and_usage(**{**params, **changed}, NextPageToken=token)
        assert error_of(exc)[:2] == ("RequestChangedException", 400)
    with pytest.raises(ClientError) as exc:
        ce.get_cost_and_usage(**params, NextPageToken="garbage")
    assert error_of(exc)[0] == "InvalidNextTokenException"
    # The unchanged request continues fine.
    assert ce.get_cost_and_usage(**params, NextPageToken=token)["ResultsByTime"]


def test_a_next_page_token_expires_and_is_refused_to_another_account(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    seed_org(fresh_sim)
    seed_ledger(fresh_sim)
    fresh_sim.ce_page_size = 2
    now = [datetime(2024, 5, 9, tzinfo=UTC)]
    fresh_sim.clock = lambda: now[0]
    params: dict[str, Any] = {
        "TimePeriod": Q1,
        "Granularity": "MONTHLY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    mine = client(fresh_sim, "ce", session_in(fresh_sim, cao, MEMBER))
    token = mine.get_cost_and_usage(**params)["NextPageToken"]

    # Another account sending the same request with this account's token.
    other = client(fresh_sim, "ce", session_in(fresh_sim, cao, MEMBER2))
    with pytest.raises(ClientError) as exc:
        other.get_cost_and_usage(**params, NextPageToken=token)
    assert error_of(exc)[:2] == ("InvalidNextTokenException", 400)

    now[0] += timedelta(seconds=fresh_sim.ce_token_ttl_s)
    assert mine.get_cost_and_usage(**params, NextPageToken=token)["ResultsByTime"]  # still valid
    now[0] += timedelta(seconds=1)
    with pytest.raises(ClientError) as exc:
        mine.get_cost_and_usage(**params, NextPageToken=token)
    assert error_of(exc)[:2] == ("InvalidNextTokenException", 400)


def test_a_fault_can_start_after_some_calls(fresh_sim: SimulatedAws, cao: Creds) -> None:
    seed_ledger(fresh_sim)
    ce = client(fresh_sim, "ce", session_in(fresh_sim, cao, MEMBER))
    fresh_sim.faults.add("ce", "GetCostAndUsage", "DataUnavailableException", after=2)
    params = {"TimePeriod": Q1, "Granularity": "MONTHLY", "Metrics": ["UnblendedCost"]}
    ce.get_cost_and_usage(**params)
    ce.get_cost_and_usage(**params)
    with pytest.raises(ClientError) as exc:
        ce.get_cost_and_usage(**params)
    assert error_of(exc)[0] == "DataUnavailableException"
    assert ce.get_cost_and_usage(**params)["ResultsByTime"]
    assert not fresh_sim.faults.pending()


def test_member_and_standalone_accounts_see_only_themselves(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    seed_org(fresh_sim)
    seed_ledger(fresh_sim)
    params = {
        "TimePeriod": Q1,
        "Granularity": "MONTHLY",
        "Metrics": ["UnblendedCost", "AmortizedCost"],
        "GroupBy": [
            {"Type": "DIMENSION", "Key": "SERVICE"},
            {"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
        ],
    }
    for account in (MEMBER2, STANDALONE):
        ce = client(fresh_sim, "ce", session_in(fresh_sim, cao, account))
        pages = walk_costs(ce, **params)
        keys = {tuple(g["Keys"]) for p in pages for r in p["ResultsByTime"] for g in r["Groups"]}
        assert {k[1] for k in keys} == {account}
        assert {(m, a, s) for (m, a, s) in expected_groups({account})} == {
            (r["TimePeriod"]["Start"], g["Keys"][1], g["Keys"][0])
            for p in pages
            for r in p["ResultsByTime"]
            for g in r["Groups"]
        }
        for p in pages:
            for r in p["ResultsByTime"]:
                assert r["Estimated"] is False
                for g in r["Groups"]:
                    unblended = Decimal(g["Metrics"]["UnblendedCost"]["Amount"])
                    assert Decimal(g["Metrics"]["AmortizedCost"]["Amount"]) == unblended / 2


def test_totals_without_group_by_and_partial_periods(fresh_sim: SimulatedAws, cao: Creds) -> None:
    seed_ledger(fresh_sim)
    ce = client(fresh_sim, "ce", session_in(fresh_sim, cao, MEMBER))
    answer = ce.get_cost_and_usage(
        TimePeriod={"Start": "2024-01-15", "End": "2024-03-10"},
        Granularity="MONTHLY",
        Metrics=["UnblendedCost"],
    )
    assert "NextPageToken" not in answer
    assert [
        (r["TimePeriod"], r["Total"]["UnblendedCost"]["Amount"], r["Groups"])
        for r in answer["ResultsByTime"]
    ] == [
        ({"Start": "2024-01-15", "End": "2024-02-01"}, "120.3012345678", []),
        ({"Start": "2024-02-01", "End": "2024-03-01"}, "118.5", []),
        ({"Start": "2024-03-01", "End": "2024-03-10"}, "100.25", []),
    ]
    filtered = ce.get_cost_and_usage(
        TimePeriod=Q1,
        Granularity="MONTHLY",
        Metrics=["UnblendedCost"],
        Filter={"Not": {"Dimensions": {"Key": "SERVICE", "Values": ["AWS Lambda"]}}},
    )
    assert filtered["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"] == "120.0012345678"


def test_cost_explorer_errors(fresh_sim: SimulatedAws, cao: Creds) -> None:
    session = session_in(fresh_sim, cao, STANDALONE)
    ce = client(fresh_sim, "ce", session)
    base: dict[str, Any] = {
        "TimePeriod": Q1,
        "Granularity": "MONTHLY",
        "Metrics": ["UnblendedCost"],
    }
    for changed in (
        {"Granularity": "DAILY"},
        {"TimePeriod": {"Start": "2024-03-01", "End": "2024-03-01"}},
        {"Metrics": ["Bananas"]},
        {
            "GroupBy": [
                {"Type": "DIMENSION", "Key": k} for k in ("SERVICE", "LINKED_ACCOUNT", "REGION")
            ]
        },
        {"GroupBy": [{"Type": "TAG", "Key": "team"}]},
    ):
        with pytest.raises(ClientError) as exc:
            ce.get_cost_and_usage(**{**base, **changed})
        assert error_of(exc)[:2] == ("ValidationException", 400), changed

    fresh_sim.disable_cost_explorer(STANDALONE)
    with pytest.raises(ClientError) as exc:
        ce.get_cost_and_usage(**base)
    assert error_of(exc) == (
        "AccessDeniedException",
        400,
        "User not enabled for cost explorer access",
    )
    # Only that account: ours is unaffected.
    client(fresh_sim, "ce", cao).get_cost_and_usage(**base)


CE_TODAY = datetime(2024, 4, 10, 12, 0, tzinfo=UTC)  # "today" of the Cost Explorer date tests


@pytest.mark.parametrize(
    ("period", "history"),
    [
        ({"Start": "2024-04-11", "End": "2024-04-12"}, 14),  # starts after today (2024-04-10)
        ({"Start": "2024-04-01", "End": "2024-05-02"}, 14),  # ends past next month's first day
        ({"Start": "2023-02-01", "End": "2024-04-11"}, 14),  # 15 months: beyond the default 14
        ({"Start": "2021-02-01", "End": "2024-04-11"}, 38),  # 39 months: beyond multi-year
    ],
)
def test_cost_explorer_refuses_dates_outside_what_aws_keeps(
    fresh_sim: SimulatedAws, cao: Creds, period: dict[str, str], history: int
) -> None:
    fresh_sim.clock = lambda: CE_TODAY
    fresh_sim.ce_history_months = history
    ce = client(fresh_sim, "ce", session_in(fresh_sim, cao, STANDALONE))
    with pytest.raises(ClientError) as exc:
        ce.get_cost_and_usage(TimePeriod=period, Granularity="MONTHLY", Metrics=["UnblendedCost"])
    assert error_of(exc)[:2] == ("ValidationException", 400)


def test_cost_explorer_answers_its_whole_history_up_to_next_months_first_day(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    fresh_sim.clock = lambda: CE_TODAY
    ce = client(fresh_sim, "ce", session_in(fresh_sim, cao, STANDALONE))
    for start, history in (("2023-03-01", 14), ("2021-03-01", 38)):
        fresh_sim.ce_history_months = history
        answer = ce.get_cost_and_usage(
            TimePeriod={"Start": start, "End": "2024-05-01"},
            Granularity="MONTHLY",
            Metrics=["UnblendedCost"],
        )
        assert len(answer["ResultsByTime"]) == history


def test_an_empty_current_month_is_estimated(fresh_sim: SimulatedAws, cao: Creds) -> None:
    fresh_sim.clock = lambda: CE_TODAY
    seed_ledger(fresh_sim)  # STANDALONE has costs in January only
    ce = client(fresh_sim, "ce", session_in(fresh_sim, cao, STANDALONE))
    answer = ce.get_cost_and_usage(
        TimePeriod={"Start": "2024-02-01", "End": "2024-04-11"},
        Granularity="MONTHLY",
        Metrics=["UnblendedCost"],
        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}],
    )
    flags = {
        r["TimePeriod"]["Start"]: (r["Estimated"], r["Groups"]) for r in answer["ResultsByTime"]
    }
    assert flags == {
        "2024-02-01": (False, []),
        "2024-03-01": (False, []),
        "2024-04-01": (True, []),  # the current month: not final, whatever its costs so far
    }


@pytest.mark.parametrize("page_size", [50, 500])
def test_the_page_size_is_set_per_test(fresh_sim: SimulatedAws, cao: Creds, page_size: int) -> None:
    fresh_sim.ce_page_size = page_size
    for n in range(120):
        fresh_sim.put_cost(STANDALONE, "2024-03", f"Service {n:03d}", {"UnblendedCost": "1"})
    ce = client(fresh_sim, "ce", session_in(fresh_sim, cao, STANDALONE))
    pages = walk_costs(
        ce,
        TimePeriod=Q1,
        Granularity="MONTHLY",
        Metrics=["UnblendedCost"],
        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}],
    )
    sizes = [sum(len(r["Groups"]) for r in p["ResultsByTime"]) for p in pages]
    assert sizes == ([50, 50, 20] if page_size == 50 else [120])


def test_put_cost_refuses_floats_and_bad_months(fresh_sim: SimulatedAws) -> None:
    with pytest.raises(TypeError):
        fresh_sim.put_cost(MGMT, "2024-01", "EC2", {"UnblendedCost": 1.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="YYYY-MM"):
        fresh_sim.put_cost(MGMT, "2024-13", "EC2", {"UnblendedCost": "1"})
    with pytest.raises(ValueError, match="metric"):
        fresh_sim.put_cost(MGMT, "2024-01", "EC2", {"Unblended": "1"})


# ------------------------------------------------------------------------------------------
# Organizations
# ------------------------------------------------------------------------------------------


def test_list_accounts_only_for_management_or_delegated_admin(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    seed_org(fresh_sim)
    mgmt = client(fresh_sim, "organizations", session_in(fresh_sim, cao, MGMT))
    listed = {a["Id"]: a["Name"] for a in mgmt.list_accounts()["Accounts"]}
    assert listed == {MGMT: "client-mgmt", MEMBER: "client-prod", MEMBER2: "client-dev"}

    member = client(fresh_sim, "organizations", session_in(fresh_sim, cao, MEMBER))
    with pytest.raises(ClientError) as exc:
        member.list_accounts()
    assert error_of(exc)[:2] == ("AccessDeniedException", 400)

    alone = client(fresh_sim, "organizations", session_in(fresh_sim, cao, STANDALONE))
    with pytest.raises(ClientError) as exc:
        alone.list_accounts()
    assert error_of(exc)[:2] == ("AWSOrganizationsNotInUseException", 400)

    fresh_sim.register_delegated_admin(MGMT, MEMBER2)
    delegated = client(fresh_sim, "organizations", session_in(fresh_sim, cao, MEMBER2))
    assert {a["Id"] for a in delegated.list_accounts()["Accounts"]} == set(listed)
    # moto's own pagination still applies.
    first = mgmt.list_accounts(MaxResults=2)
    assert len(first["Accounts"]) == 2 and first["NextToken"]
    assert len(mgmt.list_accounts(MaxResults=20)["Accounts"]) == 3
    for refused in (21, 100):  # botocore itself refuses < 1; AWS refuses > 20
        with pytest.raises(ClientError) as exc:
            mgmt.list_accounts(MaxResults=refused)
        assert error_of(exc)[:2] == ("InvalidInputException", 400), refused


# ------------------------------------------------------------------------------------------
# Faults, latency, call log, reset
# ------------------------------------------------------------------------------------------


def test_faults_are_answered_by_the_server_and_consumed(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    seed_ledger(fresh_sim)
    session = session_in(fresh_sim, cao, MEMBER)
    ce = client(fresh_sim, "ce", session)
    params: dict[str, Any] = {
        "TimePeriod": Q1,
        "Granularity": "MONTHLY",
        "Metrics": ["UnblendedCost"],
    }
    fresh_sim.faults.add(
        "ce", "GetCostAndUsage", "LimitExceededException", times=2, message="slow down"
    )
    fresh_sim.faults.add("ce", "GetCostAndUsage", "LimitExceededException", account_id=STANDALONE)
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            ce.get_cost_and_usage(**params)
        assert error_of(exc) == ("LimitExceededException", 400, "slow down")
    assert ce.get_cost_and_usage(**params)["ResultsByTime"]
    # The fault scoped to another account is still pending.
    assert [(f.account_id, f.remaining) for f in fresh_sim.faults.pending()] == [(STANDALONE, 1)]

    sts = client(fresh_sim, "sts", cao)
    fresh_sim.faults.add("sts", "GetCallerIdentity", "ExpiredTokenException", message="expired")
    fresh_sim.faults.add("sts", "AssumeRole", "AccessDenied", status=403)
    with pytest.raises(ClientError) as exc:
        sts.get_caller_identity()
    assert error_of(exc) == ("ExpiredTokenException", 400, "expired")
    with pytest.raises(ClientError) as exc:
        sts.assume_role(
            RoleArn=f"arn:aws:iam::{MEMBER}:role/CloudAgencyOpsReadOnly", RoleSessionName="cao-x"
        )
    assert error_of(exc)[:2] == ("AccessDenied", 403)
    fresh_sim.faults.clear()
    assert fresh_sim.faults.pending() == []


def test_botocore_retries_server_faults(
    fresh_sim: SimulatedAws, cao: Creds, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore sleeps between attempts through botocore.endpoint's `time`; skip the waits.
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=lambda _s: None))
    trail = client(fresh_sim, "cloudtrail", cao, attempts=3)
    fresh_sim.faults.add(
        "cloudtrail", "LookupEvents", "ThrottlingException", message="Rate exceeded"
    )
    fresh_sim.faults.add("cloudtrail", "LookupEvents", "InternalFailure", status=500)
    fresh_sim.clear_calls()
    answer = trail.lookup_events()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 2
    assert fresh_sim.count_calls("cloudtrail", "LookupEvents") == 3


class _Ticks:
    """A clock that only moves when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_lookup_events_throttles_past_2_requests_per_second_per_account_and_region(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    ticks = _Ticks()
    fresh_sim.lookup_events_rate, fresh_sim.monotonic = 2.0, ticks
    try:
        mgmt = session_in(fresh_sim, cao, MGMT)
        us = client(fresh_sim, "cloudtrail", mgmt)
        eu = client(fresh_sim, "cloudtrail", mgmt, region="eu-west-1")
        other = client(fresh_sim, "cloudtrail", session_in(fresh_sim, cao, MEMBER))
        us.lookup_events()
        us.lookup_events()
        with pytest.raises(ClientError) as exc:
            us.lookup_events()  # a third within the same second
        assert error_of(exc)[:2] == ("ThrottlingException", 400)
        eu.lookup_events()  # another region, another quota
        other.lookup_events()  # another account, another quota
        ticks.t += 0.5
        with pytest.raises(ClientError):
            us.lookup_events()  # still 2 in the last second: a throttled one does not count
        ticks.t += 0.51
        us.lookup_events()  # the first two have left the window
        us.lookup_events()
        with pytest.raises(ClientError):
            us.lookup_events()
        assert [c.at for c in fresh_sim.throttled] == [1000.0, 1000.5, 1001.01]
        assert len(fresh_sim.throttled) == 3
    finally:
        fresh_sim.lookup_events_rate, fresh_sim.monotonic = None, time.monotonic


def test_a_stall_holds_the_answer_past_the_read_timeout(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    sts = _SESSION.client(
        "sts",
        endpoint_url=fresh_sim.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="AKIAUNKNOWNKEY000000",
        aws_secret_access_key="unknown",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=0.3, proxies={}),
    )
    fresh_sim.faults.add_stall("sts", "GetCallerIdentity", 5.0)
    began = time.monotonic()
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        sts.get_caller_identity()
    assert time.monotonic() - began < 2.0
    fresh_sim.release_stalls()
    assert sts.get_caller_identity()["Account"] == CAO  # used up: answered at once


def test_latency_is_added_per_operation(fresh_sim: SimulatedAws, cao: Creds) -> None:
    sts = client(fresh_sim, "sts", cao)
    fresh_sim.latency[("sts", "GetCallerIdentity")] = 0.15
    began = time.perf_counter()
    sts.get_caller_identity()
    assert time.perf_counter() - began >= 0.15


def test_call_log_records_requests_but_not_seeding(fresh_sim: SimulatedAws, cao: Creds) -> None:
    fresh_sim.clear_calls()
    session = session_in(fresh_sim, cao, MGMT)  # seeding (stack) + one AssumeRole
    client(fresh_sim, "sts", session).get_caller_identity()
    calls = fresh_sim.calls
    assert [(c.service, c.operation, c.account_id) for c in calls] == [
        ("sts", "AssumeRole", CAO),
        ("sts", "GetCallerIdentity", MGMT),
    ]
    assert calls[0].params["RoleArn"] == f"arn:aws:iam::{MGMT}:role/CloudAgencyOpsReadOnly"
    assert calls[0].params["ExternalId"] == EXTERNAL_ID
    assert calls[0].region == "us-east-1"


def test_reset_clears_moto_and_simulator_state(fresh_sim: SimulatedAws, cao: Creds) -> None:
    seed_org(fresh_sim)
    seed_ledger(fresh_sim)
    fresh_sim.put_events(MGMT, "us-east-1", make_events(MGMT, "us-east-1", START, END, 5, 1))
    sts = client(fresh_sim, "sts", cao)
    assert sts.get_caller_identity()["Arn"] == f"arn:aws:iam::{CAO}:user/cao-service"
    fresh_sim.faults.add("sts", "GetCallerIdentity", "ThrottlingException")
    fresh_sim.reset()
    assert fresh_sim.calls == [] and fresh_sim.faults.pending() == []
    assert fresh_sim.event_count(MGMT, "us-east-1") == 0
    # The user (and its key) is gone: the key is now unknown, acting in moto's default account.
    identity = sts.get_caller_identity()
    assert identity["Account"] == CAO and not identity["Arn"].endswith("user/cao-service")
    # The organization is gone too, members included, so it can be created again.
    seed_org(fresh_sim)


def test_put_events_refuses_duplicates(fresh_sim: SimulatedAws) -> None:
    records = make_events(MGMT, "us-east-1", START, END, 3, 1)
    fresh_sim.put_events(MGMT, "us-east-1", records)
    with pytest.raises(ValueError, match="duplicate"):
        fresh_sim.put_events(MGMT, "us-east-1", records[:1])
    assert fresh_sim.event_count(MGMT, "us-east-1") == 3


def test_requests_outside_the_simulator_are_left_to_moto(sim: SimulatedAws) -> None:
    """moto's in-process mock (another test's tool) keeps its own behaviour while we run."""
    from moto import mock_aws  # noqa: PLC0415 - only this test uses the in-process mock

    assert simaws.patch_installed()
    with mock_aws():
        sts = boto3.client("sts", region_name="us-east-1")
        # Plain moto: any role, no trust check.
        sts.assume_role(RoleArn=f"arn:aws:iam::{MGMT}:role/Nope", RoleSessionName="x-1")
    assert simaws.patch_installed()


def test_start_stop_twice_in_a_fresh_process() -> None:
    """Starting, stopping and starting again works, and stop restores moto's call_action."""
    script = """
import boto3
from moto.core.responses import BaseResponse
from devstack.simaws import SimulatedAws, patch_installed

original = BaseResponse.call_action
for _ in range(2):
    sim = SimulatedAws()
    with sim:
        assert patch_installed()
        sts = boto3.client("sts", endpoint_url=sim.endpoint_url, region_name="us-east-1",
                           aws_access_key_id="k", aws_secret_access_key="s")
        try:
            sts.assume_role(RoleArn="arn:aws:iam::222222222222:role/Nope", RoleSessionName="x-1")
        except sts.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDenied"
        else:
            raise AssertionError("assume of a missing role succeeded")
    assert not patch_installed() and BaseResponse.call_action is original
"""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "AWS_CONFIG_FILE": "/dev/null"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # no prints
    assert "POST /" not in result.stderr  # no werkzeug request log lines


# ------------------------------------------------------------------------------------------
# Trust-policy evaluation details (pure functions)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "external_id", "allowed"),
    [
        ({"StringEquals": {"sts:ExternalId": "abc-1"}}, "abc-1", True),
        ({"StringEquals": {"sts:externalid": "abc-1"}}, "ABC-1", False),
        ({"StringLike": {"sts:ExternalId": "abc-*"}}, "abc-zz", True),
        ({"StringLike": {"sts:ExternalId": "abc-?"}}, "abc-zz", False),
        ({"StringEquals": {"sts:ExternalId": "abc-1"}}, None, False),
        # Negated operators hold when the key is absent (IAM: "the condition returns true").
        ({"StringNotLike": {"sts:ExternalId": "probe-*"}}, None, True),
        ({"StringNotLike": {"sts:ExternalId": "probe-*"}}, "probe-1", False),
        ({"StringNotLike": {"sts:ExternalId": "probe-*"}}, "abc-1", True),
        ({"StringNotEquals": {"sts:ExternalId": "abc-1"}}, "abc-1", False),
        ({"StringNotEquals": {"sts:ExternalId": "abc-1"}}, None, True),
        ({"Null": {"sts:ExternalId": "false"}}, None, False),
        ({"Null": {"sts:ExternalId": "false"}}, "abc-1", True),
        ({"Null": {"sts:ExternalId": "true"}}, None, True),
        (
            {"StringNotLike": {"sts:ExternalId": "probe-*"}, "Null": {"sts:ExternalId": "false"}},
            None,
            False,
        ),
        # Conditions the simulator does not evaluate fail closed.
        ({"Bool": {"aws:MultiFactorAuthPresent": "true"}}, "abc-1", False),
        ({"StringEquals": {"aws:PrincipalOrgID": "o-123"}}, "abc-1", False),
        ({"Null": {"sts:ExternalId": "maybe"}}, "abc-1", False),
    ],
)
def test_trust_conditions(
    condition: dict[str, Any], external_id: str | None, allowed: bool
) -> None:
    caller = simaws._Caller(arn=f"arn:aws:iam::{CAO}:user/cao-service", account_id=CAO)
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": CAO},
                "Action": "sts:AssumeRole",
                "Condition": condition,
            }
        ]
    }
    assert simaws._trust_allows(json.dumps(policy), caller, external_id) is allowed


# ------------------------------------------------------------------------------------------
# The event generator
# ------------------------------------------------------------------------------------------


def test_trailgen_is_deterministic_unique_and_in_window() -> None:
    a = make_events(MGMT, "us-east-1", START, END, 300, seed=11, planted="sk_live_PLANTED")
    assert a == make_events(MGMT, "us-east-1", START, END, 300, seed=11, planted="sk_live_PLANTED")
    assert a != make_events(MGMT, "us-east-1", START, END, 300, seed=12, planted="sk_live_PLANTED")
    assert len({e["eventID"] for e in a}) == 300
    for event in a:
        when = datetime.fromisoformat(event["eventTime"])
        assert START <= when < END
        assert event["awsRegion"] == "us-east-1"
        assert event["recipientAccountId"] == MGMT
        for name in ("eventVersion", "userIdentity", "eventSource", "eventName", "sourceIPAddress"):
            assert name in event


def test_trailgen_mix_is_realistic() -> None:
    events = make_events(MGMT, "us-east-1", START, END, 400, seed=3, planted="sk_live_PLANTED")
    kinds = Counter(e["userIdentity"]["type"] for e in events)
    assert {"AssumedRole", "IAMUser", "Root", "AWSService"} <= set(kinds)
    assert all(
        "sessionIssuer" in e["userIdentity"]["sessionContext"]
        for e in events
        if e["userIdentity"]["type"] == "AssumedRole"
    )
    services = [e for e in events if e["userIdentity"]["type"] == "AWSService"]
    assert all(e["sourceIPAddress"].endswith(".amazonaws.com") for e in services)
    assert any(
        e["eventName"] == "ConsoleLogin" and e["eventSource"] == "signin.amazonaws.com"
        for e in events
    )
    assert any("errorCode" in e for e in events)
    ours = [e for e in events if e["userIdentity"].get("arn", "").split("/")[-1].startswith("cao-")]
    assert ours
    for field in ("requestParameters", "responseElements", "userAgent", "additionalEventData"):
        assert any("sk_live_PLANTED" in json.dumps(e.get(field)) for e in events), field

    clean = make_events(MGMT, "us-east-1", START, END, 400, seed=3)
    assert "sk_live_PLANTED" not in json.dumps(clean)
    elsewhere = make_events(MGMT, "eu-west-1", START, END, 400, seed=3, our_session_prefix="zz-")
    global_sources = {"signin.amazonaws.com", "iam.amazonaws.com", "sts.amazonaws.com"}
    assert not {e["eventSource"] for e in elsewhere} & global_sources
    assert any(e["userIdentity"].get("arn", "").split("/")[-1].startswith("zz-") for e in elsewhere)


def test_trailgen_small_batches_still_have_our_sessions_and_leaks() -> None:
    events = make_events(
        MGMT, "eu-west-1", START, START + timedelta(minutes=5), 6, 0, planted="P-1"
    )
    assert len(events) == 6
    assert sum("P-1" in json.dumps(e) for e in events) >= 4
    with pytest.raises(ValueError, match="timezone"):
        make_events(MGMT, "eu-west-1", START.replace(tzinfo=None), END, 1, 0)


# ---- CloudTrail time: delivery delay, 90-day horizon, token lifetime, interruptions --------


def lookup_ids(trail: Any, **params: Any) -> list[str]:
    return [e["EventId"] for page in lookup_all(trail, **params) for e in page]


def test_lookup_events_shows_an_event_only_once_delivered(
    fresh_sim: SimulatedAws, cao: Creds
) -> None:
    now = [START + timedelta(hours=1)]
    fresh_sim.clock = lambda: now[0]
    fresh_sim.delivery_delay = lambda record: 600.0 if record["eventID"].endswith("late") else 0
    record = make_events(MGMT, "us-east-1", START, START + timedelta(minutes=50), 2, seed=9)
    record[1]["eventID"] = record[1]["eventID"] + "-late"
    record[1]["eventTime"] = (START + timedelta(minutes=55)).isoformat().replace("+00:00", "Z")
    fresh_sim.put_events(MGMT, "us-east-1", record)
    trail = client(fresh_sim, "cloudtrail", session_in(fresh_sim, cao, MGMT))

    assert lookup_ids(trail) == [record[0]["eventID"]]  # 55 min + 10 min delivery > 1 h
    now[0] += timedelta(minutes=5)
    assert lookup_ids(trail) == [record[1]["eventID"], record[0]["eventID"]]


def test_delivery_delays_are_mostly_short_some_late_and_repeatable() -> None:
    delay = simaws.delivery_delays(3600, seed=1)
    records = [{"eventID": f"e{i}"} for i in range(2000)]
    drawn = [delay(r) for r in records]
    assert drawn == [delay(r) for r in records]
    assert all(0 <= d <= 3600 for d in drawn)
    assert 0.85 <= sum(d <= 300 for d in drawn) / len(drawn) <= 0.97
    assert max(drawn) > 3000


def test_lookup_events_keeps_90_days(fresh_sim: SimulatedAws, cao: Creds) -> None:
    fresh_sim.put_events(MGMT, "us-east-1", make_events(MGMT, "us-east-1", START, END, 40, 10))
    trail = client(fresh_sim, "cloudtrail", session_in(fresh_sim, cao, MGMT))
    fresh_sim.clock = lambda: START + timedelta(days=90, hours=36)  # the first 1.5 days gone
    seen = lookup_ids(trail, StartTime=START - timedelta(days=1))
    oldest = START + timedelta(hours=36)
    expected = {
        r["eventID"]
        for r in make_events(MGMT, "us-east-1", START, END, 40, 10)
        if datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00")) >= oldest
    }
    assert set(seen) == expected and 0 < len(expected) < 40


def test_lookup_events_tokens_expire(fresh_sim: SimulatedAws, cao: Creds) -> None:
    now = [END]
    fresh_sim.clock = lambda: now[0]
    fresh_sim.put_events(MGMT, "us-east-1", make_events(MGMT, "us-east-1", START, END, 60, 11))
    trail = client(fresh_sim, "cloudtrail", session_in(fresh_sim, cao, MGMT))
    token = trail.lookup_events(MaxResults=25)["NextToken"]
    now[0] += timedelta(seconds=simaws.LOOKUP_TOKEN_TTL_S - 1)
    trail.lookup_events(MaxResults=25, NextToken=token)
    now[0] += timedelta(seconds=2)
    with pytest.raises(ClientError, match="InvalidNextTokenException"):
        trail.lookup_events(MaxResults=25, NextToken=token)


@pytest.mark.parametrize(
    ("throttle", "code", "status"),
    [(True, "ThrottlingException", 400), (False, "InternalFailure", 500)],
)
def test_interrupt_lookups_fails_the_calls_after_some_pass(
    fresh_sim: SimulatedAws, cao: Creds, throttle: bool, code: str, status: int
) -> None:
    fresh_sim.put_events(MGMT, "us-east-1", make_events(MGMT, "us-east-1", START, END, 60, 12))
    trail = client(fresh_sim, "cloudtrail", session_in(fresh_sim, cao, MGMT))
    fresh_sim.interrupt_lookups(MGMT, after=2, throttle=throttle, times=1)
    trail.lookup_events(MaxResults=5)
    trail.lookup_events(MaxResults=5)
    with pytest.raises(ClientError) as exc:
        trail.lookup_events(MaxResults=5)
    assert error_of(exc)[:2] == (code, status)
    trail.lookup_events(MaxResults=5)  # used up
