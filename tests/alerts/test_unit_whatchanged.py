"""What changed (functions/alerts/whatchanged.py): the write rule, the ranking, and the
operation names generated from botocore (regenerated here and compared)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from devstack import gen_operations
from functions.alerts import whatchanged
from functions.alerts.services import CE_SERVICES
from shared.store.alerts import EventGroup

NOW = datetime(2025, 3, 10, tzinfo=UTC)


def group(name: str, count: int, principal: str = "deploy-bot") -> EventGroup:
    return EventGroup(
        f"arn:aws:iam::123456789012:user/{principal}",
        principal,
        name,
        count,
        NOW,
        NOW,
        [],
        ["us-east-1"],
    )


def test_the_checked_in_operations_are_botocore_s() -> None:
    assert gen_operations.TARGET.read_text() == gen_operations.generate()


def test_every_mapped_service_has_its_operations() -> None:
    ops = whatchanged.operations()
    for names in CE_SERVICES.values():
        for name in names:
            assert ops.by_service[name], name
    assert "RunInstances" in ops.by_service["ec2"]
    assert ops.services_defining["RunInstances"] == 1
    assert ops.services_defining["TagResource"] > 10


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("RunInstances", True),
        ("CreateTags", True),
        ("PutBucketPolicy", True),
        ("ModifyDBInstance", True),
        ("StartInstances", True),
        ("UpdateFunctionCode", True),
        ("DescribeInstances", False),
        ("GetObject", False),
        ("ListBuckets", False),
        ("DeleteBucket", False),
        ("TerminateInstances", False),
        ("ConsoleLogin", False),
        ("StartSession", False),
        ("Runbook", False),
        ("Create", False),
    ],
)
def test_the_write_rule(name: str, write: bool) -> None:
    assert whatchanged.is_write(name) is write
    # The SQL pattern agrees on the prefix part (NOT_WRITES are dropped in Python).
    if name not in whatchanged.NOT_WRITES:
        assert (re.match(whatchanged.WRITE_PATTERN, name) is not None) is write


def test_ranking_puts_the_service_s_own_operations_first_and_shared_names_lower() -> None:
    ec2 = "Amazon Elastic Compute Cloud - Compute"
    ranked = whatchanged.rank(
        ec2,
        [
            group("CreateRole", 50, "alice"),
            group("CreateTags", 30),
            group("RunInstances", 14),
            group("DescribeInstances", 90),
            group("CreateLaunchTemplate", 2),
        ],
    )
    assert [(r.group.event_name, r.match) for r in ranked] == [
        ("RunInstances", "service"),
        ("CreateLaunchTemplate", "service"),
        ("CreateTags", "shared"),
        ("CreateRole", "other"),
    ]
    # A service the map does not know ranks everything as other.
    assert {r.match for r in whatchanged.rank("Some New Service", [group("RunInstances", 1)])} == {
        "other"
    }
