"""The CloudFormation template that creates our read-only role in a client account.

One source of truth: the inline policy is `shared.policy.ROLE_POLICY` and the trust policy is
`shared.policy.trust_policy(...)`, the very constants the security page is checked against, with
the two placeholders turned into CloudFormation parameters (`Fn::Sub` on our account ID, `Ref`
on the ExternalId). The role gets that one inline policy and nothing else: no managed policies,
no permissions boundary, no instance profile.

Three renderings:
- the template (YAML or JSON) with parameters `CaoAccountId`, `ExternalId` and `RoleName`
  (default `CloudAgencyOpsReadOnly`); the generic copy (no defaults) is what is published at
  `CAO_TEMPLATE_URL` for quick-create links: `python -m functions.onboard.templates yaml`;
- the same with an agency's values as parameter defaults, for download from the dashboard;
- the StackSet variant, whose role name is fixed (`STACKSET_ROLE_NAME`) so that every member
  account of an organization gets the same ARN shape and can be linked in bulk.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
from collections.abc import Mapping
from typing import Any

import yaml

from shared.policy import (
    ACCOUNT_PLACEHOLDER,
    EXTERNAL_ID_PLACEHOLDER,
    ROLE_POLICY,
    TRUST_POLICY_TEMPLATE,
)

ROLE_NAME = "CloudAgencyOpsReadOnly"
STACKSET_ROLE_NAME = ROLE_NAME
POLICY_NAME = "CloudAgencyOpsReadOnly"
STACK_NAME = "CloudAgencyOps"
STACKSET_NAME = "CloudAgencyOps"
ROLE_RESOURCE = "CloudAgencyOpsRole"
# IAM is global; the console needs some region to create the stack in.
STACK_REGION = "us-east-1"
MAX_SESSION_DURATION_S = 3600

PARAMETERS: dict[str, dict[str, Any]] = {
    "CaoAccountId": {
        "Type": "String",
        "Description": "The 12-digit AWS account ID of CloudAgencyOps (shown on your onboarding "
        "screen).",
        "AllowedPattern": "^[0-9]{12}$",
        "ConstraintDescription": "a 12-digit AWS account ID",
    },
    "ExternalId": {
        "Type": "String",
        "Description": "Your agency's ExternalId (shown on your onboarding screen). Treat it as "
        "sensitive configuration.",
        "MinLength": 2,
        "MaxLength": 1224,
        "AllowedPattern": "^[A-Za-z0-9_+=,.@:/-]+$",
        "ConstraintDescription": "2-1224 characters of letters, digits and _+=,.@:/-",
    },
    "RoleName": {
        "Type": "String",
        "Description": "Name of the IAM role to create.",
        "Default": ROLE_NAME,
        "AllowedPattern": "^[A-Za-z0-9_+=,.@-]{1,64}$",
        "ConstraintDescription": "1-64 characters of letters, digits and _+=,.@-",
    },
}


def _parameterised(value: Any) -> Any:
    """`value` with the security page's placeholders replaced by CloudFormation intrinsics."""
    if isinstance(value, dict):
        return {k: _parameterised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_parameterised(v) for v in value]
    if value == EXTERNAL_ID_PLACEHOLDER:
        return {"Ref": "ExternalId"}
    if isinstance(value, str) and ACCOUNT_PLACEHOLDER in value:
        if "${" in value:  # would be read as a substitution by Fn::Sub
            raise ValueError("unexpected ${ in a policy string")
        return {"Fn::Sub": value.replace(ACCOUNT_PLACEHOLDER, "${CaoAccountId}")}
    if isinstance(value, str) and EXTERNAL_ID_PLACEHOLDER in value:
        raise ValueError("the ExternalId placeholder must be a whole value")
    return value


def template(
    *, stackset: bool = False, defaults: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The template as a dict. `defaults` fills parameter defaults (CaoAccountId, ExternalId)."""
    parameters = {k: dict(v) for k, v in PARAMETERS.items()}
    if stackset:
        # Every member account gets the same role name, so its ARN is predictable.
        del parameters["RoleName"]
    for name, value in (defaults or {}).items():
        if name not in parameters:
            raise KeyError(f"no parameter {name}")
        parameters[name]["Default"] = value
    role_name: Any = STACKSET_ROLE_NAME if stackset else {"Ref": "RoleName"}
    description = (
        "CloudAgencyOps read-only access (StackSet: one role per member account)"
        if stackset
        else "CloudAgencyOps read-only access"
    )
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"{description}: one IAM role that CloudAgencyOps's principal "
        "user/cao-service may assume only with your ExternalId, allowed ce:GetCostAndUsage, "
        "cloudtrail:LookupEvents and organizations:ListAccounts, nothing else.",
        "Parameters": parameters,
        "Resources": {
            ROLE_RESOURCE: {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": role_name,
                    "Description": "Read-only access for CloudAgencyOps (costs, CloudTrail "
                    "management events, organization accounts)",
                    "MaxSessionDuration": MAX_SESSION_DURATION_S,
                    "AssumeRolePolicyDocument": _parameterised(TRUST_POLICY_TEMPLATE),
                    "Policies": [{"PolicyName": POLICY_NAME, "PolicyDocument": ROLE_POLICY}],
                },
            }
        },
        "Outputs": {
            "RoleArn": {
                "Description": "Submit this ARN to CloudAgencyOps to link the account.",
                "Value": {"Fn::GetAtt": [ROLE_RESOURCE, "Arn"]},
            }
        },
    }


def render_yaml(body: Mapping[str, Any]) -> str:
    # Long-form intrinsics ({"Ref": ...}) are valid CloudFormation YAML: no custom tags needed.
    return yaml.safe_dump(dict(body), sort_keys=False, default_flow_style=False, width=100)


def render_json(body: Mapping[str, Any]) -> str:
    return json.dumps(body, indent=2) + "\n"


def role_arn(account_id: str, role_name: str = ROLE_NAME, partition: str = "aws") -> str:
    return f"arn:{partition}:iam::{account_id}:role/{role_name}"


def quick_create_url(
    template_url: str, cao_account_id: str, external_id: str, role_name: str = ROLE_NAME
) -> str:
    """The console link that opens 'Quick create stack' with our template and values filled."""
    query = urllib.parse.urlencode(
        {
            "templateURL": template_url,
            "stackName": STACK_NAME,
            "param_CaoAccountId": cao_account_id,
            "param_ExternalId": external_id,
            "param_RoleName": role_name,
        },
        quote_via=urllib.parse.quote,
        safe="",
    )
    return (
        f"https://console.aws.amazon.com/cloudformation/home?region={STACK_REGION}"
        f"#/stacks/quickcreate?{query}"
    )


def is_https_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme == "https" and bool(parts.netloc)


def stackset_instructions(cao_account_id: str, stackset_path: str) -> dict[str, Any]:
    """How to roll the role out to every member account of an organization."""
    cli = (
        f"aws cloudformation create-stack-set --stack-set-name {STACKSET_NAME} "
        f"--template-body file://stackset.yaml --capabilities CAPABILITY_NAMED_IAM "
        f"--permission-model SERVICE_MANAGED "
        f"--auto-deployment Enabled=true,RetainStacksOnAccountRemoval=false "
        f"--parameters ParameterKey=CaoAccountId,ParameterValue={cao_account_id} "
        f"ParameterKey=ExternalId,ParameterValue=<your ExternalId>\n"
        f"aws cloudformation create-stack-instances --stack-set-name {STACKSET_NAME} "
        f"--deployment-targets OrganizationalUnitIds=<your root OU id, r-...> "
        f"--regions {STACK_REGION}"
    )
    return {
        "role_name": STACKSET_ROLE_NAME,
        "template_path": stackset_path,
        "steps": [
            f"Download the StackSet template from {stackset_path} (your ExternalId and our "
            "account ID are its parameter defaults).",
            "In the organization's management account, open CloudFormation > StackSets > "
            "Create StackSet, with service-managed permissions and automatic deployment "
            "enabled, and upload the template (or run the CLI commands below).",
            "Deploy it to your organization's root OU (or the OUs of the accounts you manage), "
            f"in one region ({STACK_REGION}): IAM roles are global.",
            "StackSets do not deploy to the management account itself: install the single-"
            "account template there (quick-create link) and link it first, so that its "
            "members are discovered.",
            "Then link the discovered members in bulk: POST /api/accounts/discovered/link "
            f"(each as arn:aws:iam::<member id>:role/{STACKSET_ROLE_NAME}).",
        ],
        "cli": cli,
    }


def main(argv: list[str]) -> int:
    """Print the generic template (for publishing to the CAO_TEMPLATE_URL bucket)."""
    if len(argv) != 1 or argv[0] not in ("yaml", "json", "stackset"):
        sys.stderr.write("usage: python -m functions.onboard.templates yaml|json|stackset\n")
        return 2
    kind = argv[0]
    body = template(stackset=kind == "stackset")
    sys.stdout.write(render_json(body) if kind == "json" else render_yaml(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
