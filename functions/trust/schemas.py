"""Response models of the public trust documents (/subprocessors, /api/security)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ProcessorEntry(BaseModel):
    provider: str
    purpose: str
    region: str
    privacy: str = Field(description="link to the provider's privacy policy")


class SubprocessorsDocument(BaseModel):
    canonical_url: str
    subprocessors: list[ProcessorEntry] = Field(description="subprocessors CloudAgencyOps appoints")
    customer_controlled_services: list[ProcessorEntry] = Field(
        description="the agency's own services we read from on its instruction (not "
        "subprocessors we appoint)"
    )
    change_notice_days: int = Field(
        description="notice before adding or replacing a subprocessor of Customer Personal Data"
    )


class StoredFieldEntry(BaseModel):
    field: str
    label: str
    source: str
    max_length: int


class VulnerabilityReporting(BaseModel):
    contact: str
    disclosure_window_days: int
    acknowledge_within_hours: int
    remediation_timeline_business_days: int
    bug_bounty: bool
    security_txt: str


class StoreAdditionEntry(BaseModel):
    name: str
    text: str


class SecurityDocument(BaseModel):
    role_policy: dict[str, Any] = Field(description="attach verbatim to the role")
    role_actions: list[str]
    trust_policy_template: dict[str, Any] = Field(description="fill in the two placeholders")
    trust_policy_placeholders: dict[str, str]
    we_store: list[str]
    we_store_additions: list[StoreAdditionEntry] = Field(
        description="what we store beyond the page's list, each named"
    )
    we_never_store: list[str]
    stored_cloudtrail_fields: list[StoredFieldEntry] = Field(
        description="the only CloudTrail event fields we keep; everything else is dropped"
    )
    subprocessors_url: str
    incident_notice_target_hours: int
    vulnerability_reporting: VulnerabilityReporting
