"""The AWS region names an agency may pick as default CloudTrail regions for its accounts, and
an account as its own.

A static list rather than botocore's endpoint data, so validating a settings change does not load
botocore (cold start). A test keeps it equal to botocore's regions of the aws, aws-us-gov and
aws-cn partitions; when AWS opens a region, botocore's upgrade makes that test fail and this list
gets the new name.
"""

from __future__ import annotations

AWS_REGIONS: frozenset[str] = frozenset(
    {
        # aws
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
        # aws-us-gov
        "us-gov-east-1",
        "us-gov-west-1",
        # aws-cn
        "cn-north-1",
        "cn-northwest-1",
    }
)

MAX_REGIONS = 32  # the CHECK on agencies.default_regions and accounts.regions


def normalize(regions: list[str]) -> list[str]:
    """The regions deduplicated in their given order; ValueError naming any unknown one.

    Raised as ValueError so that, called from a pydantic validator, the 422 names the field.
    """
    seen: list[str] = []
    for position, raw in enumerate(regions):
        region = raw.strip().lower()
        if region not in AWS_REGIONS:
            # The position, not the value: error messages never echo what was sent.
            raise ValueError(
                f"item {position} is not an AWS region code (such as us-east-1 or eu-west-1)"
            )
        if region not in seen:
            seen.append(region)
    if not 1 <= len(seen) <= MAX_REGIONS:
        raise ValueError(f"give between 1 and {MAX_REGIONS} regions")
    return seen
