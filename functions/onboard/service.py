"""Onboarding's use cases: sign-up, API keys issued to an agency, the onboarding material, and
the entry points of linking, bulk linking, verifying and the weekly trust probe.

The AWS side of linking and verifying is in two named modules, called from here: `linking`
(validate a role ARN, check the role with AWS, record the account) and `verify` (every check
again for one account; the weekly probe). Both import `shared.aws` (botocore), as do the
templates (PyYAML): the functions below import them when called, so the read views served
beside these routes (api/accounts.py) never load either. A new link's sync jobs are created
and published right after the link commits (`_first_sync`).

Sign-up is public (no key yet), so it is rate-limited per source address, an IPv6 address by
its /64 (a hash of it is the bucket: the address itself is not stored). The ExternalId comes
from `externalid.generate()`, never from the request; an API key is returned once and only its
hash is stored.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from functions.jobs import service as jobs
from functions.jobs.schemas import JobMessage
from functions.onboard.schemas import AccountOut
from functions.people import enrolment as people
from functions.people.enrolment import Enrolment
from shared import auth
from shared.auth import Caller
from shared.bootstrap import Deps
from shared.db import Connection, enter_tenant, is_unique_violation, system_tx, tenant_tx
from shared.errors import ConflictError, NotFoundError, RateLimitedError
from shared.kit.http import address_block
from shared.queue import Publisher
from shared.settings import Settings
from shared.store import accounts, agency, audit, rate_limits
from shared.store.agency import KeyRow

from . import externalid
from .schemas import (
    BulkLinkOut,
    BulkResultOut,
    DiscoveredOut,
    LinkIn,
    OnboardingOut,
    ProbeOut,
    TemplateLinks,
)

if TYPE_CHECKING:
    pass

SIGNUP_WINDOW_S = 3600
SIGNUP_LIMIT = 5  # sign-ups per address block per window
# (The database applies these, in cao.rate_limit_hit; tests/test_schema_privileges.py holds
# them equal.)
_ATTEMPTS = 3  # a unique-constraint collision of 256-bit random values means a broken RNG
MAX_LIVE_KEYS = 50
OPERATOR_ACTOR = "operator"
TEMPLATE_PATHS = {
    "yaml": "/api/onboarding/template.yaml",
    "json": "/api/onboarding/template.json",
    "stackset": "/api/onboarding/stackset.yaml",
}


# ---- sign-up --------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SignUpResult:
    """What sign-up returns once: the key in clear, and the ExternalId."""

    agency_id: uuid.UUID
    key_id: uuid.UUID
    api_key: str
    external_id: str
    enrolment: Enrolment | None = None

    def __repr__(self) -> str:
        return f"SignUpResult(agency_id={self.agency_id})"


def rate_limit_bucket(source_address: str) -> str:
    """The rate-limit bucket of an address block: hashed (the address is personal data)."""
    block = address_block(source_address)
    digest = hashlib.sha256(block.encode("utf-8", "replace")).hexdigest()[:32]
    return f"signup:{digest}"


def check_rate_limit(conn: Connection, source_address: str, now: datetime) -> None:
    """Count this sign-up attempt; 429 with Retry-After past the limit."""
    with system_tx(conn):
        wait = rate_limits.hit(conn, rate_limit_bucket(source_address))
    if wait:
        raise RateLimitedError(
            f"too many sign-ups from this address; retry in {wait} seconds", retry_after=wait
        )


def sign_up(
    conn: Connection,
    *,
    name: str,
    contact_email: str,
    admin: tuple[str, str] | None = None,
    source_address: str,
    now: datetime,
) -> SignUpResult:
    """An agency in its trial, its ExternalId and its first admin API key; with `admin` (name,
    email), its first admin user and their enrolment (functions.people), in the same
    transaction."""
    check_rate_limit(conn, source_address, now)
    key = auth.generate_key()
    for attempt in range(_ATTEMPTS):
        value = externalid.generate()
        try:
            with system_tx(conn):
                agency_id, key_id = agency.create(
                    conn,
                    name=name,
                    contact_email=contact_email,
                    external_id=value,
                    key_hash=key.key_hash,
                    key_prefix=key.display_prefix,
                )
                enrolment = None
                if admin is not None:
                    enter_tenant(conn, agency_id)
                    enrolment = people.add_first_admin(
                        conn, agency_id, name=admin[0], email=admin[1], now=now
                    )
        except ConflictError:
            raise
        except Exception as exc:
            if not is_unique_violation(exc) or attempt == _ATTEMPTS - 1:
                raise
            continue
        return SignUpResult(agency_id, key_id, key.plaintext, value, enrolment)
    raise AssertionError("unreachable")


# ---- API keys issued to an agency -----------------------------------------------------------


@dataclass(frozen=True, repr=False)
class CreatedKey:
    row: KeyRow
    plaintext: str

    def __repr__(self) -> str:
        return f"CreatedKey(id={self.row.id})"


def issue_key(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    name: str,
    role: str,
    actor: str,
    created_by: uuid.UUID | None,
) -> CreatedKey:
    """A new API key of the agency, audited, inside the caller's tenant transaction: its
    plaintext exists only in the result; the store keeps its SHA-256 and a display prefix.
    Used by the agency's admins (`functions.agency.service.create_key`) and the operator."""
    if agency.count_live_keys(conn, agency_id) >= MAX_LIVE_KEYS:
        raise ConflictError(
            f"an agency can hold at most {MAX_LIVE_KEYS} live API keys: revoke unused ones first"
        )
    new = auth.generate_key()
    row = agency.insert_key(
        conn,
        agency_id,
        name=name,
        role=role,
        key_hash=new.key_hash,
        key_prefix=new.display_prefix,
        created_by=created_by,
    )
    audit.record(conn, agency_id, actor, "key.created", str(row.id), {"role": role, "name": name})
    return CreatedKey(row, new.plaintext)


def issue_operator_admin_key(conn: Connection, agency_id: uuid.UUID) -> CreatedKey:
    """A new admin key for an agency that lost its own (operator command; audited)."""
    with tenant_tx(conn, agency_id):
        if agency.get(conn, agency_id) is None:
            raise NotFoundError(f"no agency {agency_id}")
        return issue_key(
            conn,
            agency_id,
            name="operator-issued admin key",
            role="admin",
            actor=OPERATOR_ACTOR,
            created_by=None,
        )


# ---- onboarding material --------------------------------------------------------------------


def _agency_values(conn: Connection, caller: Caller, settings: Settings) -> tuple[str, str]:
    """(our account ID, the agency's current ExternalId)."""
    ours = settings.aws_account_id  # ConfigError (503) naming it when unset
    with tenant_tx(conn, caller.agency_id):
        current = agency.current_external_id(conn, caller.agency_id)
    if current is None:
        raise NotFoundError("the agency no longer exists")
    return ours, current.value


def onboarding(conn: Connection, caller: Caller, settings: Settings) -> OnboardingOut:
    """Everything needed to create the role: policies, templates, quick-create link."""
    # PyYAML (and the published documents) only where the material is built: the read views
    # served beside these routes (api/accounts.py, api/agency.py) load this module too.
    from functions.onboard import templates  # noqa: PLC0415
    from shared.policy import ROLE_POLICY, SERVICE_USER, trust_policy  # noqa: PLC0415

    ours, external_id = _agency_values(conn, caller, settings)
    with tenant_tx(conn, caller.agency_id):
        pending = accounts.list_needing_trust_update(conn, caller.agency_id)
    template_url = settings.get("CAO_TEMPLATE_URL")
    quick_create, note = None, None
    if template_url and templates.is_https_url(template_url):
        quick_create = templates.quick_create_url(template_url, ours, external_id)
    else:
        note = (
            "No published template URL is configured (CAO_TEMPLATE_URL): download the template "
            "and create the stack from it in the CloudFormation console."
        )
    return OnboardingOut(
        cao_account_id=ours,
        service_principal=f"arn:aws:iam::{ours}:user/{SERVICE_USER}",
        external_id=external_id,
        role_name=templates.ROLE_NAME,
        role_policy=ROLE_POLICY,
        trust_policy=trust_policy(ours, external_id),
        templates=TemplateLinks(
            yaml=TEMPLATE_PATHS["yaml"],
            json=TEMPLATE_PATHS["json"],
            stackset_yaml=TEMPLATE_PATHS["stackset"],
            published_url=template_url or None,
        ),
        quick_create_url=quick_create,
        quick_create_note=note,
        stackset=templates.stackset_instructions(ours, TEMPLATE_PATHS["stackset"]),
        accounts_needing_trust_update=[AccountOut.model_validate(a) for a in pending],
        next='create the stack, then POST /api/accounts with {"role_arn": <the stack\'s RoleArn '
        "output>}",
    )


def template_file(
    conn: Connection, caller: Caller, kind: str, settings: Settings
) -> tuple[str, str, str]:
    """(text, media type, file name) of a template (`kind`: yaml, json or stackset) with the
    agency's values as parameter defaults."""
    from functions.onboard import templates  # noqa: PLC0415

    ours, external_id = _agency_values(conn, caller, settings)
    body = templates.template(
        stackset=kind == "stackset",
        defaults={"CaoAccountId": ours, "ExternalId": external_id},
    )
    if kind == "json":
        return templates.render_json(body), "application/json", "cloudagencyops.json"
    name = "cloudagencyops-stackset.yaml" if kind == "stackset" else "cloudagencyops.yaml"
    return templates.render_yaml(body), "application/yaml", name


# ---- linking and verifying (AWS: `linking`, `verify`) ---------------------------------------


def _first_sync(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    publisher: Publisher[JobMessage],
    now: datetime,
) -> None:
    """A new link's sync jobs, created and published now (never fails the link: when the queue
    cannot be reached, the jobs stay due and the next dispatcher run takes them)."""
    jobs.enqueue_first_sync(conn, agency_id, account_id, publisher=publisher, now=now)


def discovered(conn: Connection, caller: Caller) -> list[DiscoveredOut]:
    """Members of organizations whose management account is linked (ID and name only), each
    with the ARN the StackSet gives its role."""
    from functions.onboard import templates  # noqa: PLC0415

    with tenant_tx(conn, caller.agency_id):
        rows = accounts.list_discovered(conn, caller.agency_id)
    return [
        DiscoveredOut.model_validate(
            {
                **vars(r),
                "role_arn": templates.role_arn(
                    r.aws_account_id,
                    templates.STACKSET_ROLE_NAME,
                    r.management_role_arn.split(":", 2)[1],
                ),
            }
        )
        for r in rows
    ]


def link(
    conn: Connection,
    caller: Caller,
    body: LinkIn,
    *,
    deps: Deps,
    publisher: Publisher[JobMessage],
    now: datetime,
) -> tuple[AccountOut, bool]:
    """Link a client account by its role ARN (`linking.link_account`): (the account, whether
    it was linked now); an already linked role gives its existing link."""
    from functions.onboard import linking  # noqa: PLC0415 - loads botocore

    outcome = linking.link_account(
        conn,
        deps.our_clients(),
        agency_id=caller.agency_id,
        actor=caller.actor,
        role_arn=body.role_arn,
        alias=body.alias,
        regions=body.regions,
        our_account_id=deps.settings.aws_account_id,
        now=now,
    )
    if outcome.created:
        _first_sync(conn, caller.agency_id, outcome.account.id, publisher, now)
    return AccountOut.model_validate(outcome.account), outcome.created


def link_discovered(
    conn: Connection,
    caller: Caller,
    aws_account_ids: list[str] | None,
    *,
    deps: Deps,
    publisher: Publisher[JobMessage],
    now: datetime,
) -> BulkLinkOut:
    """Link discovered members through the StackSet role name (`linking.link_discovered`)."""
    from functions.onboard import linking  # noqa: PLC0415 - loads botocore

    results, remaining = linking.link_discovered(
        conn,
        deps.our_clients(),
        agency_id=caller.agency_id,
        actor=caller.actor,
        aws_account_ids=aws_account_ids,
        our_account_id=deps.settings.aws_account_id,
        now=now,
    )
    for r in results:
        if r.outcome == "linked" and r.account is not None:
            _first_sync(conn, caller.agency_id, r.account.id, publisher, now)
    return BulkLinkOut(
        results=[
            BulkResultOut(
                aws_account_id=r.aws_account_id,
                outcome=r.outcome,  # type: ignore[arg-type]
                account=AccountOut.model_validate(r.account) if r.account else None,
                error=(
                    {"code": r.error_code, "message": r.message or ""} if r.error_code else None
                ),
            )
            for r in results
        ],
        remaining=remaining,
    )


def verify_account(
    conn: Connection, caller: Caller, account_id: uuid.UUID, *, deps: Deps, now: datetime
) -> AccountOut:
    """Every linking check again, recorded as the account's status (`verify.verify_account`)."""
    from functions.onboard import verify  # noqa: PLC0415 - loads botocore

    row = verify.verify_account(
        conn,
        deps.our_clients(),
        agency_id=caller.agency_id,
        account_id=account_id,
        actor=caller.actor,
        our_account_id=deps.settings.aws_account_id,
        now=now,
    )
    return AccountOut.model_validate(row)


def weekly_probe(conn: Connection, *, deps: Deps, now: datetime) -> ProbeOut:
    """The weekly trust probe of every due account (`verify.run_weekly_probe`)."""
    from functions.onboard import verify  # noqa: PLC0415 - loads botocore

    summary = verify.run_weekly_probe(
        conn, deps.our_clients(), now, our_account_id=deps.settings.aws_account_id
    )
    return ProbeOut.model_validate(summary)
