"""AWS access: assume-role, and clients on in-memory credentials from one botocore session.

Creating a boto3 Session per tenant reloads the service models (~90 ms); a client from one shared
botocore session costs ~4 ms. The composition root (`shared.bootstrap`) holds that one session
per process and hands it to `our_clients`. Sessions are not thread-safe and Fluid compute runs
requests concurrently, so clients are created under the session's lock; clients themselves are
thread-safe.

Credentials from sts:AssumeRole live only in a `Credentials` object: its repr is masked, it
refuses to be pickled, and nothing here logs or persists it. It goes out of scope with the sync.
Every AWS failure becomes one of our `AwsError`s keeping AWS's error code but never its message
(AWS messages can carry account data).

`functions/*` never imports botocore: they get clients from a `ClientFactory` and catch ours.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import (
    AccessDeniedError,
    AwsError,
    AwsUnreachableError,
    CostExplorerNotEnabledError,
    ExpiredCredentialsError,
    ThrottledError,
)
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.bootstrap import BotocoreSession

# Every role session we open starts with this, so clients can recognise our access in their own
# CloudTrail (and our CloudTrail sync marks those events as vendor access).
SESSION_PREFIX = "cao-"
ASSUME_DURATION_S = 900  # the minimum AWS allows: a sync needs minutes, not the 1 h default
DEFAULT_REGION = "us-east-1"

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=5,
    read_timeout=30,
    user_agent_appid="cloudagencyops",
)


@dataclass(frozen=True, repr=False)
class Credentials:
    """AWS credentials held in memory only."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expiration: datetime | None = None

    def __repr__(self) -> str:
        return (
            f"Credentials(access_key_id='{self.access_key_id[:4]}****', expires={self.expiration})"
        )

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("credentials are never serialised")


class Client:
    """A botocore client whose errors come out as our AwsErrors, counting its calls."""

    def __init__(self, raw: Any, service: str, on_call: Callable[[str], None] | None = None):
        self._raw = raw
        self.service = service
        self.region: str = raw.meta.region_name
        self.calls = 0
        self._on_call = on_call

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._raw, name)
        if name.startswith("_") or name in {"meta", "exceptions"} or not callable(method):
            return method

        def call(**kwargs: Any) -> Any:
            self.calls += 1
            if self._on_call is not None:
                self._on_call(name)
            try:
                return method(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, name) from None

        return call


class ClientFactory:
    """Makes clients on one set of credentials (ours, or a client role's)."""

    def __init__(
        self,
        credentials: Credentials | None,
        *,
        session: BotocoreSession,
        endpoint_url: str | None = None,
        on_call: Callable[[str], None] | None = None,
    ) -> None:
        self._credentials = credentials
        self._session = session
        self.endpoint_url = endpoint_url
        self._on_call = on_call

    def __repr__(self) -> str:
        return f"ClientFactory(endpoint_url={self.endpoint_url!r})"

    def client(self, service: str, region: str = DEFAULT_REGION) -> Client:
        creds = self._credentials
        session = self._session.get()
        with self._session.lock:
            raw = session.create_client(
                service,
                region_name=region,
                endpoint_url=self.endpoint_url,
                aws_access_key_id=creds.access_key_id if creds else None,
                aws_secret_access_key=creds.secret_access_key if creds else None,
                aws_session_token=creds.session_token if creds else None,
                config=_CONFIG,
            )
        return Client(raw, service, self._on_call)

    def with_credentials(self, credentials: Credentials) -> ClientFactory:
        return ClientFactory(
            credentials,
            session=self._session,
            endpoint_url=self.endpoint_url,
            on_call=self._on_call,
        )


def our_clients(settings: Settings, session: BotocoreSession) -> ClientFactory:
    """Clients as our own IAM user cao-service (its only permission: sts:AssumeRole)."""
    creds = Credentials(
        settings.secret("CAO_AWS_ACCESS_KEY_ID").reveal(),
        settings.secret("CAO_AWS_SECRET_ACCESS_KEY").reveal(),
    )
    return ClientFactory(creds, session=session, endpoint_url=settings.aws_endpoint_url)


_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")


def session_name(agency_id: uuid.UUID | str, purpose: str = "sync") -> str:
    """`cao-<purpose>-<agency uuid hex>`: our prefix and an opaque id, no personal data."""
    name = f"{SESSION_PREFIX}{purpose}-{uuid.UUID(str(agency_id)).hex}"
    if not _SESSION_NAME.match(name):
        raise ValueError("invalid role session name")
    return name


def assume_role(
    ours: ClientFactory,
    role_arn: str,
    external_id: str | None,
    session: str,
    *,
    duration_s: int = ASSUME_DURATION_S,
) -> ClientFactory:
    """Assume `role_arn` and return a client factory on its in-memory credentials.

    `external_id=None` sends none: only the trust-policy probe does that, on purpose.
    """
    params: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": session,
        "DurationSeconds": duration_s,
    }
    if external_id is not None:
        params["ExternalId"] = external_id
    answer = ours.client("sts").assume_role(**params)
    c = answer["Credentials"]
    creds = Credentials(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], c["Expiration"])
    return ours.with_credentials(creds)


_THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "LimitExceededException",
    "RequestLimitExceeded",
}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}


def classify(exc: ClientError | BotoCoreError, operation: str = "") -> AwsError:
    """Our error for a botocore failure: AWS's code kept, AWS's message dropped."""
    if not isinstance(exc, ClientError):
        return AwsUnreachableError(
            "AWS could not be reached; retry later",
            aws_code=type(exc).__name__,
            operation=operation,
        )
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    kind: type[AwsError] = AwsError
    message = "AWS refused the request"
    if code in _DENIED and "cost explorer" in str(err.get("Message", "")).lower():
        kind, message = CostExplorerNotEnabledError, "Cost Explorer is not enabled in this account"
    elif code in _DENIED:
        kind, message = AccessDeniedError, "AWS denied access"
    elif code in _THROTTLING:
        kind, message = ThrottledError, "AWS is throttling requests"
    elif code in _EXPIRED:
        kind, message = ExpiredCredentialsError, "the AWS session expired"
    elif status >= 500:
        kind, message = AwsUnreachableError, "AWS failed; retry later"
    return kind(message, aws_code=code, operation=operation)
