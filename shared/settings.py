"""Every environment variable CloudAgencyOps reads, named in one place.

Settings are read from a mapping (tests pass a dict; production passes `os.environ`; the
composition root, `shared.bootstrap`, decides which), lazily: an entry point asks for a value on
its first request, so a missing variable becomes a 503 that
names it instead of a crash at import. Secret values are wrapped in `Secret`, whose repr is
masked, and registered with the redaction module so they are scrubbed from every log line and
error report even if a bug puts one there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared import redaction
from shared.errors import ConfigError


class Secret:
    """A secret string: masked in repr/str, revealed only on purpose."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Var:
    """One environment variable: its name, whether it is secret, and what it is for."""

    name: str
    doc: str
    secret: bool = False
    default: str | None = None


# The catalogue. The README's table of variables is checked against it by a test.
VARS: dict[str, Var] = {
    v.name: v
    for v in (
        Var("DATABASE_URL", "Postgres URL of the app role (Neon: the pooled URL).", secret=True),
        Var(
            "DATABASE_OWNER_URL",
            "Postgres URL of the schema owner (Neon: the direct URL); used only to apply "
            "schema.sql and for operator commands.",
            secret=True,
        ),
        Var("CAO_AWS_ACCOUNT_ID", "Our SaaS AWS account ID (12 digits), in every trust policy."),
        Var(
            "CAO_AWS_ACCESS_KEY_ID",
            "Access key of our IAM user cao-service (allowed only sts:AssumeRole).",
            secret=True,
        ),
        Var("CAO_AWS_SECRET_ACCESS_KEY", "Secret of that access key.", secret=True),
        Var(
            "CAO_AWS_ENDPOINT_URL",
            "Development only: send every AWS call to this loopback endpoint (the simulated "
            "AWS). Unset in production.",
            default="",
        ),
        Var(
            "CAO_TEMPLATE_URL",
            "HTTPS URL of the published CloudFormation template (S3), for quick-create links.",
            default="",
        ),
        Var("CRON_SECRET", "Bearer secret Vercel Cron sends to the cron endpoints.", secret=True),
        Var("POLAR_WEBHOOK_SECRET", "Polar webhook signing secret.", secret=True),
        Var(
            "POLAR_ACCESS_TOKEN", "Polar organization access token (checkout, portal).", secret=True
        ),
        Var("POLAR_API_URL", "Polar API base URL.", default="https://api.polar.sh"),
        Var(
            "POLAR_PRODUCT_STARTER",
            "Polar product id of the Starter plan (checkout for plan 'starter').",
            default="",
        ),
        Var(
            "POLAR_PRODUCT_PRO",
            "Polar product id of the Pro plan (checkout for plan 'pro').",
            default="",
        ),
        Var(
            "CAO_PUBLIC_URL",
            "Public HTTPS origin of the product (security.txt Canonical and Policy URLs, the "
            "links of invitations); its host is the passkeys' relying party ID, and its origin "
            "the one browsers may send unsafe requests from (plus http://localhost:<port> "
            "outside production).",
            default="https://cloudagencyops.com",
        ),
        Var(
            "SENTRY_DSN", "Sentry DSN; error reporting is off when unset.", secret=True, default=""
        ),
        Var("VERCEL_GIT_COMMIT_SHA", "Set by Vercel; the Sentry release.", default=""),
        Var(
            "VERCEL_ENV",
            "Set by Vercel: production, preview or development.",
            default="development",
        ),
        Var("LOG_LEVEL", "Log level of the JSON logs.", default="INFO"),
        Var("VERCEL", "Set to 1 by Vercel on its builds and functions.", default=""),
        Var(
            "CAO_OUTBOUND_ALLOW_LOOPBACK",
            "Local demo and tests only: 1 lets alert deliveries reach a loopback receiver "
            "(any port). Refused when VERCEL is set.",
            default="",
        ),
    )
}

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_LOCALHOST_ORIGIN = re.compile(r"http://localhost(?::\d{1,5})?")


class Settings:
    """Typed, lazy access to the variables in `VARS`, from any mapping."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env: Mapping[str, str] = dict(os.environ if environ is None else environ)
        for var in VARS.values():
            value = self._env.get(var.name)
            if var.secret and value:
                redaction.register_secret(value)

    def get(self, name: str) -> str:
        """The value of `name`, or its default; ConfigError naming it when neither exists."""
        var = VARS[name]
        value = self._env.get(name, "")
        if value:
            return value
        if var.default is not None:
            return var.default
        raise ConfigError(f"{name} is not configured: {var.doc}")

    def secret(self, name: str) -> Secret:
        if not VARS[name].secret:
            raise KeyError(f"{name} is not a secret variable")
        return Secret(self.get(name))

    def is_set(self, name: str) -> bool:
        return bool(self._env.get(name))

    @property
    def database_url(self) -> Secret:
        return self.secret("DATABASE_URL")

    @property
    def owner_database_url(self) -> Secret:
        return self.secret("DATABASE_OWNER_URL")

    @property
    def aws_account_id(self) -> str:
        value = self.get("CAO_AWS_ACCOUNT_ID")
        if not _ACCOUNT_ID.match(value):
            raise ConfigError("CAO_AWS_ACCOUNT_ID must be a 12-digit AWS account ID")
        return value

    @property
    def aws_endpoint_url(self) -> str | None:
        return self.get("CAO_AWS_ENDPOINT_URL") or None

    @property
    def cron_secret(self) -> Secret:
        return self.secret("CRON_SECRET")

    @property
    def sentry_dsn(self) -> str:
        return self.get("SENTRY_DSN")

    @property
    def public_url(self) -> str:
        """CAO_PUBLIC_URL without a trailing slash."""
        return self.get("CAO_PUBLIC_URL").rstrip("/")

    @property
    def public_origin(self) -> str:
        parts = urlsplit(self.public_url)
        if parts.scheme not in {"https", "http"} or not parts.hostname:
            raise ConfigError("CAO_PUBLIC_URL must be an http(s) URL such as https://example.com")
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def rp_id(self) -> str:
        """The passkeys' relying party ID: the host of CAO_PUBLIC_URL."""
        host = urlsplit(self.public_url).hostname
        if not host:
            raise ConfigError("CAO_PUBLIC_URL must be an http(s) URL such as https://example.com")
        return host

    @property
    def outbound_allows_loopback(self) -> bool:
        """Whether outbound deliveries may reach loopback (the local demo and tests only)."""
        value = self.get("CAO_OUTBOUND_ALLOW_LOOPBACK").strip().lower()
        if value in ("", "0", "false", "no"):
            return False
        if value not in ("1", "true", "yes"):
            raise ConfigError("CAO_OUTBOUND_ALLOW_LOOPBACK must be 1 or unset")
        if self.is_set("VERCEL"):
            raise ConfigError(
                "CAO_OUTBOUND_ALLOW_LOOPBACK is for local use only and cannot be set on Vercel"
            )
        return True

    @property
    def is_production(self) -> bool:
        return self.get("VERCEL_ENV") == "production"

    def allows_origin(self, origin: str) -> bool:
        """Browsers may send unsafe requests from CAO_PUBLIC_URL's origin and, outside
        production, from http://localhost on any port (the demo and local development)."""
        if origin.lower() == self.public_origin:
            return True
        return not self.is_production and bool(_LOCALHOST_ORIGIN.fullmatch(origin))
