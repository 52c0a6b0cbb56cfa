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


# ---- The security page's prose ----------------------------------------------------------------
# The rest of the public security page, so that the whole page (`/security` in a browser) is
# generated from this module; the numbers in it are the constants above. tests/trust holds the
# rendered page to the seed page line by line.

PAGE_AS_OF = "2026-05-31"
PAGE_TITLE = "Security"
PAGE_TAGLINE = "How we connect to your clients' AWS — and what we don't store."
PAGE_INTRO: tuple[str, ...] = (
    "CloudAgencyOps reads your client AWS accounts via short-lived, read-only cross-account IAM "
    "roles. Customer credentials are never stored at rest. This page lays out the architecture, "
    "the exact policies, our sub-processors, and how to report a vulnerability.",
    f"Controls described on this page reflect the current architecture as of {PAGE_AS_OF}. This "
    "page describes our current architecture and operational commitments for transparency; the "
    "binding terms governing the Service are the Terms of Service and the Data Processing "
    "Addendum.",
)
HOSTING = (
    "Hosting is in the United States (Vercel iad1, Neon US-East). The operator administers and "
    "can access the Service from Pakistan; this cross-border access is covered by the transfer "
    "terms in the Data Processing Addendum."
)
IAM_MODEL_TITLE = "IAM cross-account read-only model"
IAM_MODEL: tuple[str, ...] = (
    "Each client account installs a CloudFormation template that creates a single IAM role with "
    "a trust policy locked to our AWS account ID + your agency-scoped ExternalId. When we sync, "
    f"our IAM principal (user/{SERVICE_USER}) calls sts:AssumeRole against that role and "
    "receives short-lived (1h default) credentials. Those credentials are used for the duration "
    "of the sync and then dropped.",
    "The role grants three read-only AWS API permissions, nothing else. No write permissions. "
    "No console access. No ability to modify resources. The exact role policy (paste-ready) + "
    "trust relationship (two placeholders to swap in) are below.",
    "Read-only does not mean low-sensitivity: cloudtrail:LookupEvents can return operational "
    "metadata that includes personal data, such as IAM user names, role-session names, source "
    "IP addresses, event names, and timestamps. We store a bounded summary of those fields for "
    "the access-governance view (see “What we DO store” below) and process them as a processor "
    "under the Data Processing Addendum. We do not retrieve payload contents, S3 object "
    "contents, database contents, secret values, or workload data.",
)
ROLE_POLICY_TITLE = "Role policy (paste as-is)"
ROLE_POLICY_NOTE = "Attach this policy verbatim to the role. No placeholders."
TRUST_POLICY_TITLE = "Trust policy (replace two placeholders)"
TRUST_POLICY_NOTE = "Two values to fill in before applying:"
TRUST_POLICY_PLACEHOLDER_HELP: tuple[tuple[str, str], ...] = (
    (
        ACCOUNT_PLACEHOLDER,
        "the 12-digit AWS account ID for CloudAgencyOps's SaaS account. We surface this on your "
        "dashboard onboarding screen + in your welcome email; or contact "
        "founder@cloudagencyops.com.",
    ),
    (
        EXTERNAL_ID_PLACEHOLDER,
        "a per-agency secret we generate for you during onboarding. Surfaced on the same "
        "dashboard screen.",
    ),
)
EXTERNAL_ID_NOTE = (
    "The ExternalId is a per-agency value used to mitigate the “confused deputy” pattern: even "
    "if another CloudAgencyOps customer somehow learned your role ARN, they could not assume it "
    "without your specific ExternalId. Treat it as sensitive configuration. It is not a password "
    "and does not by itself grant access without the trusted CloudAgencyOps AWS principal and "
    "your customer-created IAM role."
)
WE_NEVER_STORE_TITLE = "What we do NOT store"
WE_STORE_TITLE = "What we DO store"
SUBPROCESSORS_TITLE = "Sub-processors"
SUBPROCESSORS_NOTE = (
    "The canonical, authoritative subprocessor list lives at /subprocessors and is referenced "
    "by the Terms, Privacy Policy, and Data Processing Addendum so the list cannot drift between "
    "pages. The two tables below distinguish the subprocessors we appoint from the "
    "customer-controlled services we merely access. We notify agencies at least "
    f"{SUBPROCESSOR_NOTICE_DAYS} days before adding or replacing a subprocessor that processes "
    "Customer Personal Data (shorter where urgent security, availability, or legal reasons "
    "require), and agencies may object on reasonable data-protection grounds."
)
SUBPROCESSORS_TABLE_TITLE = "CloudAgencyOps subprocessors"
SUBPROCESSORS_COLUMNS: tuple[str, ...] = ("Provider", "Purpose", "Region", "Privacy")
CUSTOMER_SERVICES_TABLE_TITLE = "Customer-controlled services we access"
CUSTOMER_SERVICES_NOTE = (
    "These are not subprocessors we appoint. They are the agency's own services that we read "
    "from on the agency's instruction."
)
CUSTOMER_SERVICES_COLUMNS: tuple[str, ...] = ("Service", "How we use it", "Region", "Privacy")
PRIVACY_LINK_TEXT = "Link →"
INCIDENT_RESPONSE_TITLE = "Incident response"
INCIDENT_RESPONSE = (
    "We will notify affected agencies without undue delay and, where feasible, within "
    f"{INCIDENT_NOTICE_TARGET_HOURS} hours after confirming a security incident affecting "
    "Customer Data. The notice will include the known facts, the affected data categories, "
    "mitigation steps, and a point of contact, with additional information provided as it "
    "becomes available. During a material service disruption, we provide updates through your "
    "dashboard, by email, or through another appropriate channel."
)
VULNERABILITY_TITLE = "Reporting a vulnerability"
VULNERABILITY_REPORTING = (
    f"Email {SECURITY_CONTACT}. We commit to a {DISCLOSURE_WINDOW_DAYS}-day coordinated "
    "disclosure window from the date of initial report. We acknowledge within "
    f"{ACKNOWLEDGE_WITHIN_HOURS} hours and provide a remediation timeline within "
    f"{REMEDIATION_TIMELINE_BUSINESS_DAYS} business days. No bug bounty program at launch."
)
