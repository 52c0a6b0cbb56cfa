"""What we publish, in one place: the role policy, the trust policy, what we store, who we use.

The security page (../shared/seed/security-page.txt in the handouts) is the contract; tests hold
these constants to it. Behaviour uses the same constants: the CloudFormation template embeds
ROLE_POLICY, the CloudTrail sync keeps exactly STORED_CLOUDTRAIL_FIELDS, the trust endpoints
serve SUBPROCESSORS. Changing one changes both what we do and what we say.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

# The role policy, verbatim from the security page ("paste as-is", no placeholders).
ROLE_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ce:GetCostAndUsage",
                "cloudtrail:LookupEvents",
                "organizations:ListAccounts",
            ],
            "Resource": "*",
        }
    ],
}
ROLE_ACTIONS: tuple[str, ...] = tuple(ROLE_POLICY["Statement"][0]["Action"])

# Our IAM principal's name, as on the security page.
SERVICE_USER = "cao-service"
ACCOUNT_PLACEHOLDER = "REPLACE-WITH-CAO-AWS-ACCOUNT-ID"
EXTERNAL_ID_PLACEHOLDER = "REPLACE-WITH-YOUR-AGENCY-EXTERNAL-ID"


def trust_policy(account_id: str, external_id: str) -> dict[str, Any]:
    """The trust policy with our account ID and the agency's ExternalId filled in."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:user/{SERVICE_USER}"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


TRUST_POLICY_TEMPLATE = trust_policy(ACCOUNT_PLACEHOLDER, EXTERNAL_ID_PLACEHOLDER)


def policy_json(policy: dict[str, Any]) -> str:
    return json.dumps(policy, indent=2)


@dataclass(frozen=True)
class StoredField:
    """One CloudTrail field we keep: our column, where it comes from, its length bound."""

    column: str
    label: str
    source: str
    max_length: int


# The CloudTrail allowlist: exactly what the security page lists (event name, principal ARN,
# principal/role-session name, source IP, timestamp) plus what we need to deduplicate and locate
# an event (event ID, account, region). Everything else of an event is dropped with its page.
STORED_CLOUDTRAIL_FIELDS: tuple[StoredField, ...] = (
    StoredField("event_name", "event name", "eventName", 128),
    StoredField("principal_arn", "principal ARN", "userIdentity.arn", 2048),
    StoredField(
        "principal_name",
        "principal/role-session name",
        "userIdentity.userName, or the role-session name of an assumed role",
        256,
    ),
    StoredField("source_ip", "source IP", "sourceIPAddress (an IP, or an AWS service name)", 256),
    StoredField("event_time", "timestamp", "eventTime", 64),
    StoredField("event_id", "event ID (to deduplicate)", "eventID", 128),
    StoredField("aws_account_id", "account (to locate)", "the account synced", 12),
    StoredField("region", "region (to locate)", "the region read", 32),
)

# The security page's lines, verbatim.
WE_STORE_ON_PAGE: tuple[str, ...] = (
    "Aggregated cost data from Cost Explorer (per account × per service × per month)",
    "CloudTrail event metadata ("
    + ", ".join(f.label for f in STORED_CLOUDTRAIL_FIELDS if "(" not in f.label)
    + ") for access governance. This metadata may include personal data; we process it as a "
    "processor under the DPA.",
    "Account metadata (12-digit account ID, account alias, linked-at timestamp)",
    "Runbook content YOU author in our editor",
    "Your agency's billing details + Polar customer ID",
)

# Cost snapshots are kept this long (shared/store/snapshots.py purges older ones).
SNAPSHOT_RETENTION_MONTHS = 13


@dataclass(frozen=True)
class Addition:
    """A line we publish beyond the page's, named so the test holding us to the page knows it."""

    name: str
    text: str


# What the product stores beyond the page's list (the page's lines are kept verbatim above).
WE_STORE_ADDITIONS: tuple[Addition, ...] = (
    Addition(
        "people",
        "The people who sign in to your agency's console: name, email, role, passkey public keys "
        "(never anything that can sign in by itself), and session records (hashed session "
        "tokens, sign-in and last-seen times)",
    ),
    Addition(
        "month_to_date_cost_snapshots",
        "Month-to-date cost snapshots: at each cost sync, per account × per service, the current "
        "month's amount (and the previous month's, until AWS finalises it) with the time of the "
        "sync. This is more than one figure per month; budgets, forecasts and spend anomalies "
        f"are computed from them. Kept {SNAPSHOT_RETENTION_MONTHS} months.",
    ),
    Addition(
        "clients_budgets_anomalies",
        "Clients, budgets and anomaly notes YOU author, and the budget thresholds raised and "
        "spend anomalies computed from the stored cost data (deleted with the account or the "
        "agency).",
    ),
)

WE_STORE: tuple[str, ...] = WE_STORE_ON_PAGE + tuple(a.text for a in WE_STORE_ADDITIONS)

WE_NEVER_STORE: tuple[str, ...] = (
    "AWS access keys (long-lived IAM user credentials)",
    "AWS secret access keys",
    "Session tokens beyond the 1h STS lifetime",
    "Object contents, database contents, secret values, file contents, workload payloads, or "
    "full inventory scans (except where expressly added in a future permission set)",
)


@dataclass(frozen=True)
class Processor:
    provider: str
    purpose: str
    region: str
    privacy: str


SUBPROCESSORS: tuple[Processor, ...] = (
    Processor(
        "Vercel",
        "Hosting + deployment platform",
        "US-East (iad1)",
        "https://vercel.com/legal/privacy-policy",
    ),
    Processor("Neon", "Postgres database", "US-East", "https://neon.tech/privacy-policy"),
    Processor("Polar", "Billing / Merchant of Record", "EU + US", "https://polar.sh/legal/privacy"),
    Processor("Sentry", "Error tracking", "US", "https://sentry.io/privacy/"),
)

CUSTOMER_SERVICES: tuple[Processor, ...] = (
    Processor(
        "AWS (your accounts)",
        "Read-only cross-account access to Cost Explorer + CloudTrail in the agency's own AWS "
        "accounts",
        "Customer-controlled",
        "https://aws.amazon.com/privacy/",
    ),
)

SECURITY_CONTACT = "security@cloudagencyops.com"
DISCLOSURE_WINDOW_DAYS = 90
ACKNOWLEDGE_WITHIN_HOURS = 48
REMEDIATION_TIMELINE_BUSINESS_DAYS = 5
SUBPROCESSOR_NOTICE_DAYS = 30
INCIDENT_NOTICE_TARGET_HOURS = 24


def as_dicts(items: tuple[Processor, ...]) -> list[dict[str, str]]:
    return [asdict(p) for p in items]
