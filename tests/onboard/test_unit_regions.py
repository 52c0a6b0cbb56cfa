"""The AWS region vocabulary: every region botocore knows, normalised, unknown ones refused."""

from __future__ import annotations

import botocore.session
import pytest

from functions.onboard import regions


def test_the_region_list_is_every_region_botocore_knows() -> None:
    session = botocore.session.get_session()
    known = {
        region
        for partition in ("aws", "aws-us-gov", "aws-cn")
        for region in session.get_available_regions("ec2", partition_name=partition)
    }
    assert known == regions.AWS_REGIONS


def test_regions_are_normalised_and_unknown_ones_refused_without_echo() -> None:
    assert regions.normalize([" EU-West-1", "us-east-1", "eu-west-1"]) == ["eu-west-1", "us-east-1"]
    with pytest.raises(ValueError, match="item 1") as err:
        regions.normalize(["us-east-1", "<script>"])
    assert "<script>" not in str(err.value)
    with pytest.raises(ValueError):
        regions.normalize([])
