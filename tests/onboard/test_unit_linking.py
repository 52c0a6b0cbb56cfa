"""Pure parts of linking: ARN validation, Organizations ARNs, messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.onboard import linking
from shared.errors import BadRequestError, UnprocessableError

OURS = "123456789012"


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::210987654321:role/CloudAgencyOpsReadOnly",
        "arn:aws:iam::210987654321:role/team/ops/CloudAgencyOps",
        "arn:aws-us-gov:iam::210987654321:role/Reader",
        "arn:aws-cn:iam::210987654321:role/a+b=c,d.e@f-g_h",
    ],
)
def test_valid_role_arns_parse_back_to_themselves(arn: str) -> None:
    assert str(linking.parse_role_arn(arn, OURS)) == arn


@pytest.mark.parametrize(
    "arn",
    [
        "",
        "arn:aws:iam::21098765432:role/X",  # 11 digits
        "arn:aws:iam::2109876543210:role/X",  # 13 digits
        "arn:aws:iam::210987654321:user/X",
        "arn:aws:iam::210987654321:role/",
        "arn:aws:sts::210987654321:role/X",
        "arn:aws:iam:us-east-1:210987654321:role/X",
        "arn:aws:iam::210987654321:role/" + "x" * 65,
        "arn:aws:iam::210987654321:role/has space",
        "arn:aws:iam::210987654321:role/X\nY",
        "arn:evil:iam::210987654321:role/X",
        "arn:aws:iam::２１０９８７６５４３２１:role/X",  # non-ASCII digits
        "arn:aws:iam::210987654321:role//X",
    ],
)
def test_malformed_role_arns_are_400_naming_the_expected_shape(arn: str) -> None:
    with pytest.raises(BadRequestError) as err:
        linking.parse_role_arn(arn, OURS)
    assert "arn:aws:iam::<12-digit account ID>:role/<name>" in err.value.message
    assert arn.strip() not in err.value.message or not arn.strip()


def test_a_role_in_our_own_account_is_refused() -> None:
    with pytest.raises(UnprocessableError) as err:
        linking.parse_role_arn(f"arn:aws:iam::{OURS}:role/Anything", OURS)
    assert err.value.code == "own_account"


@given(st.text(max_size=300))
def test_arn_parsing_never_fails_other_than_with_a_4xx(value: str) -> None:
    try:
        arn = linking.parse_role_arn(value, OURS)
    except (BadRequestError, UnprocessableError):
        return
    assert str(arn) == value.strip()


def test_the_management_account_is_read_from_the_owner_in_organizations_arns() -> None:
    arn = "arn:aws:organizations::111122223333:account/o-abc123/444455556666"
    assert linking.organization_owner(arn) == "111122223333"
    assert linking.organization_owner("arn:aws:iam::111122223333:root") is None


def test_the_denied_message_names_every_likely_cause_and_no_role() -> None:
    message = linking.assume_denied_message(OURS)
    for cause in ("not installed", "mistyped", "trust policy", "ExternalId", OURS):
        assert cause in message
