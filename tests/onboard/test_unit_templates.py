"""The CloudFormation template, and the policies it carries, against the security page.

`security_page_role_policy.json` and `security_page_trust_policy.json` beside this file are the
two JSON blocks of the public security page, copied verbatim from
../shared/seed/security-page.txt (the handouts beside the clone): "Role policy (paste as-is)"
and "Trust policy (replace two placeholders)". When that page changes, copy them again.
"""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint import api as cfnlint_api

from functions.onboard import templates
from shared.policy import (
    ACCOUNT_PLACEHOLDER,
    EXTERNAL_ID_PLACEHOLDER,
    ROLE_POLICY,
    TRUST_POLICY_TEMPLATE,
    trust_policy,
)

HERE = Path(__file__).parent
PAGE_ROLE_POLICY = json.loads((HERE / "security_page_role_policy.json").read_text())
PAGE_TRUST_POLICY = json.loads((HERE / "security_page_trust_policy.json").read_text())
PAGE = Path(__file__).resolve().parents[3] / "shared" / "seed" / "security-page.txt"


def _fill(value: Any, account: str, external_id: str) -> Any:
    text = json.dumps(value)
    text = text.replace(ACCOUNT_PLACEHOLDER, account).replace(EXTERNAL_ID_PLACEHOLDER, external_id)
    return json.loads(text)


def _resolve(value: Any, params: dict[str, str]) -> Any:
    """CloudFormation's Ref and Fn::Sub over parameters (all this template uses)."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return params[value["Ref"]]
        if set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"]
            for name, param in params.items():
                text = text.replace("${" + name + "}", param)
            assert "${" not in text
            return text
        return {k: _resolve(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, params) for v in value]
    return value


def test_the_role_policy_is_the_one_on_the_security_page() -> None:
    assert ROLE_POLICY == PAGE_ROLE_POLICY


def test_the_trust_policy_is_the_one_on_the_security_page() -> None:
    assert TRUST_POLICY_TEMPLATE == PAGE_TRUST_POLICY
    filled = trust_policy("123456789012", "abc-123")
    assert filled == _fill(PAGE_TRUST_POLICY, "123456789012", "abc-123")


@pytest.mark.skipif(not PAGE.exists(), reason="the handouts are not beside this clone")
def test_the_fixtures_are_still_verbatim_copies_of_the_page() -> None:
    page = PAGE.read_text()
    for fixture in ("security_page_role_policy.json", "security_page_trust_policy.json"):
        assert (HERE / fixture).read_text().strip() in page


@pytest.mark.parametrize(
    "text",
    [
        templates.render_yaml(templates.template()),
        templates.render_json(templates.template()),
        templates.render_yaml(
            templates.template(
                stackset=True, defaults={"CaoAccountId": "123456789012", "ExternalId": "x-1"}
            )
        ),
    ],
    ids=["yaml", "json", "stackset-yaml-with-defaults"],
)
def test_cfn_lint_passes(text: str) -> None:
    matches = cfnlint_api.lint(text)
    assert matches == [], [str(m) for m in matches]


@pytest.mark.parametrize("stackset", [False, True])
def test_the_template_attaches_exactly_the_pages_policies_and_nothing_else(stackset: bool) -> None:
    for text, load in (
        (templates.render_yaml(templates.template(stackset=stackset)), yaml.safe_load),
        (templates.render_json(templates.template(stackset=stackset)), json.loads),
    ):
        body = load(text)
        assert list(body["Resources"]) == [templates.ROLE_RESOURCE]
        role = body["Resources"][templates.ROLE_RESOURCE]
        assert role["Type"] == "AWS::IAM::Role"
        props = role["Properties"]
        assert set(props) == {
            "RoleName",
            "Description",
            "MaxSessionDuration",
            "AssumeRolePolicyDocument",
            "Policies",
        }
        params = {"CaoAccountId": "210987654321", "ExternalId": "agency-secret-value"}
        assert _resolve(props["AssumeRolePolicyDocument"], params) == _fill(
            PAGE_TRUST_POLICY, "210987654321", "agency-secret-value"
        )
        assert len(props["Policies"]) == 1
        assert props["Policies"][0]["PolicyDocument"] == PAGE_ROLE_POLICY
        if stackset:
            assert props["RoleName"] == templates.STACKSET_ROLE_NAME
            assert "RoleName" not in body["Parameters"]
        else:
            assert props["RoleName"] == {"Ref": "RoleName"}
            assert body["Parameters"]["RoleName"]["Default"] == "CloudAgencyOpsReadOnly"


def test_the_installed_role_carries_the_pages_policies_and_nothing_else(sim: Any) -> None:
    from moto.iam.models import iam_backends  # noqa: PLC0415

    from tests.support.onboarding import install_role, new_account_id  # noqa: PLC0415

    account = new_account_id()
    arn = install_role(sim, account, "agency-secret-value")
    role = iam_backends[account]["aws"].get_role(templates.ROLE_NAME)
    assert role.arn == arn
    assert json.loads(role.assume_role_policy_document) == _fill(
        PAGE_TRUST_POLICY, "123456789012", "agency-secret-value"
    )
    assert role.policies == {templates.POLICY_NAME: PAGE_ROLE_POLICY}
    assert not role.managed_policies
    assert not role.permissions_boundary


def test_the_quick_create_link_prefills_the_template_and_parameters() -> None:
    url = templates.quick_create_url(
        "https://bucket.s3.amazonaws.com/cao/role.yaml", "123456789012", "ab_c-9"
    )
    base, _, fragment = url.partition("#")
    assert base == "https://console.aws.amazon.com/cloudformation/home?region=us-east-1"
    route, _, query = fragment.partition("?")
    assert route == "/stacks/quickcreate"
    params = dict(urllib.parse.parse_qsl(query))
    assert params == {
        "templateURL": "https://bucket.s3.amazonaws.com/cao/role.yaml",
        "stackName": "CloudAgencyOps",
        "param_CaoAccountId": "123456789012",
        "param_ExternalId": "ab_c-9",
        "param_RoleName": "CloudAgencyOpsReadOnly",
    }


def test_defaults_are_only_accepted_for_existing_parameters() -> None:
    with pytest.raises(KeyError):
        templates.template(stackset=True, defaults={"RoleName": "Other"})


def test_the_publishing_command_prints_each_template(capsys: pytest.CaptureFixture[str]) -> None:
    assert templates.main(["json"]) == 0
    assert json.loads(capsys.readouterr().out) == templates.template()
    assert templates.main(["nope"]) == 2
