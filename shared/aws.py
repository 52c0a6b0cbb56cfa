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

Bounded calls: a client made with `CallLimits` (shared.pacing) never sends an HTTP attempt
that could end after the limits' deadline.
- Paced (with a token bucket: LookupEvents): it retries in our own loop instead of botocore's
  (which would retry around the pacing, 70 ms after a throttle, for up to 6 x 30 s). Every
  attempt takes a slot of the bucket, so retries count against the 2 requests/s like first
  tries, and starts only if its worst case (the limits' connect + read timeout) ends by the
  deadline; otherwise `OutOfTimeError` (nothing sent) or the last failure. A throttled attempt
  slows the bucket (`TokenBucket.throttled`) for everyone sharing that quota; other transient
  failures (5xx, timeouts, dropped connections) wait a jittered backoff.
- Unpaced (Cost Explorer, STS, Organizations): botocore's standard retries and timeouts stay,
  and a `before-send` check refuses (`OutOfTimeError`) any attempt, retries included, whose
  worst case (5 s connect + 30 s read) would end after the deadline. botocore's backoff between
  attempts (at most 20 s) is shorter than that worst case, so it cannot cross the deadline
  either.

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
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from shared.errors import (
    AccessDeniedError,
    AwsError,
    AwsUnreachableError,
    CostExplorerNotEnabledError,
    ExpiredCredentialsError,
    OutOfTimeError,
    ThrottledError,
)
from shared.pacing import CallLimits, Slot, TokenBucket
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.bootstrap import BotocoreSession

# Every role session we open starts with this, so clients can recognise our access in their own
# CloudTrail (and our CloudTrail sync marks those events as vendor access).
SESSION_PREFIX = "cao-"
ASSUME_DURATION_S = 900  # the minimum AWS allows: a sync needs minutes, not the 1 h default
DEFAULT_REGION = "us-east-1"

_CONNECT_TIMEOUT_S = 5.0
_READ_TIMEOUT_S = 30.0
_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    connect_timeout=_CONNECT_TIMEOUT_S,
    read_timeout=_READ_TIMEOUT_S,
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
    """A botocore client whose errors come out as our AwsErrors, counting its requests.

    With `limits`, every call is bounded and retried here (see the module docstring), each
    attempt through `bucket` when one is given; `calls` counts HTTP attempts.
    """

    def __init__(
        self,
        raw: Any,
        service: str,
        on_call: Callable[[str], None] | None = None,
        *,
        limits: CallLimits | None = None,
        bucket: TokenBucket | None = None,
    ):
        self._raw = raw
        self.service = service
        self.region: str = raw.meta.region_name
        self.calls = 0
        self._on_call = on_call
        self._limits = limits
        self._bucket = bucket
        self._connected = False  # whether the last attempt left an open connection behind

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._raw, name)
        if name.startswith("_") or name in {"meta", "exceptions"} or not callable(method):
            return method

        def call(**kwargs: Any) -> Any:
            if self._limits is not None:
                return self._bounded(name, method, kwargs, self._limits)
            self.calls += 1
            if self._on_call is not None:
                self._on_call(name)
            try:
                return method(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, name) from None

        return call

    def _bounded(
        self, name: str, method: Callable[..., Any], kwargs: dict[str, Any], limits: CallLimits
    ) -> Any:
        last: AwsError | None = None
        for attempt in range(limits.max_attempts):
            may_start, slot = self._start(limits)
            if not may_start:
                break
            self.calls += 1
            if self._on_call is not None:
                self._on_call(name)
            cold = not self._connected
            try:
                answer = method(**kwargs)
                self._connected = True
                return answer
            except (ClientError, BotoCoreError) as exc:
                self._connected = isinstance(exc, ClientError)  # AWS answered: still connected
                error, transient = classify(exc, name), _transient(exc)
            finally:
                if cold and slot is not None:
                    slot.landed_by(limits.clock())  # it had to open a connection first
            if not transient:
                raise error from None
            last = error
            delay = limits.backoff(attempt)
            if isinstance(error, ThrottledError) and self._bucket is not None:
                self._bucket.throttled(delay)  # the next slot, ours or another run's, waits
            elif attempt + 1 < limits.max_attempts:
                if limits.clock() + delay > limits.latest_start:
                    break
                limits.sleep(delay)
        if last is not None:
            raise last from None
        raise OutOfTimeError("the run has no time left for this AWS call", operation=name)

    def _start(self, limits: CallLimits) -> tuple[bool, Slot | None]:
        """Whether an attempt may start now (after waiting for its slot, if paced)."""
        if self._bucket is None:
            return limits.clock() <= limits.latest_start, None
        slot = self._bucket.take(limits.latest_start)
        return slot is not None, slot


class ClientFactory:
    """Makes clients on one set of credentials (ours, or a client role's).

    `limits`, when set, bound every client it makes (unless a client is given its own), and
    carry over to the factories it leads to (`with_credentials`, i.e. after an assume): the
    sync worker bounds every AWS call of a job this way (functions/jobs/worker.py).
    """

    def __init__(
        self,
        credentials: Credentials | None,
        *,
        session: BotocoreSession,
        endpoint_url: str | None = None,
        on_call: Callable[[str], None] | None = None,
        limits: CallLimits | None = None,
    ) -> None:
        self._credentials = credentials
        self._session = session
        self.endpoint_url = endpoint_url
        self._on_call = on_call
        self.limits = limits

    def __repr__(self) -> str:
        return f"ClientFactory(endpoint_url={self.endpoint_url!r})"

    def client(
        self,
        service: str,
        region: str = DEFAULT_REGION,
        *,
        limits: CallLimits | None = None,
        bucket: TokenBucket | None = None,
    ) -> Client:
        """A client of `service` in `region`, retried by botocore (standard mode), bounded by
        `limits` (else the factory's) if any; with `bucket` too, paced and retried by us (see
        the module docstring)."""
        creds = self._credentials
        session = self._session.get()
        config = _CONFIG
        limits = limits or self.limits
        paced = limits if bucket is not None else None
        if paced is not None:
            config = _CONFIG.merge(
                Config(
                    retries={"mode": "standard", "total_max_attempts": 1},
                    connect_timeout=paced.connect_timeout_s,
                    read_timeout=paced.read_timeout_s,
                )
            )
        with self._session.lock:
            raw = session.create_client(
                service,
                region_name=region,
                endpoint_url=self.endpoint_url,
                aws_access_key_id=creds.access_key_id if creds else None,
                aws_secret_access_key=creds.secret_access_key if creds else None,
                aws_session_token=creds.session_token if creds else None,
                config=config,
            )
        if paced is not None:
            return Client(raw, service, self._on_call, limits=paced, bucket=bucket)
        if limits is not None:
            _refuse_attempts_past(raw, limits)
        return Client(raw, service, self._on_call)

    def with_credentials(self, credentials: Credentials) -> ClientFactory:
        return ClientFactory(
            credentials,
            session=self._session,
            endpoint_url=self.endpoint_url,
            on_call=self._on_call,
            limits=self.limits,
        )

    def bounded(self, limits: CallLimits) -> ClientFactory:
        """This factory, with every client it (and what it leads to) makes bounded by `limits`."""
        return ClientFactory(
            self._credentials,
            session=self._session,
            endpoint_url=self.endpoint_url,
            on_call=self._on_call,
            limits=limits,
        )


def _refuse_attempts_past(raw: Any, limits: CallLimits) -> None:
    """Make botocore client `raw` refuse every HTTP attempt (retries too) that could end after
    `limits.deadline` with its own timeouts."""
    worst = _CONNECT_TIMEOUT_S + _READ_TIMEOUT_S

    def before_send(**_: Any) -> None:
        if limits.clock() + worst > limits.deadline:
            raise OutOfTimeError("the run has no time left for this AWS call")

    service_id = raw.meta.service_model.service_id.hyphenize()
    raw.meta.events.register(f"before-send.{service_id}", before_send)


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
    limits: CallLimits | None = None,
) -> ClientFactory:
    """Assume `role_arn` and return a client factory on its in-memory credentials.

    `external_id=None` sends none: only the trust-policy probe does that, on purpose. With
    `limits`, the AssumeRole call is bounded by them (a sync assuming again mid-run).
    """
    params: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": session,
        "DurationSeconds": duration_s,
    }
    if external_id is not None:
        params["ExternalId"] = external_id
    answer = ours.client("sts", limits=limits).assume_role(**params)
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


def _transient(exc: ClientError | BotoCoreError) -> bool:
    """Worth another attempt: throttling, a 5xx, a timeout or a dropped connection."""
    if isinstance(exc, HTTPClientError | BotocoreConnectionError):
        return True
    if not isinstance(exc, ClientError):
        return False  # e.g. parameter validation: the same request fails the same way
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in _THROTTLING or status >= 500


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
