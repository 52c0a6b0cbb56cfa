"""The one exception tree of CloudAgencyOps.

    CaoError                      base; never raised itself
    ├── ConfigError               a required setting is missing or malformed (503)
    ├── AppError                  a request the caller can fix or must learn about (4xx)
    │   ├── BadRequestError       400: malformed input
    │   ├── UnauthorizedError     401: missing, unknown or revoked credentials
    │   ├── PaymentRequiredError  402: the billing plan does not allow it (subscribe, upgrade)
    │   ├── ForbiddenError        403: authenticated but not allowed
    │   ├── NotFoundError         404: absent, or belongs to another agency
    │   ├── ConflictError         409: state forbids it (version mismatch, active subscription)
    │   ├── PreconditionFailedError   412: If-Match names a version that is not current
    │   ├── PayloadTooLargeError  413
    │   ├── UnprocessableError    422: well-formed but refused (unsafe trust policy, ...)
    │   ├── PreconditionRequiredError 428: a conditional edit sent no version (If-Match)
    │   └── RateLimitedError      429: with a Retry-After
    ├── UnavailableError          503: a dependency failed transiently; retry later (Retry-After)
    │   └── DatabaseUnavailableError  unreachable, or no pooled connection within the wait
    ├── LeaseLostError            a sync job's lease was taken over: the worker writes nothing
    └── AwsError                  an AWS call failed; keeps the AWS error code, never its message
        ├── AccessDeniedError     the role refused us (removed, changed, wrong ExternalId)
        ├── ThrottledError        AWS throttled us beyond botocore's retries
        ├── ExpiredCredentialsError
        ├── CostExplorerNotEnabledError
        └── AwsUnreachableError   network failure or AWS 5xx after retries (503)

Messages are written by us and never carry secrets or raw AWS/database text: AWS messages can
echo account data and database errors echo key values.
"""

from __future__ import annotations


class CaoError(Exception):
    """Base of every error CloudAgencyOps raises on purpose."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ConfigError(CaoError):
    """A required setting is missing or malformed; the message names the variable."""

    status = 503
    code = "not_configured"


class AppError(CaoError):
    """A request error the caller can act on; mapped to its 4xx status."""

    status = 400
    code = "bad_request"


class BadRequestError(AppError):
    """The input is malformed."""


class UnauthorizedError(AppError):
    """Credentials are missing, unknown or revoked."""

    status = 401
    code = "unauthorized"


class PaymentRequiredError(AppError):
    """The agency's billing plan or state does not allow this (subscribe or upgrade)."""

    status = 402
    code = "payment_required"


class ForbiddenError(AppError):
    """The credentials are valid but lack the role for this action."""

    status = 403
    code = "forbidden"


class NotFoundError(AppError):
    """The resource does not exist for this agency (or exists for another one)."""

    status = 404
    code = "not_found"


class ConflictError(AppError):
    """The current state forbids the change (stale version, active subscription, ...)."""

    status = 409
    code = "conflict"


class PreconditionFailedError(AppError):
    """If-Match names a version that is no longer current (a concurrent edit won)."""

    status = 412
    code = "precondition_failed"


class PreconditionRequiredError(AppError):
    """A conditional update sent neither If-Match nor a version to compare."""

    status = 428
    code = "precondition_required"


class PayloadTooLargeError(AppError):
    """The request body exceeds its bound."""

    status = 413
    code = "payload_too_large"


class UnprocessableError(AppError):
    """The input is well-formed but cannot be accepted as it stands."""

    status = 422
    code = "unprocessable"


class RateLimitedError(AppError):
    """Too many requests; retry after `retry_after` seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class OutboundError(CaoError):
    """An outbound HTTP call (an alert delivery) failed; the message never names the URL."""

    status = 502
    code = "delivery_failed"


class OutboundRefusedError(OutboundError):
    """The destination is not allowed: not https on 443, or an address that is not global."""

    status = 422
    code = "destination_refused"


class UnavailableError(CaoError):
    """A dependency failed transiently; the caller may retry later (after `retry_after` s)."""

    status = 503
    code = "unavailable"

    def __init__(
        self, message: str, *, retry_after: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class DatabaseUnavailableError(UnavailableError):
    """Postgres could not be reached after retries."""

    code = "database_unavailable"


class LeaseLostError(CaoError):
    """This worker no longer holds the sync job's lease (it expired and was reclaimed)."""

    status = 409
    code = "lease_lost"


class AwsError(CaoError):
    """An AWS call failed. `aws_code` is AWS's error code; AWS's message is never kept."""

    status = 502
    code = "aws_error"

    def __init__(self, message: str, *, aws_code: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.aws_code = aws_code
        self.operation = operation


class AccessDeniedError(AwsError):
    """AWS refused our principal (role removed, trust policy changed, wrong ExternalId)."""

    code = "aws_access_denied"


class ThrottledError(AwsError):
    """AWS kept throttling after the retries (botocore's, or ours for paced calls)."""

    status = 503
    code = "aws_throttled"


class ExpiredCredentialsError(AwsError):
    """The assumed-role session expired mid-work."""

    code = "aws_credentials_expired"


class CostExplorerNotEnabledError(AwsError):
    """Cost Explorer was never enabled in the account (it cannot be enabled by API)."""

    code = "cost_explorer_not_enabled"


class OutOfTimeError(AwsError):
    """The run's time is up: no AWS request was sent, because none would end before its deadline."""

    status = 503
    code = "aws_out_of_time"


class AwsUnreachableError(AwsError):
    """AWS could not be reached, timed out, or answered 5xx, after the retries."""

    status = 503
    code = "aws_unreachable"
