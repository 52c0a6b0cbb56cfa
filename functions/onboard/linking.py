"""Account linking: validate a role ARN, check the role with AWS, record the account.

The checks, in order, all before anything is stored (no database transaction is open while AWS
is called):
1. the ARN is `arn:<partition>:iam::<12 digits>:role/<path/name>` and not in our own account;
2. assume it with the agency's ExternalId (15-minute session; session name
   `cao-link-<agency uuid hex>`: our prefix and an opaque id) and confirm, with
   sts:GetCallerIdentity on those credentials, that we are in the account the ARN names;
3. trust-policy probe: assume again with no ExternalId, then with fresh random ones generated
   exactly like real ExternalIds (indistinguishable from them). If AWS lets us in, the role is
   open to any of our customers who learns its ARN (confused deputy): the credentials are
   dropped unused and linking is refused, saying what to add to the trust policy;
4. Organizations: ListAccounts (paginated). The account is the management account only if the
   owner in the accounts' ARNs (`arn:aws:organizations::<owner>:account/...`) is its own id: a
   delegated administrator can list too, but is not the payer. A management account's members
   are recorded as discovered (id and name only, never email). AccessDenied or "not in use"
   means a standalone or member account;
5. Cost Explorer: one minimal GetCostAndUsage ($0.01), so that "Cost Explorer not enabled" is
   known at linking: the account is linked with status `cost_explorer_not_enabled` and told how
   to enable it.

AccessDenied on the first assume is a 422 listing the likely causes, worded the same whether or
not the role exists (and whether or not it belongs to another of our customers). Throttling or
a network failure is a retryable 503, and nothing is stored. Linking a role twice returns the
existing link.

This module imports `shared.aws` (botocore): `service` imports it inside its functions.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from functions.billing import plans
from shared import aws
from shared.aws import ClientFactory
from shared.db import Connection, tenant_tx
from shared.errors import (
    AccessDeniedError,
    AppError,
    AwsError,
    AwsUnreachableError,
    BadRequestError,
    CaoError,
    ConflictError,
    CostExplorerNotEnabledError,
    NotFoundError,
    ThrottledError,
    UnavailableError,
    UnprocessableError,
)
from shared.logs import get_logger
from shared.policy import SERVICE_USER
from shared.store import accounts, agency, audit
from shared.store.accounts import AccountRow
from shared.store.agency import ExternalIdRow

from . import externalid, templates

MAX_ARN_CHARS = 2048
_ROLE_ARN = re.compile(
    r"arn:(aws(?:-[a-z]+)*):iam::([0-9]{12}):role/((?:[A-Za-z0-9_+=,.@-]+/){0,32})"
    r"([A-Za-z0-9_+=,.@-]{1,64})"
)
_ORG_ACCOUNT_ARN = re.compile(r"arn:aws[a-z-]*:organizations::([0-9]{12}):account/.+")
MAX_ORG_PAGES = 250  # 20 accounts a page: 5000 accounts, the discovered-members bound
# Random ExternalIds per probe: more than one, so that a policy accepting a share of all
# possible values (`StringLike "A*"`) is caught more often than by a single value.
PROBE_VALUES = 2
MAX_BULK_LINK = 25  # each link is ~6 AWS calls; a request must finish inside maxDuration
_GONE_MEMBER_STATES = frozenset({"SUSPENDED", "CLOSED", "PENDING_CLOSURE"})


# ---- messages (ours, never AWS's) -----------------------------------------------------------


def assume_denied_message(our_account_id: str) -> str:
    """Why AWS may have refused: the same words whether or not the role exists."""
    return (
        "AWS did not let CloudAgencyOps assume this role. Likely causes: the CloudFormation "
        "template is not installed in that account (or its stack failed or was deleted); the "
        "account ID or role name in the ARN is mistyped; the role's trust policy does not trust "
        f"arn:aws:iam::{our_account_id}:user/{SERVICE_USER}; or its sts:ExternalId condition is "
        "not your agency's current ExternalId (GET /api/onboarding shows it). Fix the role, "
        "then try again."
    )


def unsafe_trust_message(our_account_id: str) -> str:
    return (
        "This role lets CloudAgencyOps assume it without your agency's ExternalId, so any "
        "CloudAgencyOps customer who learned its ARN could read this account (the confused-"
        "deputy problem). It was not linked, and the credentials AWS issued were discarded "
        "unused. In the role's trust policy, give the statement that trusts "
        f"arn:aws:iam::{our_account_id}:user/{SERVICE_USER} this condition: "
        '"Condition": {"StringEquals": {"sts:ExternalId": "<your ExternalId, from GET '
        '/api/onboarding>"}}, and remove every other statement that lets that principal, our '
        "account, or '*' assume the role (reinstalling our CloudFormation template does both). "
        "Then try again."
    )


COST_EXPLORER_NOT_ENABLED = (
    "Cost Explorer is not enabled in this account, so its costs cannot be read yet (AWS offers "
    "no API to enable it). To enable it: sign in to this account's AWS console (for an "
    "organization, the management account) as an administrator, open Billing and Cost "
    "Management > Cost Explorer and choose 'Launch Cost Explorer'. AWS prepares the data "
    "within about 24 hours; then verify the account again (POST /api/accounts/{id}/verify)."
)
NEEDS_TRUST_UPDATE = (
    "This account's role still trusts a previous ExternalId of your agency; syncs continue with "
    "it for now. Update the role's trust policy (or its CloudFormation stack's ExternalId "
    "parameter) to your current ExternalId (GET /api/onboarding), then verify the account."
)
UNREACHABLE = (
    "AWS could not be reached, or kept throttling, when this account was last checked; the "
    "next check will try again."
)
_RETRY = "AWS is throttling or could not be reached; nothing was stored. Retry in a minute."


# ---- the ARN --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleArn:
    partition: str
    account_id: str
    path: str  # "" or "a/b/"
    name: str

    def __str__(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:role/{self.path}{self.name}"


def parse_role_arn(value: str, our_account_id: str) -> RoleArn:
    """The role ARN, or 400 saying what shape is expected; our own account is refused (422)."""
    value = value.strip()
    match = _ROLE_ARN.fullmatch(value) if len(value) <= MAX_ARN_CHARS else None
    if match is None:
        raise BadRequestError(
            "role_arn must be an IAM role ARN: arn:aws:iam::<12-digit account ID>:role/<name> "
            "(a path is allowed: role/<path>/<name>), as in the RoleArn output of our "
            "CloudFormation stack",
            code="invalid_role_arn",
        )
    arn = RoleArn(match.group(1), match.group(2), match.group(3), match.group(4))
    if arn.account_id == our_account_id:
        raise UnprocessableError(
            "this role is in CloudAgencyOps's own AWS account: link a role in your client's "
            "account instead",
            code="own_account",
        )
    return arn


def organization_owner(account_arn: str) -> str | None:
    """The management account id in an Organizations account ARN."""
    match = _ORG_ACCOUNT_ARN.fullmatch(account_arn)
    return match.group(1) if match else None


# ---- AWS checks (no database) ---------------------------------------------------------------


class UnsafeTrustPolicyError(UnprocessableError):
    """The role accepts an AssumeRole without the agency's ExternalId."""

    code = "unsafe_trust_policy"


@dataclass(frozen=True)
class Organization:
    is_management: bool
    listed: bool  # ListAccounts answered (management account or delegated administrator)
    members: tuple[tuple[str, str | None], ...] = ()  # (id, name); only for a management account


@dataclass(frozen=True)
class CheckResult:
    aws_account_id: str
    external_id: ExternalIdRow  # the value the role accepted
    organization: Organization
    cost_explorer_enabled: bool


def retryable(exc: AwsError) -> UnavailableError:
    return UnavailableError(_RETRY, code=exc.code)


def assume_first(
    ours: ClientFactory,
    arn: RoleArn,
    candidates: list[ExternalIdRow],
    agency_id: uuid.UUID,
    purpose: str,
) -> tuple[ClientFactory, ExternalIdRow]:
    """Assume with the first ExternalId the role accepts; AccessDeniedError when none."""
    session = aws.session_name(agency_id, purpose)
    for candidate in candidates:
        try:
            return aws.assume_role(ours, str(arn), candidate.value, session), candidate
        except AccessDeniedError:
            continue
    raise AccessDeniedError("AWS denied access", aws_code="AccessDenied", operation="AssumeRole")


def probe_external_ids() -> list[str | None]:
    """What the trust-policy probe tries: no ExternalId, then PROBE_VALUES fresh ones that
    nobody was given, made exactly as real ones are (`externalid.generate`: same length, same
    alphabet), so that no condition can tell a probe from a real value (a `StringLike` of 43
    `?`, or `StringNotLike "probe-*"`, would let a marked or shorter probe through as "safe")."""
    return [None, *(externalid.generate() for _ in range(PROBE_VALUES))]


def trust_policy_is_open(ours: ClientFactory, arn: RoleArn, agency_id: uuid.UUID) -> bool:
    """Whether AWS lets us assume the role with no ExternalId, or with one nobody was given."""
    session = aws.session_name(agency_id, "probe")
    for external_id in probe_external_ids():
        try:
            aws.assume_role(ours, str(arn), external_id, session)
        except AccessDeniedError:
            continue
        # The credentials were never bound to a name: they are garbage as of this line.
        return True
    return False


def confirm_account(factory: ClientFactory, arn: RoleArn) -> None:
    identity = factory.client("sts").get_caller_identity()
    if str(identity.get("Account")) != arn.account_id:
        raise UnprocessableError(
            "the role's credentials do not belong to the account its ARN names; check the ARN",
            code="account_mismatch",
        )


def check_organization(factory: ClientFactory, own_account_id: str) -> Organization:
    client = factory.client("organizations")
    owner: str | None = None
    members: list[tuple[str, str | None]] = []
    token: str | None = None
    for _ in range(MAX_ORG_PAGES):
        params: dict[str, object] = {"MaxResults": 20}
        if token:
            params["NextToken"] = token
        try:
            page = client.list_accounts(**params)
        except AccessDeniedError:
            return Organization(is_management=False, listed=False)
        except (ThrottledError, AwsUnreachableError):
            raise
        except AwsError as exc:
            if exc.aws_code == "AWSOrganizationsNotInUseException":
                return Organization(is_management=False, listed=False)
            raise
        for item in page.get("Accounts", []):
            owner = owner or organization_owner(str(item.get("Arn", "")))
            member_id = str(item.get("Id", ""))
            state = str(item.get("State") or item.get("Status") or "")
            if (
                member_id != own_account_id
                and re.fullmatch(r"[0-9]{12}", member_id)
                and state not in _GONE_MEMBER_STATES
            ):
                name = item.get("Name")
                members.append((member_id, None if name is None else str(name)[:200]))
        # A page may be empty while NextToken is set: stop only when the token is absent.
        token = page.get("NextToken")
        if not token:
            break
    is_management = owner == own_account_id
    return Organization(
        is_management=is_management,
        listed=True,
        members=tuple(members) if is_management else (),
    )


def check_cost_explorer(factory: ClientFactory, today: date) -> bool:
    """One minimal request (one day, one metric, no grouping); False when CE is not enabled."""
    client = factory.client("ce", aws.DEFAULT_REGION)
    try:
        client.get_cost_and_usage(
            TimePeriod={
                "Start": (today - timedelta(days=1)).isoformat(),
                "End": today.isoformat(),
            },
            Granularity="MONTHLY",
            Metrics=["UnblendedCost"],
        )
    except CostExplorerNotEnabledError:
        return False
    except AccessDeniedError as exc:
        raise UnprocessableError(
            "the role may not call ce:GetCostAndUsage: attach the role policy exactly as shown "
            "at GET /api/onboarding (or reinstall our CloudFormation template)",
            code="role_policy_incomplete",
        ) from exc
    except AwsError as exc:
        if exc.aws_code in ("DataUnavailableException", "BillExpirationException"):
            return True  # enabled; the data is just not there yet
        raise
    return True


def run_checks(
    ours: ClientFactory,
    arn: RoleArn,
    candidates: list[ExternalIdRow],
    *,
    agency_id: uuid.UUID,
    purpose: str,
    our_account_id: str,
    today: date,
) -> CheckResult:
    """Every linking check. Raises AccessDeniedError (no candidate accepted),
    UnsafeTrustPolicyError, UnprocessableError, and Throttled/AwsUnreachable errors as is."""
    factory, used = assume_first(ours, arn, candidates, agency_id, purpose)
    confirm_account(factory, arn)
    if trust_policy_is_open(ours, arn, agency_id):
        del factory
        raise UnsafeTrustPolicyError(unsafe_trust_message(our_account_id))
    organization = check_organization(factory, arn.account_id)
    cost_explorer = check_cost_explorer(factory, today)
    return CheckResult(arn.account_id, used, organization, cost_explorer)


# ---- billing hook ---------------------------------------------------------------------------


def check_account_limit(conn: Connection, agency_id: uuid.UUID) -> None:
    """Billing hook: refuse a new link beyond the agency's plan limit.

    Called twice per new link, each time inside a tenant transaction of the agency: before any
    AWS call (to fail fast, with no AWS call made), and again in the transaction that inserts
    the account (the authoritative check: a lock taken there holds until the insert commits,
    so two concurrent links cannot both take the last slot). Billing decides: 402 past the
    plan's limit or when the agency is not entitled (functions.billing.plans).
    """
    plans.check_account_limit(conn, agency_id)


# ---- linking --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkOutcome:
    account: AccountRow
    created: bool


def _refuse_second_role(conn: Connection, agency_id: uuid.UUID, arn: RoleArn) -> None:
    """One link per AWS account: a second role would sync (and bill) the same data twice."""
    same_account = accounts.get_by_aws_account_id(conn, agency_id, arn.account_id)
    if same_account is not None:
        raise ConflictError(
            f"AWS account {arn.account_id} is already linked (account {same_account.id}, "
            "through another role): unlink it first to switch roles",
            code="account_already_linked",
        )


def _aws_failure(exc: CaoError, our_account_id: str) -> CaoError:
    """The error a linking request answers for an AWS failure."""
    if isinstance(exc, ThrottledError | AwsUnreachableError):
        return retryable(exc)
    if isinstance(exc, AccessDeniedError):
        return UnprocessableError(assume_denied_message(our_account_id), code="role_access_denied")
    return exc


def link_account(
    conn: Connection,
    ours: ClientFactory,
    *,
    agency_id: uuid.UUID,
    actor: str,
    role_arn: str,
    alias: str | None,
    regions: list[str] | None,
    our_account_id: str,
    now: datetime,
) -> LinkOutcome:
    arn = parse_role_arn(role_arn, our_account_id)
    with tenant_tx(conn, agency_id):
        existing = accounts.get_by_role_arn(conn, agency_id, str(arn))
        if existing is not None:
            return LinkOutcome(existing, created=False)
        _refuse_second_role(conn, agency_id, arn)
        check_account_limit(conn, agency_id)
        agency_row = agency.get(conn, agency_id)
        current = agency.current_external_id(conn, agency_id)
    if agency_row is None or current is None:
        raise NotFoundError("the agency no longer exists")

    try:
        result = run_checks(
            ours,
            arn,
            [current],
            agency_id=agency_id,
            purpose="link",
            our_account_id=our_account_id,
            today=now.date(),
        )
    except (AwsError, UnprocessableError) as exc:
        get_logger().info(
            "link refused", extra={"agency_id": str(agency_id), "error_code": exc.code}
        )
        raise _aws_failure(exc, our_account_id) from None

    status, message = "active", None
    if not result.cost_explorer_enabled:
        status, message = "cost_explorer_not_enabled", COST_EXPLORER_NOT_ENABLED
    with tenant_tx(conn, agency_id):
        existing = accounts.get_by_role_arn(conn, agency_id, str(arn))
        if existing is not None:  # a concurrent request linked the same role first
            return LinkOutcome(existing, created=False)
        _refuse_second_role(conn, agency_id, arn)
        check_account_limit(conn, agency_id)
        row = accounts.insert(
            conn,
            agency_id,
            aws_account_id=arn.account_id,
            role_arn=str(arn),
            alias=alias,
            regions=regions or list(agency_row.default_regions),
            external_id_id=result.external_id.id,
            status=status,
            status_message=message,
            is_management=result.organization.is_management,
            now=now,
        )
        if row is None:  # a concurrent request linked the same role first
            concurrent = accounts.get_by_role_arn(conn, agency_id, str(arn))
            assert concurrent is not None
            return LinkOutcome(concurrent, created=False)
        discovered = 0
        if result.organization.is_management:
            discovered = accounts.replace_discovered(
                conn, agency_id, row.id, result.organization.members, now
            )
        audit.record(
            conn,
            agency_id,
            actor,
            "account.linked",
            str(row.id),
            {
                "aws_account_id": arn.account_id,
                "role_arn": str(arn),
                "status": status,
                "is_management": result.organization.is_management,
                "discovered_members": discovered,
            },
        )
    return LinkOutcome(row, created=True)


@dataclass(frozen=True)
class BulkResult:
    aws_account_id: str
    outcome: str  # linked | already_linked | failed | not_discovered
    account: AccountRow | None = None
    error_code: str | None = None
    message: str | None = None


def link_discovered(
    conn: Connection,
    ours: ClientFactory,
    *,
    agency_id: uuid.UUID,
    actor: str,
    aws_account_ids: list[str] | None,
    our_account_id: str,
    now: datetime,
) -> tuple[list[BulkResult], int]:
    """Link discovered members through the StackSet's fixed role name: (results, remaining).

    With no ids, the first MAX_BULK_LINK unlinked members; `remaining` counts unlinked members
    not attempted (call again). A failure of one member does not stop the others.
    """
    with tenant_tx(conn, agency_id):
        discovered = accounts.list_discovered(conn, agency_id)
    by_id: dict[str, accounts.DiscoveredRow] = {}
    for row in discovered:
        by_id.setdefault(row.aws_account_id, row)
    results: list[BulkResult] = []
    if aws_account_ids is None:
        unlinked = [d for d in by_id.values() if d.linked_account_id is None]
        targets = unlinked[:MAX_BULK_LINK]
        remaining = len(unlinked) - len(targets)
    else:
        targets = []
        for aws_id in dict.fromkeys(aws_account_ids):
            if aws_id in by_id:
                targets.append(by_id[aws_id])
            else:
                results.append(
                    BulkResult(
                        aws_id,
                        "not_discovered",
                        error_code="not_discovered",
                        message="not a discovered member of a linked management account",
                    )
                )
        remaining = 0
    for member in targets:
        partition = parse_role_arn(member.management_role_arn, our_account_id).partition
        arn = templates.role_arn(member.aws_account_id, templates.STACKSET_ROLE_NAME, partition)
        try:
            outcome = link_account(
                conn,
                ours,
                agency_id=agency_id,
                actor=actor,
                role_arn=arn,
                alias=member.name,
                regions=None,
                our_account_id=our_account_id,
                now=now,
            )
        except (AppError, UnavailableError, AwsError) as exc:
            results.append(
                BulkResult(
                    member.aws_account_id, "failed", error_code=exc.code, message=exc.message
                )
            )
            continue
        results.append(
            BulkResult(
                member.aws_account_id,
                "linked" if outcome.created else "already_linked",
                account=outcome.account,
            )
        )
    return results, remaining
