"""What changed: the CloudTrail write events behind an anomaly, ranked (pure, but for loading
the checked-in operations.json once).

**Window.** The growth was recorded between two snapshots (the anomaly's span). Cost Explorer
shows spend 24-48 hours late, so what grew in the span may have started up to 48 hours before
it: the window is [span start - `LAG`, span end] (with a 48-hour span, about 4 days).

**Write events.** An event name is a write when it starts with one of `WRITE_PREFIXES`
(Create, Run, Start, Put, Modify, Update, ...: the verbs that create, start or grow a resource)
and is not one of `NOT_WRITES` (sign-ins, session and token calls). Reads (Describe, Get, List)
and deletions (Delete, Terminate, Stop: they lower cost) are not listed.

**Grouping and ranking.** Events are grouped by principal (ARN and name) and event name. The
anomaly's Cost Explorer service maps to AWS services (`services.CE_SERVICES`); a group ranks:

1. `service`: the name is an operation of one of those services and of no other botocore
   service (RunInstances for EC2);
2. `shared`: an operation of one of those services that other services define too
   (CreateTags, TagResource): we do not store `eventSource`, so it may belong to another;
3. `other`: not an operation of those services;

then by event count, most first. The regions whose CloudTrail we read for the account are shown
with the groups: an event in a region we do not read cannot be listed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Literal

from functions.alerts.services import CE_SERVICES
from shared.store.alerts import EventGroup

LAG = timedelta(hours=48)
WRITE_PREFIXES = (
    "Allocate",
    "Associate",
    "Attach",
    "Copy",
    "Create",
    "Enable",
    "Import",
    "Increase",
    "Launch",
    "Modify",
    "Purchase",
    "Put",
    "Register",
    "Request",
    "Restore",
    "Run",
    "Start",
    "Update",
)
NOT_WRITES = frozenset({"StartSession", "ConsoleLogin", "CreateToken", "StartQuery"})
# The same rule in SQL (a constant, never request text): a name starting with a prefix.
WRITE_PATTERN = "^(" + "|".join(WRITE_PREFIXES) + ")[A-Z0-9]"

Match = Literal["service", "shared", "other"]
_RANK: dict[Match, int] = {"service": 0, "shared": 1, "other": 2}
_OPERATIONS = Path(__file__).with_name("operations.json")


@dataclass(frozen=True)
class Operations:
    by_service: dict[str, frozenset[str]]
    services_defining: dict[str, int]


@cache
def operations() -> Operations:
    """operations.json (generated from botocore's models; see devstack/gen_operations.py)."""
    document = json.loads(_OPERATIONS.read_text())
    return Operations(
        {name: frozenset(ops) for name, ops in document["services"].items()},
        {name: int(n) for name, n in document["services_defining"].items()},
    )


def is_write(event_name: str) -> bool:
    """A prefix of WRITE_PREFIXES followed by a capital or a digit (Run|Instances, not
    Runbook), and not one of NOT_WRITES."""
    if event_name in NOT_WRITES:
        return False
    for prefix in WRITE_PREFIXES:
        rest = event_name[len(prefix) :]
        if event_name.startswith(prefix) and rest[:1] and (rest[0].isupper() or rest[0].isdigit()):
            return True
    return False


def match(ce_service: str, event_name: str, ops: Operations) -> tuple[Match, int]:
    """How an event name relates to a Cost Explorer service, and how many botocore services
    define an operation of that name (0: none of the mapped ones)."""
    services = CE_SERVICES.get(ce_service, ())
    if not any(event_name in ops.by_service.get(s, frozenset()) for s in services):
        return "other", ops.services_defining.get(event_name, 0)
    defining = ops.services_defining.get(event_name, 1)
    return ("service" if defining <= 1 else "shared"), defining


@dataclass(frozen=True)
class Ranked:
    group: EventGroup
    match: Match
    services_defining: int


def rank(ce_service: str, groups: Sequence[EventGroup]) -> list[Ranked]:
    """The write groups, most likely to explain the service's growth first."""
    ops = operations()
    out = []
    for g in groups:
        if not is_write(g.event_name):
            continue
        kind, defining = match(ce_service, g.event_name, ops)
        out.append(Ranked(g, kind, defining))
    out.sort(key=lambda r: (_RANK[r.match], -r.group.count, r.group.event_name))
    return out
