"""Redaction by allowlist: one LookupEvents event in, one row of allowlisted fields out.

Pure. The columns of the row are generated from `shared.policy.STORED_CLOUDTRAIL_FIELDS` (the
constant the public list of stored fields comes from too), plus the derived `is_vendor` flag.
Each allowlisted column has exactly one extractor here; the module refuses to import if the
allowlist names a column without one, or if an extractor exists for a column the allowlist does
not name, so what we store can never drift from what we publish.

`CloudTrailEvent` (a JSON string holding requestParameters, responseElements, userAgent, access
key ids, error messages, TLS details, ...) is parsed into a local dict, the allowlisted values
are copied out, and the dict goes out of scope when `redact` returns: nothing else of it is
stored, logged or kept.

Principal name:
- IAM user (and other identities that carry one): `userIdentity.userName`;
- assumed role / federated user: the role-session name, the last segment of the session ARN
  (`arn:aws:sts::<acct>:assumed-role/<role>/<session>`), else the part of `principalId` after
  its colon (`<role id>:<session>`; the role id itself is not kept);
- root: "root";
- an AWS service acting on its own: the service name (`userIdentity.invokedBy`);
- an IAM Identity Center user acting with a bearer token (`IdentityCenterUser`): the Identity
  Store user id `userIdentity.onBehalfOf.userId` (AWS records no ARN and no user name for it;
  `credentialId`, the token's id, is not kept);
- another AWS account (`AWSAccount`, cross-account access to a role of the client): that
  account's id, `userIdentity.accountId` (AWS records no ARN for it; `principalId`, an IAM
  unique id of something in that account, is not kept).

`is_vendor` marks our own access: an assumed-role session whose name starts with our session
prefix (`shared.aws.SESSION_PREFIX`). Deliberately simple: anyone able to assume a role in the
client's account could choose such a session name too, so the flag means "a session named like
ours", which is what a client needs to line up our access with its own trail.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shared.aws import SESSION_PREFIX
from shared.policy import STORED_CLOUDTRAIL_FIELDS
from shared.store.access import EVENT_COLUMNS

Row = tuple[Any, ...]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _event_time(item: Mapping[str, Any], record: Mapping[str, Any]) -> datetime | None:
    value = item.get("EventTime")
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    text = _text(record.get("eventTime"))
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def session_name(identity: Mapping[str, Any]) -> str | None:
    """The role-session (or federated user) name of an identity, if it has one."""
    if identity.get("type") not in ("AssumedRole", "FederatedUser"):
        return None
    arn = _text(identity.get("arn"))
    if arn is not None:
        # assumed-role/<role>/<session>, federated-user/<name>: the name is the last segment.
        resource = arn.split(":", 5)[-1]
        if "/" in resource:
            return _text(resource.rsplit("/", 1)[-1])
    principal_id = _text(identity.get("principalId"))
    if principal_id is not None and ":" in principal_id:
        return _text(principal_id.split(":", 1)[1])
    return None


def principal_name(identity: Mapping[str, Any], session: str | None = None) -> str | None:
    """The name shown for who acted; see the module docstring."""
    kind = identity.get("type")
    if kind == "Root":
        return "root"
    if kind == "AWSService":
        return _text(identity.get("invokedBy"))
    if kind == "IdentityCenterUser":
        on_behalf = identity.get("onBehalfOf")
        user_id = on_behalf.get("userId") if isinstance(on_behalf, Mapping) else None
        return _text(identity.get("userName")) or _text(user_id)
    if kind == "AWSAccount":
        return _text(identity.get("accountId"))
    return session or session_name(identity) or _text(identity.get("userName"))


def is_vendor(identity: Mapping[str, Any], session: str | None = None) -> bool:
    """Whether the identity is an assumed-role session named with our prefix."""
    if identity.get("type") != "AssumedRole":
        return False
    name = session or session_name(identity)
    return name is not None and name.startswith(SESSION_PREFIX)


def _extract(
    item: Mapping[str, Any],
    record: Mapping[str, Any],
    identity: Mapping[str, Any],
    aws_account_id: str,
    region: str,
) -> dict[str, Any]:
    """The allowlisted values, by column: the one place a value is taken from an event."""
    session = session_name(identity)
    return {
        "event_name": _text(item.get("EventName")) or _text(record.get("eventName")),
        "principal_arn": _text(identity.get("arn")),
        "principal_name": principal_name(identity, session),
        "source_ip": _text(record.get("sourceIPAddress")),
        "event_time": _event_time(item, record),
        "event_id": _text(item.get("EventId")) or _text(record.get("eventID")),
        "aws_account_id": aws_account_id,
        "region": region,
        "is_vendor": is_vendor(identity, session),
    }


# The stored row, in the store's column order: the allowlist, then the derived flag. Checked at
# import: the extracted columns are exactly these, so what we store cannot drift from the list.
COLUMNS: tuple[str, ...] = EVENT_COLUMNS
if set(_extract({}, {}, {}, "", "")) != set(COLUMNS) or set(COLUMNS) - {"is_vendor"} != {
    f.column for f in STORED_CLOUDTRAIL_FIELDS
}:  # pragma: no cover
    raise RuntimeError(
        "functions/sync_cloudtrail/redact.py extracts different columns than "
        "shared.policy.STORED_CLOUDTRAIL_FIELDS lists; keep them equal"
    )
_IN_ORDER = operator.itemgetter(*COLUMNS)
_TEXT_BOUNDS: tuple[tuple[int, int], ...] = tuple(
    (COLUMNS.index(f.column), f.max_length) for f in STORED_CLOUDTRAIL_FIELDS
)
_REQUIRED = ("event_id", "event_time", "event_name")  # NOT NULL columns: no row without them
_REQUIRED_AT = tuple(COLUMNS.index(c) for c in _REQUIRED)


def _bounded(value: str, limit: int) -> str | None:
    if "\x00" in value:  # Postgres text cannot hold NUL; one would fail the whole batch
        value = value.replace("\x00", "")
    return value[:limit] or None


def redact(item: Mapping[str, Any], aws_account_id: str, region: str) -> Row | None:
    """The stored row for one LookupEvents event (columns `COLUMNS`), or None if unusable.

    An event lacking an id, a time or a name is dropped (the caller counts it): without them
    it can be neither deduplicated nor shown.
    """
    raw = item.get("CloudTrailEvent")
    record: Any = None
    if isinstance(raw, str):
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
    if not isinstance(record, dict):
        record = {}
    identity = record.get("userIdentity")
    if not isinstance(identity, dict):
        identity = {}
    row = list(_IN_ORDER(_extract(item, record, identity, aws_account_id, region)))
    for i, limit in _TEXT_BOUNDS:
        value = row[i]
        if isinstance(value, str) and (len(value) > limit or "\x00" in value):
            row[i] = _bounded(value, limit)
    for i in _REQUIRED_AT:
        if row[i] is None:
            return None
    return tuple(row)
