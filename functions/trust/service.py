"""The public trust documents, generated from the constants that behaviour uses (shared.policy).

- the subprocessor list (`/subprocessors`, the path the security page names, and
  `/api/subprocessors`): SUBPROCESSORS and CUSTOMER_SERVICES;
- the security document (`/api/security`): ROLE_POLICY (what the CloudFormation template
  embeds), TRUST_POLICY_TEMPLATE, WE_STORE / WE_NEVER_STORE, the stored CloudTrail fields
  (STORED_CLOUDTRAIL_FIELDS, the allowlist the CloudTrail sync keeps), vulnerability reporting;
- `/.well-known/security.txt` (RFC 9116): Contact, Expires (computed, always in the future),
  Policy, Canonical.

Nothing here is written twice: changing a constant changes both what we do and what we say.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from functions.trust.schemas import (
    ProcessorEntry,
    SecurityDocument,
    StoreAdditionEntry,
    StoredFieldEntry,
    SubprocessorsDocument,
    VulnerabilityReporting,
)
from shared import policy

# RFC 9116 recommends an Expires less than a year ahead; the file is generated per request, so
# it always points ~6 months out (day-aligned, so caches see one value per day).
SECURITY_TXT_LIFETIME = timedelta(days=180)
SUBPROCESSORS_PATH = "/subprocessors"
SECURITY_PATH = "/api/security"
SECURITY_TXT_PATH = "/.well-known/security.txt"


def _entries(items: tuple[policy.Processor, ...]) -> list[ProcessorEntry]:
    return [ProcessorEntry(**entry) for entry in policy.as_dicts(items)]


def subprocessors_document(base_url: str) -> SubprocessorsDocument:
    return SubprocessorsDocument(
        canonical_url=base_url.rstrip("/") + SUBPROCESSORS_PATH,
        subprocessors=_entries(policy.SUBPROCESSORS),
        customer_controlled_services=_entries(policy.CUSTOMER_SERVICES),
        change_notice_days=policy.SUBPROCESSOR_NOTICE_DAYS,
    )


def security_document(base_url: str) -> SecurityDocument:
    base = base_url.rstrip("/")
    return SecurityDocument(
        role_policy=copy.deepcopy(policy.ROLE_POLICY),
        role_actions=list(policy.ROLE_ACTIONS),
        trust_policy_template=copy.deepcopy(policy.TRUST_POLICY_TEMPLATE),
        trust_policy_placeholders={
            policy.ACCOUNT_PLACEHOLDER: "the 12-digit AWS account ID of CloudAgencyOps, shown "
            "on the onboarding screen",
            policy.EXTERNAL_ID_PLACEHOLDER: "your agency's ExternalId, generated at sign-up and "
            "shown on the onboarding screen",
        },
        we_store=list(policy.WE_STORE),
        we_store_additions=[
            StoreAdditionEntry(name=a.name, text=a.text) for a in policy.WE_STORE_ADDITIONS
        ],
        we_never_store=list(policy.WE_NEVER_STORE),
        stored_cloudtrail_fields=[
            StoredFieldEntry(
                field=f.column, label=f.label, source=f.source, max_length=f.max_length
            )
            for f in policy.STORED_CLOUDTRAIL_FIELDS
        ],
        subprocessors_url=base + SUBPROCESSORS_PATH,
        incident_notice_target_hours=policy.INCIDENT_NOTICE_TARGET_HOURS,
        vulnerability_reporting=VulnerabilityReporting(
            contact=policy.SECURITY_CONTACT,
            disclosure_window_days=policy.DISCLOSURE_WINDOW_DAYS,
            acknowledge_within_hours=policy.ACKNOWLEDGE_WITHIN_HOURS,
            remediation_timeline_business_days=policy.REMEDIATION_TIMELINE_BUSINESS_DAYS,
            bug_bounty=False,
            security_txt=base + SECURITY_TXT_PATH,
        ),
    )


def security_txt(base_url: str, now: datetime) -> str:
    """security.txt per RFC 9116 (CRLF or LF lines; we use LF, as most sites do)."""
    at = now.astimezone(UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    expires = day + SECURITY_TXT_LIFETIME
    base = base_url.rstrip("/")
    return (
        "# CloudAgencyOps: how to report a vulnerability. We acknowledge within "
        f"{policy.ACKNOWLEDGE_WITHIN_HOURS} hours; {policy.DISCLOSURE_WINDOW_DAYS}-day "
        "coordinated disclosure; no bug bounty.\n"
        f"Contact: mailto:{policy.SECURITY_CONTACT}\n"
        f"Expires: {expires.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        f"Policy: {base}{SECURITY_PATH}\n"
        f"Canonical: {base}{SECURITY_TXT_PATH}\n"
        "Preferred-Languages: en\n"
    )
