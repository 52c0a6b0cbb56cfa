"""Realistic CloudTrail management-event records for the simulated AWS and the demo.

`make_events` produces full CloudTrail records (the JSON that LookupEvents returns in
`CloudTrailEvent`) with the variety the product meets in client accounts: assumed-role sessions
(SSO, CI, admins) with `sessionContext.sessionIssuer`, IAM users, the root user, AWS services
(`userIdentity.type` AWSService, `sourceIPAddress` like "cloudformation.amazonaws.com"),
console sign-ins, failed calls with errorCode/errorMessage, and a few calls from our own role
sessions (session name starting with `our_session_prefix`).

Global-service events (IAM, STS, console sign-in, Cost Explorer, Organizations) are generated
only for us-east-1, where CloudTrail records them. When `planted` is given, it is embedded in
requestParameters, responseElements, userAgent and additionalEventData (each at least once when
`count` allows), so tests can prove that nothing beyond the stored-field allowlist survives.

Output is deterministic for a seed (one `random.Random`, uuids drawn from it) and sorted by
eventTime; eventIDs are unique; times are whole seconds in [start, end). IPs come from the
documentation ranges (RFC 5737), names and account ids are fictional.
"""

from __future__ import annotations

import math
import random
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["make_events"]

_GLOBAL_REGION = "us-east-1"
_ID_ALPHABET = string.ascii_uppercase + "234567"

_USER_NAMES = ("alice", "bob.martin", "ci-deployer", "terraform", "j.doe", "backup-operator")
_HUMAN_ROLES = (
    ("AWSReservedSSO_AdministratorAccess_3f2a9c1b7d4e5f60", "/aws-reserved/sso.amazonaws.com/"),
    ("AWSReservedSSO_ReadOnlyAccess_9b8c7d6e5f4a3b21", "/aws-reserved/sso.amazonaws.com/"),
    ("OrganizationAccountAccessRole", "/"),
    ("GitHubActionsDeploy", "/ci/"),
    ("DeveloperAccess", "/"),
)
_SSO_SESSIONS = ("maria.lopez@client.example", "dev.ops@client.example", "k.tanaka@client.example")
_SERVICES = (
    "cloudformation.amazonaws.com",
    "autoscaling.amazonaws.com",
    "config.amazonaws.com",
    "lambda.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
)
_SDK_AGENTS = (
    "aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/linux#5.15.0-1057-aws md/arch#x86_64 "
    "lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10.213-201.855.amzn2.x86_64 "
    "md/arch#x86_64 lang/python#3.12.2 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.69",
    "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.150.0",
    "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) "
    "terraform-provider-aws/5.42.0 (+https://registry.terraform.io/providers/hashicorp/aws) "
    "aws-sdk-go-v2/1.25.3 os/linux lang/go#1.21.8 md/GOOS#linux md/GOARCH#amd64",
)
_BROWSER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.3 Safari/605.1.15"
)
_OUR_AGENT = (
    "Botocore/1.44.5 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.12.8 md/pyimpl#CPython "
    "cfg/retry-mode#standard app/CloudAgencyOps"
)
_TLS = {
    "tlsVersion": "TLSv1.3",
    "cipherSuite": "TLS_AES_128_GCM_SHA256",
}
_FAILURES = (
    ("ec2.amazonaws.com", "DescribeInstances", "Client.UnauthorizedOperation",
     "You are not authorized to perform this operation. User: {arn} is not authorized to perform:"
     " ec2:DescribeInstances because no identity-based policy allows the ec2:DescribeInstances "
     "action"),
    ("s3.amazonaws.com", "PutBucketPolicy", "AccessDenied", "Access Denied"),
    ("lambda.amazonaws.com", "GetFunction20150331v2", "ResourceNotFoundException",
     "Function not found: arn:aws:lambda:{region}:{account}:function:legacy-export"),
    ("kms.amazonaws.com", "Decrypt", "AccessDeniedException",
     "User: {arn} is not authorized to perform: kms:Decrypt on this resource because the "
     "resource does not exist in this Region, no resource-based policies allow access, or a "
     "resource-based policy explicitly denies access"),
    ("ssm.amazonaws.com", "GetParameters", "ThrottlingException", "Rate exceeded"),
)  # fmt: skip


@dataclass(frozen=True)
class _Principal:
    identity: dict[str, Any]
    arn: str
    user_agent: str
    source_ip: str


# Kinds of event and their weights in the random mix; "ours" and the planted kinds are also
# forced onto a few positions so that small batches still contain them.
_WEIGHTS = {
    "role_read": 30,
    "role_write": 12,
    "user_call": 12,
    "service": 12,
    "service_invoked": 6,
    "failed": 8,
    "console_login": 5,
    "root_call": 2,
    "ours": 2,
}
_PLANTED_KINDS = ("leak_request", "leak_response", "leak_agent", "leak_additional")


def make_events(  # noqa: PLR0917 - the positional order is the agreed interface
    account_id: str,
    region: str,
    start: datetime,
    end: datetime,
    count: int,
    seed: int,
    planted: str | None = None,
    our_session_prefix: str = "cao-",
    *,
    our_role_name: str = "CloudAgencyOpsReadOnly",
) -> list[dict[str, Any]]:
    """`count` CloudTrail records for account_id/region with times in [start, end).

    start and end must be timezone-aware. Deterministic for (arguments, seed).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware datetimes")
    first, stop = math.ceil(start.timestamp()), math.ceil(end.timestamp())
    if count < 0:
        raise ValueError("count must be >= 0")
    if count and stop <= first:
        raise ValueError("the window [start, end) holds no whole second")
    generator = _Generator(
        account_id=account_id,
        region=region,
        rng=random.Random(seed),
        planted=planted,
        our_prefix=our_session_prefix,
        our_role=our_role_name,
    )
    kinds = generator.kinds(count)
    events = [generator.event(kind, generator.rng.randrange(first, stop)) for kind in kinds]
    events.sort(key=lambda e: (e["eventTime"], e["eventID"]))
    return events


class _Generator:
    def __init__(
        self,
        *,
        account_id: str,
        region: str,
        rng: random.Random,
        planted: str | None,
        our_prefix: str,
        our_role: str,
    ) -> None:
        self.account = account_id
        self.region = region
        self.rng = rng
        self.planted = planted
        self.our_prefix = our_prefix
        self.our_role = our_role
        self.is_global_region = region == _GLOBAL_REGION
        self.used_ids: set[str] = set()
        self.users = [self._user(name) for name in rng.sample(_USER_NAMES, 3)]
        self.role_ids = {name: "AROA" + self._token(17) for name, _ in _HUMAN_ROLES}
        self.role_ids[our_role] = "AROA" + self._token(17)
        self.our_ip = self._ip()

    # -- building blocks -----------------------------------------------------------------

    def _token(self, length: int) -> str:
        return "".join(self.rng.choice(_ID_ALPHABET) for _ in range(length))

    def _uuid(self) -> str:
        while True:
            value = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def _ip(self) -> str:
        net = self.rng.choice(("192.0.2", "198.51.100", "203.0.113"))
        return f"{net}.{self.rng.randrange(1, 255)}"

    def _user(self, name: str) -> _Principal:
        arn = f"arn:aws:iam::{self.account}:user/{name}"
        identity = {
            "type": "IAMUser",
            "principalId": "AIDA" + self._token(17),
            "arn": arn,
            "accountId": self.account,
            "accessKeyId": "AKIA" + self._token(16),
            "userName": name,
        }
        return _Principal(identity, arn, self.rng.choice(_SDK_AGENTS), self._ip())

    def _role_session(
        self, role: str, path: str, session: str, when: str, invoked_by: str | None = None
    ) -> _Principal:
        if role not in self.role_ids:
            self.role_ids[role] = "AROA" + self._token(17)
        role_id = self.role_ids[role]
        arn = f"arn:aws:sts::{self.account}:assumed-role/{role}/{session}"
        identity: dict[str, Any] = {
            "type": "AssumedRole",
            "principalId": f"{role_id}:{session}",
            "arn": arn,
            "accountId": self.account,
            "accessKeyId": "ASIA" + self._token(16),
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role_id,
                    "arn": f"arn:aws:iam::{self.account}:role{path}{role}",
                    "accountId": self.account,
                    "userName": role,
                },
                "webIdFederationData": {},
                "attributes": {"creationDate": when, "mfaAuthenticated": "false"},
            },
        }
        if invoked_by:
            identity["invokedBy"] = invoked_by
            return _Principal(identity, arn, invoked_by, invoked_by)
        return _Principal(identity, arn, self.rng.choice(_SDK_AGENTS), self._ip())

    def _human_session(self, when: str) -> _Principal:
        role, path = self.rng.choice(_HUMAN_ROLES)
        if role.startswith("AWSReservedSSO"):
            session = self.rng.choice(_SSO_SESSIONS)
        elif role == "GitHubActionsDeploy":
            session = "GitHubActions"
        else:
            session = f"botocore-session-{self.rng.randrange(1_690_000_000, 1_730_000_000)}"
        return self._role_session(role, path, session, when)

    def _root(self, console: bool) -> _Principal:
        arn = f"arn:aws:iam::{self.account}:root"
        identity: dict[str, Any] = {
            "type": "Root",
            "principalId": self.account,
            "arn": arn,
            "accountId": self.account,
        }
        if not console:
            identity["accessKeyId"] = "ASIA" + self._token(16)
        return _Principal(identity, arn, _BROWSER_AGENT, self._ip())

    # -- the mix -------------------------------------------------------------------------

    def kinds(self, count: int) -> list[str]:
        weights = dict(_WEIGHTS)
        if self.planted is not None:
            # Beyond the forced positions, the odd event leaks it too, as real trails do.
            weights.update(dict.fromkeys(_PLANTED_KINDS, 1))
        names = list(weights)
        kinds = self.rng.choices(names, weights=[weights[n] for n in names], k=count)
        forced = ["ours"] * max(1, count // 40)
        if self.planted is not None:
            forced += list(_PLANTED_KINDS)
        forced = forced[:count]
        for position, kind in zip(self.rng.sample(range(count), len(forced)), forced, strict=True):
            kinds[position] = kind
        return kinds

    def event(self, kind: str, epoch: int) -> dict[str, Any]:
        when = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        builders: dict[str, Callable[[str], dict[str, Any]]] = {
            "role_read": self._role_read,
            "role_write": self._role_write,
            "user_call": self._user_call,
            "service": self._service,
            "service_invoked": self._service_invoked,
            "failed": self._failed,
            "console_login": self._console_login,
            "root_call": self._root_call,
            "ours": self._ours,
            "leak_request": self._leak_request,
            "leak_response": self._leak_response,
            "leak_agent": self._leak_agent,
            "leak_additional": self._leak_additional,
        }
        record = builders[kind](when)
        record["eventTime"] = when
        record.setdefault("readOnly", False)
        return self._finish(record)

    def _finish(self, partial: dict[str, Any]) -> dict[str, Any]:
        """Order the fields as CloudTrail writes them and fill the common ones."""
        principal: _Principal = partial.pop("principal")
        event_type = partial.pop("eventType", "AwsApiCall")
        record: dict[str, Any] = {
            "eventVersion": "1.08" if event_type == "AwsConsoleSignIn" else "1.09",
            "userIdentity": principal.identity,
            "eventTime": partial.pop("eventTime"),
            "eventSource": partial.pop("eventSource"),
            "eventName": partial.pop("eventName"),
            "awsRegion": self.region,
            "sourceIPAddress": partial.pop("sourceIPAddress", principal.source_ip),
            "userAgent": partial.pop("userAgent", principal.user_agent),
        }
        for optional in ("errorCode", "errorMessage"):
            if optional in partial:
                record[optional] = partial.pop(optional)
        record["requestParameters"] = partial.pop("requestParameters", None)
        record["responseElements"] = partial.pop("responseElements", None)
        if "additionalEventData" in partial:
            record["additionalEventData"] = partial.pop("additionalEventData")
        record["requestID"] = self._uuid()
        record["eventID"] = self._uuid()
        record["readOnly"] = partial.pop("readOnly")
        if "resources" in partial:
            record["resources"] = partial.pop("resources")
        record["eventType"] = event_type
        record["managementEvent"] = True
        record["recipientAccountId"] = self.account
        record["eventCategory"] = "Management"
        if event_type == "AwsApiCall" and principal.identity.get("type") != "AWSService":
            record["tlsDetails"] = {
                **_TLS,
                "clientProvidedHostHeader": f"{record['eventSource'].split('.')[0]}."
                f"{self.region}.amazonaws.com",
            }
        record.update(partial)
        return record

    def _role_read(self, when: str) -> dict[str, Any]:
        calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("ec2.amazonaws.com", "DescribeInstances", {"instancesSet": {}, "filterSet": {}}),
            ("ec2.amazonaws.com", "DescribeSecurityGroups", {"securityGroupIdSet": {}}),
            ("lambda.amazonaws.com", "ListFunctions20150331", None),
            ("rds.amazonaws.com", "DescribeDBInstances", None),
            ("monitoring.amazonaws.com", "DescribeAlarms", {"maxRecords": 100}),
            ("ssm.amazonaws.com", "GetParameter", {"name": "/app/feature-flags"}),
            ("s3.amazonaws.com", "ListBuckets", {"Host": "s3.amazonaws.com"}),
        ]
        if self.is_global_region:
            calls.append(("iam.amazonaws.com", "ListRoles", {"maxItems": 100}))
        source, name, params = self.rng.choice(calls)
        return {
            "principal": self._human_session(when),
            "eventSource": source,
            "eventName": name,
            "requestParameters": params,
            "readOnly": True,
        }

    def _role_write(self, when: str) -> dict[str, Any]:
        instance = f"i-0{self._token(16).lower()}"
        calls: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = [
            (
                "ec2.amazonaws.com",
                "RunInstances",
                {"instanceType": "t3.micro", "instancesSet": {"items": [{"imageId": "ami-0c55"}]}},
                {"instancesSet": {"items": [{"instanceId": instance}]}},
            ),
            (
                "ec2.amazonaws.com",
                "AuthorizeSecurityGroupIngress",
                {"groupId": "sg-0a1b2c3d", "ipPermissions": {"items": [{"fromPort": 443}]}},
                {"_return": True},
            ),
            (
                "s3.amazonaws.com",
                "CreateBucket",
                {"bucketName": f"client-logs-{self._token(6).lower()}"},
                None,
            ),
            (
                "ssm.amazonaws.com",
                "PutParameter",
                {"name": "/app/db/host", "type": "String", "overwrite": True},
                {"version": self.rng.randrange(1, 40), "tier": "Standard"},
            ),
        ]
        source, name, params, response = self.rng.choice(calls)
        return {
            "principal": self._human_session(when),
            "eventSource": source,
            "eventName": name,
            "requestParameters": params,
            "responseElements": response,
        }

    def _user_call(self, when: str) -> dict[str, Any]:
        user = self.rng.choice(self.users)
        calls: list[tuple[str, str, dict[str, Any] | None, bool]] = [
            ("ec2.amazonaws.com", "DescribeVpcs", {"vpcSet": {}}, True),
            ("s3.amazonaws.com", "PutBucketVersioning", {"bucketName": "client-artifacts"}, False),
            ("cloudformation.amazonaws.com", "DescribeStacks", None, True),
        ]
        if self.is_global_region:
            calls += [
                ("iam.amazonaws.com", "ListUsers", None, True),
                (
                    "iam.amazonaws.com",
                    "CreateAccessKey",
                    {"userName": user.arn.split("/")[-1]},
                    False,
                ),
            ]
        source, name, params, read_only = self.rng.choice(calls)
        return {
            "principal": user,
            "eventSource": source,
            "eventName": name,
            "requestParameters": params,
            "readOnly": read_only,
        }

    def _service(self, when: str) -> dict[str, Any]:
        """An AWS service acting on its own (userIdentity.type AWSService)."""
        service = self.rng.choice(_SERVICES)
        principal = _Principal(
            {"type": "AWSService", "invokedBy": service}, service, service, service
        )
        if self.is_global_region and self.rng.random() < 0.5:
            role = f"arn:aws:iam::{self.account}:role/service-role/{service.split('.')[0]}-exec"
            return {
                "principal": principal,
                "eventSource": "sts.amazonaws.com",
                "eventName": "AssumeRole",
                "requestParameters": {"roleArn": role, "roleSessionName": self._token(10)},
                "responseElements": {"credentials": {"accessKeyId": "ASIA" + self._token(16)}},
                "resources": [{"accountId": self.account, "type": "AWS::IAM::Role", "ARN": role}],
                "eventType": "AwsApiCall",
            }
        key = f"arn:aws:kms:{self.region}:{self.account}:key/{self._uuid()}"
        return {
            "principal": principal,
            "eventSource": "kms.amazonaws.com",
            "eventName": self.rng.choice(("Decrypt", "GenerateDataKey")),
            "requestParameters": {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
            "readOnly": True,
            "resources": [{"accountId": self.account, "type": "AWS::KMS::Key", "ARN": key}],
            "eventType": "AwsApiCall",
        }

    def _service_invoked(self, when: str) -> dict[str, Any]:
        """A service acting through a role on behalf of someone (invokedBy, service source IP)."""
        service = self.rng.choice(_SERVICES[:2])
        principal = self._role_session(
            "cfn-stack-execution", "/", self._token(12), when, invoked_by=service
        )
        return {
            "principal": principal,
            "eventSource": "ec2.amazonaws.com",
            "eventName": self.rng.choice(("CreateTags", "RunInstances", "CreateSecurityGroup")),
            "requestParameters": {"resourcesSet": {}, "tagSet": {}},
            "responseElements": {"_return": True},
        }

    def _failed(self, when: str) -> dict[str, Any]:
        principal = self.rng.choice([*self.users, self._human_session(when)])
        source, name, code, message = self.rng.choice(_FAILURES)
        return {
            "principal": principal,
            "eventSource": source,
            "eventName": name,
            "errorCode": code,
            "errorMessage": message.format(
                arn=principal.arn, region=self.region, account=self.account
            ),
            "requestParameters": None,
            "readOnly": name.startswith(("Describe", "Get", "List")),
        }

    def _console_login(self, when: str) -> dict[str, Any]:
        if not self.is_global_region:
            return self._role_read(when)
        success = self.rng.random() < 0.8
        use_root = self.rng.random() < 0.25
        principal = self._root(console=True) if use_root else self.rng.choice(self.users)
        if not use_root:
            identity = {k: v for k, v in principal.identity.items() if k != "accessKeyId"}
            principal = _Principal(identity, principal.arn, _BROWSER_AGENT, principal.source_ip)
        record: dict[str, Any] = {
            "principal": principal,
            "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin",
            "userAgent": _BROWSER_AGENT,
            "responseElements": {"ConsoleLogin": "Success" if success else "Failure"},
            "additionalEventData": {
                "LoginTo": "https://console.aws.amazon.com/console/home",
                "MobileVersion": "No",
                "MFAUsed": "Yes" if use_root else self.rng.choice(("Yes", "No")),
            },
            "eventType": "AwsConsoleSignIn",
        }
        if not success:
            record["errorMessage"] = "Failed authentication"
        return record

    def _root_call(self, when: str) -> dict[str, Any]:
        if not self.is_global_region:
            return self._user_call(when)
        return {
            "principal": self._root(console=False),
            "eventSource": "iam.amazonaws.com",
            "eventName": self.rng.choice(("GetAccountSummary", "ListMFADevices")),
            "readOnly": True,
            "sessionCredentialFromConsole": "true",
        }

    def _ours(self, when: str) -> dict[str, Any]:
        session = f"{self.our_prefix}sync-{self._token(8).lower()}"
        principal = self._role_session(self.our_role, "/", session, when)
        principal = _Principal(principal.identity, principal.arn, _OUR_AGENT, self.our_ip)
        calls: list[tuple[str, str, dict[str, Any]]] = [
            ("cloudtrail.amazonaws.com", "LookupEvents", {"maxResults": 50}),
        ]
        if self.is_global_region:
            calls += [
                ("ce.amazonaws.com", "GetCostAndUsage", {"granularity": "MONTHLY"}),
                ("organizations.amazonaws.com", "ListAccounts", {"maxResults": 20}),
            ]
        source, name, params = self.rng.choice(calls)
        return {
            "principal": principal,
            "eventSource": source,
            "eventName": name,
            "requestParameters": params,
            "readOnly": True,
        }

    # -- planted values (only called when planted is set) ------------------------------------

    def _leak_request(self, when: str) -> dict[str, Any]:
        return {
            "principal": self._human_session(when),
            "eventSource": "lambda.amazonaws.com",
            "eventName": "UpdateFunctionConfiguration20150331v2",
            "requestParameters": {
                "functionName": "billing-export",
                "environment": {"variables": {"DB_PASSWORD": self.planted, "STAGE": "prod"}},
            },
            "responseElements": {
                "functionName": "billing-export",
                "lastUpdateStatus": "InProgress",
            },
        }

    def _leak_response(self, when: str) -> dict[str, Any]:
        return {
            "principal": self._human_session(when),
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": "CreateSecret",
            "requestParameters": {"name": "prod/api-token", "clientRequestToken": self._uuid()},
            "responseElements": {
                "arn": f"arn:aws:secretsmanager:{self.region}:{self.account}:secret:prod/api-token",
                "name": "prod/api-token",
                "versionId": self._uuid(),
                "secretString": self.planted,
            },
        }

    def _leak_agent(self, when: str) -> dict[str, Any]:
        user = self.rng.choice(self.users)
        return {
            "principal": user,
            "eventSource": "ec2.amazonaws.com",
            "eventName": "DescribeRegions",
            "userAgent": f"{user.user_agent} md/token#{self.planted}",
            "requestParameters": {"regionSet": {}},
            "readOnly": True,
        }

    def _leak_additional(self, when: str) -> dict[str, Any]:
        return {
            "principal": self._human_session(when),
            "eventSource": "s3.amazonaws.com",
            "eventName": "PutBucketPolicy",
            "requestParameters": {"bucketName": "client-artifacts", "policy": ""},
            "additionalEventData": {
                "SignatureVersion": "SigV4",
                "CipherSuite": "TLS_AES_128_GCM_SHA256",
                "bytesTransferredIn": 0,
                "AuthenticationMethod": "AuthHeader",
                "x-amz-id-2": self.planted,
            },
        }
