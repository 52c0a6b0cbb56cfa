"""shared.aws without AWS: credentials stay masked, errors are classified without messages."""

from __future__ import annotations

import pickle
import uuid

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from shared import aws
from shared.errors import (
    AccessDeniedError,
    AwsError,
    AwsUnreachableError,
    CostExplorerNotEnabledError,
    ExpiredCredentialsError,
    ThrottledError,
)

CANARY_SECRET = "canarySecretKey/abcdefghijklmnopqrstuvwxyz"


def test_credentials_repr_hides_the_secret_and_token() -> None:
    c = aws.Credentials("ASIACANARY0000000000", CANARY_SECRET, "canary-token", None)
    for text in (repr(c), str(c), f"{c}", repr([c]), repr({"c": c})):
        assert CANARY_SECRET not in text and "canary-token" not in text
        assert "ASIACANARY0000000000" not in text


def test_credentials_refuse_to_be_pickled() -> None:
    c = aws.Credentials("ASIACANARY0000000000", CANARY_SECRET, "canary-token", None)
    with pytest.raises(TypeError):
        pickle.dumps(c)


def _client_error(code: str, message: str = "m", status: int = 400) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Op",
    )


@pytest.mark.parametrize(
    ("code", "message", "status", "kind"),
    [
        ("AccessDenied", "User: arn:aws:iam::1:user/x is not authorized", 403, AccessDeniedError),
        (
            "AccessDeniedException",
            "User not enabled for cost explorer access",
            400,
            CostExplorerNotEnabledError,
        ),
        ("ThrottlingException", "Rate exceeded", 400, ThrottledError),
        ("LimitExceededException", "", 400, ThrottledError),
        (
            "ExpiredTokenException",
            "The security token included in the request is expired",
            400,
            ExpiredCredentialsError,
        ),
        ("InternalFailure", "", 500, AwsUnreachableError),
        ("DataUnavailableException", "", 400, AwsError),
    ],
)
def test_aws_errors_are_classified_and_keep_the_code_but_not_the_message(
    code: str, message: str, status: int, kind: type[AwsError]
) -> None:
    err = aws.classify(_client_error(code, message, status), "Op")
    assert type(err) is kind
    assert err.aws_code == code
    if message:
        assert message not in str(err)


def test_network_failures_are_unreachable_errors() -> None:
    err = aws.classify(EndpointConnectionError(endpoint_url="https://sts.amazonaws.com"))
    assert isinstance(err, AwsUnreachableError)
    assert "amazonaws" not in str(err)


def test_session_names_carry_our_prefix_and_an_opaque_id_only() -> None:
    agency = uuid.uuid4()
    name = aws.session_name(agency, "sync")
    assert name.startswith(aws.SESSION_PREFIX)
    assert 2 <= len(name) <= 64
    assert name == f"cao-sync-{agency.hex}"
