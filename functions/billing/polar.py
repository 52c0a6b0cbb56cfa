"""A small client for the two Polar API calls we make: create a checkout, open the portal.

Polar's SDK is heavy to import and we need two endpoints, so this is httpx with our own models
of the few response fields we read (new fields are ignored). The agency id travels as the
customer's `external_customer_id`: Polar copies it onto the customer, and every later webhook
carries it back as `customer.external_id`, which is how a delivery finds its agency.

Every failure maps to our error tree and never carries Polar's response text: timeouts and 5xx
are retryable (503), a refused token is a configuration error (503 naming the variable), a
refusal of the request itself is a bad gateway (502), an unknown customer is a 404.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import (
    ConfigError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
)
from shared.settings import Secret, Settings

# Polar answers in well under a second; a checkout is interactive, so fail fast and let the
# admin retry rather than hold a function instance for its whole duration.
TIMEOUT = httpx.Timeout(10.0, connect=3.0)
MAX_RESPONSE_BYTES = 256 * 1024


class PolarError(UnavailableError):
    """Polar refused our request or answered something we cannot read (bad gateway)."""

    status = 502
    code = "polar_error"


class PolarUnavailableError(UnavailableError):
    """Polar did not answer in time or answered 5xx; retry later."""

    code = "polar_unavailable"


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CheckoutSession(_Response):
    """The fields of Polar's Checkout we use."""

    id: str = Field(max_length=200)
    url: str = Field(max_length=2048, pattern=r"^https?://")
    expires_at: datetime | None = None


class PortalSession(_Response):
    """The fields of Polar's CustomerSession we use."""

    customer_portal_url: str = Field(max_length=2048, pattern=r"^https?://")
    expires_at: datetime | None = None


class PolarClient:
    """Polar's API at `base_url` with an organization access token. Use as a context manager
    (one per request: serverless instances must not keep pools across invocations)."""

    def __init__(
        self,
        base_url: str,
        token: Secret,
        *,
        timeout: httpx.Timeout = TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={
                "Authorization": f"Bearer {token.reveal()}",
                "Accept": "application/json",
                "User-Agent": "cloudagencyops",
            },
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PolarClient:
        return cls(settings.get("POLAR_API_URL"), settings.secret("POLAR_ACCESS_TOKEN"))

    def __enter__(self) -> PolarClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def create_checkout(
        self,
        *,
        product_id: str,
        agency_id: uuid.UUID,
        success_url: str | None = None,
        customer_email: str | None = None,
    ) -> CheckoutSession:
        """A hosted checkout for one product, for the customer whose external id is the agency."""
        body: dict[str, Any] = {
            "products": [product_id],
            "external_customer_id": str(agency_id),
            "metadata": {"agency_id": str(agency_id)},
        }
        if success_url:
            body["success_url"] = success_url
        if customer_email:
            body["customer_email"] = customer_email
        return _parse(CheckoutSession, self._post("/v1/checkouts/", body))

    def create_portal_session(
        self, *, agency_id: uuid.UUID, return_url: str | None = None
    ) -> PortalSession:
        """A customer-portal session for the agency's Polar customer (by its external id)."""
        body: dict[str, Any] = {"external_customer_id": str(agency_id)}
        if return_url:
            body["return_url"] = return_url
        # Polar knows no customer with this external id until a checkout completed.
        missing = NotFoundError(
            "Polar has no customer for this agency yet: start a checkout first "
            "(POST /api/billing/checkout)",
            code="no_polar_customer",
        )
        data = self._post("/v1/customer-sessions/", body, missing=missing)
        return _parse(PortalSession, data)

    def _post(self, path: str, body: dict[str, Any], *, missing: Exception | None = None) -> Any:
        try:
            response = self._http.post(path, json=body)
        except httpx.TimeoutException:
            raise PolarUnavailableError("Polar did not answer in time; retry") from None
        except httpx.HTTPError as exc:
            # The transport's message can carry the URL; keep only the class.
            raise PolarUnavailableError(
                f"Polar is unreachable ({type(exc).__name__}); retry"
            ) from None
        if response.status_code >= 300:
            if missing is not None and response.status_code in (404, 422):
                raise missing
            raise _mapped(response.status_code, response.headers.get("retry-after"))
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise PolarError("Polar's answer was larger than expected")
        try:
            return response.json()
        except ValueError:
            raise PolarError("Polar answered with something that is not JSON") from None


def _mapped(status: int, retry_after: str | None) -> Exception:
    """Our error for a non-2xx answer of Polar (3xx included: we never follow redirects)."""
    if status in (401, 403):
        return ConfigError(
            "POLAR_ACCESS_TOKEN was refused by Polar: it must be an organization access token "
            "with the checkouts:write and customer_sessions:write scopes"
        )
    if status == 429:
        seconds = min(int(retry_after), 3600) if retry_after and retry_after.isdigit() else 30
        return RateLimitedError("Polar is rate limiting us; retry later", retry_after=seconds)
    if status >= 500:
        return PolarUnavailableError(f"Polar answered {status}; retry later")
    return PolarError(f"Polar refused the request ({status}); check the Polar product ids")


_R = TypeVar("_R", bound=_Response)


def _parse(model: type[_R], data: Any) -> _R:
    try:
        return model.model_validate(data)
    except ValidationError:
        raise PolarError("Polar's answer lacks the fields we need") from None
