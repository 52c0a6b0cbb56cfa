"""A simulated AWS for tests and the local demo: moto's server plus what moto lacks.

`SimulatedAws` runs moto's `ThreadedMotoServer` on 127.0.0.1 (a free port) inside the calling
process. Production code reaches it like real AWS: plain botocore clients whose `endpoint_url` is
`sim.endpoint_url`. On top of moto it adds, only while a simulator is started:

- **AssumeRole trust enforcement**: the role must exist in the target account, its trust policy
  must allow the caller (resolved from the request's access key) with `sts:AssumeRole`, and an
  `sts:ExternalId` condition must match. Every refusal is the same `AccessDenied` (HTTP 403),
  whether or not the role exists. DurationSeconds, RoleSessionName and ExternalId are validated.
- **cloudtrail:LookupEvents** over events stored with `put_events` (moto has no implementation),
  on the simulator's own clock (`clock`): an event is visible only once delivered (its time plus
  the `delivery_delay` drawn for it), never when older than 90 days, and a NextToken expires
  (`lookup_token_ttl_s`). `interrupt_lookups` makes a run's later calls fail (throttle, outage).
- **ce:GetCostAndUsage** over a monthly cost ledger (`put_cost`) instead of moto's FIFO queue of
  canned answers: TimePeriod, MONTHLY granularity, Metrics, up to two GroupBy of SERVICE /
  LINKED_ACCOUNT, a simple Filter, NextPageToken paging, organization visibility. A page token
  is bound to the caller's account and the request's other parameters (another account's, or
  an expired one after `ce_token_ttl_s`: InvalidNextTokenException; changed parameters:
  RequestChangedException). Dates are
  checked against the simulator's `clock` as AWS checks them against today: no Start after
  today, no End past the first day of next month, no Start before the history Cost Explorer
  keeps (`ce_history_months`: the current month and the 13 before it by default; 38 with
  multi-year data enabled). The current month is always Estimated, even with no cost yet.
  Page size (`ce_page_size`, groups per page) is settable: AWS does not document its own.
- **organizations:ListAccounts** refusals that moto does not make (not in an organization;
  member that is neither the management account nor a delegated administrator; MaxResults
  outside 1-20).
- **LookupEvents throttling** as AWS documents it: at most `lookup_events_rate` (2) requests per
  second per account and region, measured on `monotonic` over any one-second window; beyond it a
  `ThrottlingException` (HTTP 400). Throttled requests do not count against the quota.
- **Faults, stalls and latency** answered by the server, so botocore's real retry, timeout and
  error parsing run. A stall holds the answer for a while (a hung connection: the client's read
  timeout fires first); stalls end early when the simulator is reset or stopped.
- **A call log** of every request answered, for request-count assertions.

Accounts. moto keys its state by account id and derives the caller's account from the access
key: keys of IAM users created in account A and keys returned by assuming a role of account A
both act in A; unknown keys (e.g. dummy env credentials) act as root of moto's default account
123456789012, which is also OUR account (the one holding the `cao-service` user).

Organizations. The management account's view comes from moto's organizations backend, seeded
with `create_organization` (member ids chosen by the caller) and `register_delegated_admin`.
Cost Explorer uses the same data: a management account sees its members' ledger rows.

What is not simulated: IAM permission policies (only trust policies are evaluated), CE DAILY and
HOURLY granularity, CE grouping other than SERVICE / LINKED_ACCOUNT, trust-policy conditions
other than `StringEquals`/`StringLike`, their negations and `Null` on `sts:ExternalId` (any
other condition fails closed).

moto's state is process-global (shared by every simulator and by `mock_aws` in the same
process); the stores added here (events, ledger, faults, calls) belong to one `SimulatedAws`.
Seeding helpers act as the target account's own administrator through moto's `x-moto-account-id`
request header (or moto's backends directly for organizations), bypassing the trust check; such
requests are marked internal and are neither logged nor subject to faults.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hashlib
import json
import os
import re
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fnmatch import fnmatchcase
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.common_types import TYPE_RESPONSE
from moto.core.responses import BaseResponse
from moto.core.utils import get_service_model
from moto.iam.models import iam_backends
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.organizations.models import organizations_backends
from moto.sts.models import sts_backends
from werkzeug.serving import make_server

__all__ = [
    "DEFAULT_ACCOUNT_ID",
    "Fault",
    "FaultInjector",
    "LookupInterruption",
    "SimCall",
    "SimulatedAws",
    "delivery_delays",
]

# AWS's documented quota of cloudtrail:LookupEvents: 2 requests per second per account per region.
LOOKUP_EVENTS_RATE = 2.0

# moto's DEFAULT_ACCOUNT_ID ("123456789012") is where unknown access keys act; it is OUR account.
OUR_ACCOUNT_ID: str = DEFAULT_ACCOUNT_ID

_ACCOUNT_ID_RE = re.compile(r"^\d{12}$")
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
_ROLE_ARN_RE = re.compile(r"^arn:(aws[\w-]*):iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?[\w+=,.@-]+$")
_ROOT_ARN_RE = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):root$")
_SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$", re.ASCII)
_EXTERNAL_ID_RE = re.compile(r"^[\w+=,.@:/-]{2,1224}$", re.ASCII)

# Requests sent by the seeding helpers carry this header: not logged, never faulted.
_INTERNAL_HEADER = "x-cao-simaws-internal"
_SEED_ACCESS_KEY = "AKIAFAKESIMSEEDER000"  # a fake key id, never a real one

_LOOKUP_ATTRIBUTE_KEYS = frozenset(
    {
        "EventId",
        "EventName",
        "ReadOnly",
        "Username",
        "ResourceType",
        "ResourceName",
        "EventSource",
        "AccessKeyId",
    }
)
_CE_METRICS = frozenset(
    {
        "AmortizedCost",
        "BlendedCost",
        "NetAmortizedCost",
        "NetUnblendedCost",
        "NormalizedUsageAmount",
        "UnblendedCost",
        "UsageQuantity",
    }
)
_CE_QUANTITY_METRICS = frozenset({"NormalizedUsageAmount", "UsageQuantity"})
# Cost Explorer keeps the current month and the 13 before it; multi-year data (an opt-in
# preference of the management account) extends that to 38 months, monthly granularity only.
CE_DEFAULT_HISTORY_MONTHS = 14
CE_MULTI_YEAR_HISTORY_MONTHS = 38
# organizations:ListAccounts MaxResults (API reference: 1-20).
_ORG_MAX_RESULTS = 20
_CE_DIMENSIONS = ("SERVICE", "LINKED_ACCOUNT")

# LookupEvents "returns events that occurred in the last 90 days" (CloudTrail API reference).
LOOKUP_HORIZON = timedelta(days=90)
# AWS documents that pagination tokens expire; LookupEvents states no lifetime, and 24 hours is
# the one AWS documents for its other NextTokens (CloudWatch Logs, Resource Explorer, ...). A
# sync run lives at most 300 s, so it never holds a token anywhere near that long.
LOOKUP_TOKEN_TTL_S = 24 * 3600.0
# GetCostAndUsage's NextPageToken: AWS documents no lifetime either. One hour here, shorter than
# LookupEvents', so that code depending on an old token meets the refusal in tests: the cost
# sync resumes from a kept token and must fall back when it is refused.
CE_TOKEN_TTL_S = 3600.0


# --------------------------------------------------------------------------------------------
# Public records: call log and faults
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimCall:
    """One request the simulator answered (seeding requests excluded)."""

    service: str  # moto's / botocore's service name: "sts", "ce", "cloudtrail", ...
    operation: str  # API operation name: "AssumeRole", "GetCostAndUsage", ...
    account_id: str  # the caller's account (an assumed role acts in the role's account)
    region: str  # the region the request was signed for
    params: dict[str, Any]  # request parameters (JSON body, or the flat query string)
    at: float = 0.0  # when it arrived, on the simulator's `monotonic` clock


@dataclass
class Fault:
    """An error the server answers instead of the next `remaining` matching calls."""

    service: str
    operation: str
    code: str
    status: int
    message: str
    remaining: int
    account_id: str | None = None  # None: any caller account
    stall_s: float = 0.0  # > 0: hold the answer this long, then answer normally (no error)
    after: int = 0  # matching calls still answered normally before this fault starts


class FaultInjector:
    """Server-side faults: matching requests get an AWS-shaped error response.

    Because the error is produced by the server, botocore parses it and applies its real retry
    policy (e.g. `standard` mode retries ThrottlingException and 5xx; each retry is one more
    matching call and consumes one more `times`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        service: str,
        operation: str,
        code: str,
        *,
        status: int = 400,
        message: str | None = None,
        times: int = 1,
        account_id: str | None = None,
        after: int = 0,
    ) -> Fault:
        """Answer the next `times` calls of service/operation (from account_id, if given),
        once `after` more of them have been answered normally (a failure at page N)."""
        if times < 1 or after < 0:
            raise ValueError("times must be at least 1, after at least 0")
        if not 400 <= status <= 599:
            raise ValueError("a fault needs an HTTP error status (4xx or 5xx)")
        fault = Fault(
            service=service,
            operation=operation,
            code=code,
            status=status,
            message=message if message is not None else f"Simulated {code}",
            remaining=times,
            account_id=account_id,
            after=after,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def add_stall(
        self,
        service: str,
        operation: str,
        seconds: float,
        *,
        times: int = 1,
        account_id: str | None = None,
    ) -> Fault:
        """Hold the answer to the next `times` matching calls for `seconds` (then answer as
        usual): a connection that hangs past the client's read timeout."""
        if times < 1 or seconds <= 0:
            raise ValueError("a stall needs times >= 1 and seconds > 0")
        fault = Fault(service, operation, "", 0, "", times, account_id, stall_s=float(seconds))
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        """Faults not yet used up (copies)."""
        with self._lock:
            return [Fault(**vars(f)) for f in self._faults]

    def take(self, service: str, operation: str, account_id: str) -> Fault | None:
        """Consume one use of the first fault matching this call (server side)."""
        with self._lock:
            for fault in self._faults:
                if (
                    fault.service == service
                    and fault.operation == operation
                    and fault.account_id in (None, account_id)
                ):
                    if fault.after > 0:
                        fault.after -= 1
                        return None
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return Fault(**vars(fault))
        return None


@dataclass
class LookupInterruption:
    """LookupEvents calls of one account (and region, if given) that fail: after `after`
    more calls pass, the next `times` answer `code` (one call's botocore retries each count)."""

    account_id: str
    region: str | None
    after: int
    code: str
    status: int
    times: int


def delivery_delays(
    max_s: float, *, typical_s: float = 300.0, late_share: float = 0.1, seed: int = 0
) -> Callable[[Mapping[str, Any]], float]:
    """A `SimulatedAws.delivery_delay`: most events arrive within `typical_s` (AWS: "within an
    average of about 5 minutes"), a `late_share` of them anywhere up to `max_s`. Deterministic
    per eventID and seed, so a test's events arrive the same way every run."""
    if max_s < 0 or typical_s < 0 or not 0 <= late_share <= 1:
        raise ValueError("delays are not negative and late_share is a fraction")

    def delay(record: Mapping[str, Any]) -> float:
        digest = hashlib.sha256(f"{seed}:{record['eventID']}".encode()).digest()
        pick = int.from_bytes(digest[:4], "big") / 2**32
        spread = int.from_bytes(digest[4:8], "big") / 2**32
        limit = max_s if pick < late_share else min(typical_s, max_s)
        return spread * limit

    return delay


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _SimError(Exception):
    """An AWS error answer produced by one of the simulator's handlers."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


# --------------------------------------------------------------------------------------------
# Stores
# --------------------------------------------------------------------------------------------


@dataclass
class _StoredEvent:
    """A CloudTrail record plus what LookupEvents needs to filter and answer it."""

    key: tuple[float, str]  # (eventTime epoch, eventID): the total order of the store
    visible_at: float  # epoch seconds when CloudTrail has delivered it (eventTime + delay)
    event_id: str
    event_name: str
    event_source: str
    read_only: str | None  # "true"/"false" as LookupEvents returns it
    username: str | None
    access_key_id: str | None
    resources: list[tuple[str | None, str | None]]  # (type, name/ARN)
    cloudtrail_event: str  # the record as JSON, verbatim


@dataclass
class _CostRow:
    account_id: str
    month: date  # first day of the month
    service: str
    amounts: dict[str, Decimal]
    estimated: bool
    currency: str


@dataclass
class _Stores:
    """Everything one simulator adds to moto; guarded by SimulatedAws._lock."""

    events: dict[tuple[str, str], list[_StoredEvent]] = field(default_factory=dict)
    event_ids: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    ledger: list[_CostRow] = field(default_factory=list)
    ce_disabled: set[str] = field(default_factory=set)
    calls: list[SimCall] = field(default_factory=list)
    throttled: list[SimCall] = field(default_factory=list)
    # (account, region) -> arrival times of the LookupEvents requests served (the quota window)
    lookup_served: dict[tuple[str, str], list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Caller:
    """The principal behind a request's access key."""

    arn: str
    account_id: str
    # Other ARNs a trust policy may name for this caller: for an assumed-role session, the
    # role's own ARN (AWS matches a role principal against its sessions).
    aliases: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# The simulator
# --------------------------------------------------------------------------------------------

Handler = Callable[["SimulatedAws", BaseResponse, Callable[[], TYPE_RESPONSE]], TYPE_RESPONSE]


class SimulatedAws:
    """moto's server on loopback, extended; see the module docstring.

    Usage::

        with SimulatedAws() as sim:
            client = boto3.client("sts", endpoint_url=sim.endpoint_url, region_name=sim.region,
                                  aws_access_key_id=..., aws_secret_access_key=...)
    """

    def __init__(
        self,
        region: str = "us-east-1",
        ce_page_size: int = 50,
        *,
        lookup_events_rate: float | None = LOOKUP_EVENTS_RATE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.region = region
        # Groups per GetCostAndUsage page; tests lower it to exercise paging. AWS does not
        # document its page size: tests and benchmarks try several (2, 50, 500).
        self.ce_page_size = ce_page_size
        # Months of Cost Explorer history, the current one included: 14 by default; an
        # organization that enabled multi-year data at monthly granularity gets 38.
        self.ce_history_months = CE_DEFAULT_HISTORY_MONTHS
        # LookupEvents requests per second per (account, region) before ThrottlingException;
        # None: never throttled. `monotonic` times it (tests pass the fake clock their code runs
        # on).
        self.lookup_events_rate = lookup_events_rate
        self.monotonic = monotonic
        self._stalls: list[threading.Event] = []
        # (service, operation) -> seconds slept before answering (benchmarks).
        self.latency: dict[tuple[str, str], float] = {}
        self.faults = FaultInjector()
        # The simulated now (CloudTrail's time behaviour, see "CloudTrail time" below, and the
        # "today" Cost Explorer checks dates against; tests set their frozen clock), the
        # delivery delay drawn per stored CloudTrail event (None: delivered at once), token
        # lifetime.
        self.clock: Callable[[], datetime] = _utc_now
        self.delivery_delay: Callable[[Mapping[str, Any]], float] | None = None
        self.lookup_token_ttl_s: float = LOOKUP_TOKEN_TTL_S
        self.ce_token_ttl_s: float = CE_TOKEN_TTL_S
        self._interruptions: list[LookupInterruption] = []
        self._lock = threading.RLock()
        self._stores = _Stores()
        self._server: _QuietMotoServer | None = None
        self._port: int | None = None
        self._clients: dict[tuple[str, str], BaseClient] = {}
        self._botocore_session: botocore.session.Session | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """`http://127.0.0.1:<port>` of the running server."""
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def started(self) -> bool:
        return self._port is not None

    def start(self) -> SimulatedAws:
        """Start the server on a free loopback port and install the moto extensions."""
        if self._port is not None:
            return self
        if "MOTO_ACCOUNT_ID" in os.environ:
            # moto would then put every request in that one account, and the simulator's account
            # isolation (and trust checks across accounts) would silently stop meaning anything.
            raise RuntimeError("unset MOTO_ACCOUNT_ID: it overrides moto's per-key accounts")
        server = _QuietMotoServer()
        server.start()
        self._server = server
        self._port = server.get_host_and_port()[1]
        _register(self._port, self)
        return self

    def stop(self) -> None:
        """Stop the server; the last simulator to stop removes the moto extensions."""
        if self._server is None or self._port is None:
            return
        port, server = self._port, self._server
        self._port = None
        self._server = None
        self._clients.clear()
        self.release_stalls()
        try:
            server.stop()
        finally:
            _unregister(port)

    def __enter__(self) -> SimulatedAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Clear moto's state (all accounts) and this simulator's events, ledger, faults, calls.

        Configuration (latency, ce_page_size) is kept. Seeded principals are gone with moto's
        state: re-create our `cao-service` user after a reset.
        """
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        # No proxies: an HTTP(S)_PROXY in the environment must not divert a loopback call.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as answer:
            answer.read()
        # moto's reset re-initialises every backend but not this map of member -> management
        # account, which lives on the organizations BackendDict itself; stale entries would make
        # former members look like they still belong to an organization.
        organizations_backends.master_accounts.clear()
        with self._lock:
            self._stores = _Stores()
            self._interruptions.clear()
        self.faults.clear()
        self.release_stalls()

    def release_stalls(self) -> None:
        """Answer every stalled request now (its client has usually given up already)."""
        with self._lock:
            stalls, self._stalls = self._stalls, []
        for stall in stalls:
            stall.set()

    def _stall(self, seconds: float) -> None:
        released = threading.Event()
        with self._lock:
            self._stalls.append(released)
        released.wait(seconds)
        with self._lock, contextlib.suppress(ValueError):
            self._stalls.remove(released)

    @property
    def throttled(self) -> list[SimCall]:
        """The requests answered with the simulated quota's ThrottlingException (a snapshot)."""
        with self._lock:
            return list(self._stores.throttled)

    def _over_quota(self, call: SimCall) -> bool:
        """Whether LookupEvents `call` exceeds the per-(account, region) quota; if not, it
        counts against it. A sliding window of one second on `monotonic`."""
        rate = self.lookup_events_rate
        if rate is None:
            return False
        with self._lock:
            served = self._stores.lookup_served.setdefault((call.account_id, call.region), [])
            del served[: bisect.bisect_right(served, call.at - 1.0)]
            if len(served) >= rate:
                self._stores.throttled.append(call)
                return True
            bisect.insort(served, call.at)
            return False

    # -- call log ----------------------------------------------------------------------------

    @property
    def calls(self) -> list[SimCall]:
        """Every request answered since the last reset/clear_calls (a snapshot)."""
        with self._lock:
            return list(self._stores.calls)

    def count_calls(self, service: str, operation: str, account_id: str | None = None) -> int:
        """How many calls of service/operation (from account_id, if given) were answered."""
        return sum(
            1
            for c in self.calls
            if c.service == service
            and c.operation == operation
            and account_id in (None, c.account_id)
        )

    def clear_calls(self) -> None:
        with self._lock:
            self._stores.calls.clear()

    # -- CloudTrail --------------------------------------------------------------------------

    def put_events(self, account_id: str, region: str, events: Iterable[Mapping[str, Any]]) -> None:
        """Store full CloudTrail records for LookupEvents in (account_id, region).

        Each record needs eventID, eventTime (ISO 8601), eventName and eventSource. eventIDs
        are unique per (account, region): a duplicate raises ValueError (CloudTrail never
        returns one twice, and a silent overwrite would hide a broken generator). Each record
        becomes visible at its eventTime plus `delivery_delay(record)` seconds, if set.
        """
        _check_account_id(account_id)
        delay = self.delivery_delay
        stored = [_stored_event(dict(e), delay) for e in events]
        with self._lock:
            ids = self._stores.event_ids.setdefault((account_id, region), set())
            fresh = {e.event_id for e in stored}
            if len(fresh) != len(stored) or ids & fresh:
                raise ValueError("duplicate eventID in put_events")
            ids |= fresh
            bucket = self._stores.events.setdefault((account_id, region), [])
            for item in stored:
                bucket.insert(bisect.bisect_left(bucket, item.key, key=_event_key), item)

    def event_count(self, account_id: str, region: str) -> int:
        with self._lock:
            return len(self._stores.events.get((account_id, region), ()))

    def interrupt_lookups(
        self,
        account_id: str,
        *,
        after: int = 0,
        throttle: bool = True,
        times: int = 5,
        region: str | None = None,
    ) -> LookupInterruption:
        """Stop a sync run part-way: after `after` more LookupEvents calls of the account pass,
        the next `times` fail, with ThrottlingException (`throttle`) or an AWS outage
        (InternalFailure, HTTP 500). The default `times` outlasts one call's 5 attempts."""
        _check_account_id(account_id)
        if after < 0 or times < 1:
            raise ValueError("after is not negative and times at least 1")
        code, status = ("ThrottlingException", 400) if throttle else ("InternalFailure", 500)
        interruption = LookupInterruption(account_id, region, after, code, status, times)
        with self._lock:
            self._interruptions.append(interruption)
        return interruption

    def reset_interruptions(self) -> None:
        """Drop every interruption not used up."""
        with self._lock:
            self._interruptions.clear()

    def _interrupt_lookup(self, account_id: str, region: str | None = None) -> None:
        with self._lock:
            for item in self._interruptions:
                if item.account_id != account_id or item.region not in (None, region):
                    continue
                if item.after > 0:
                    item.after -= 1
                    return
                item.times -= 1
                if item.times <= 0:
                    self._interruptions.remove(item)
                raise _SimError(item.code, f"Simulated {item.code}", item.status)

    # -- Cost Explorer -----------------------------------------------------------------------

    def put_cost(
        self,
        account_id: str,
        month: str,
        service: str,
        amounts: Mapping[str, Decimal | str],
        *,
        estimated: bool = False,
        currency: str = "USD",
    ) -> None:
        """Add a ledger row: account_id's cost of `service` in `month` ("YYYY-MM").

        amounts maps metric names (UnblendedCost, AmortizedCost, NetUnblendedCost, ...) to
        Decimal or decimal strings; floats are refused (money is never binary floating point).
        Rows with the same (account, month, service) add up.
        """
        _check_account_id(account_id)
        match = _MONTH_RE.fullmatch(month)
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise ValueError(f"month must be YYYY-MM, got {month!r}")
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise ValueError(f"currency must be an ISO code like USD, got {currency!r}")
        parsed: dict[str, Decimal] = {}
        for metric, amount in amounts.items():
            if metric not in _CE_METRICS:
                raise ValueError(f"unknown Cost Explorer metric {metric!r}")
            if not isinstance(amount, Decimal | str):
                raise TypeError(f"{metric}: amounts must be Decimal or str, not {type(amount)}")
            try:
                parsed[metric] = Decimal(amount)
            except InvalidOperation as exc:
                raise ValueError(f"{metric}: not a decimal amount: {amount!r}") from exc
        row = _CostRow(
            account_id=account_id,
            month=date(int(match.group(1)), int(match.group(2)), 1),
            service=service,
            amounts=parsed,
            estimated=estimated,
            currency=currency,
        )
        with self._lock:
            self._stores.ledger.append(row)

    def disable_cost_explorer(self, account_id: str) -> None:
        """The account never enabled Cost Explorer: its calls get AccessDeniedException."""
        with self._lock:
            self._stores.ce_disabled.add(account_id)

    def enable_cost_explorer(self, account_id: str) -> None:
        with self._lock:
            self._stores.ce_disabled.discard(account_id)

    # -- seeding -----------------------------------------------------------------------------

    def create_user_with_key(self, account_id: str, user_name: str) -> tuple[str, str]:
        """Create an IAM user in account_id with an access key: (access_key_id, secret)."""
        iam = self._admin_client("iam", account_id)
        iam.create_user(UserName=user_name)
        key = iam.create_access_key(UserName=user_name)["AccessKey"]
        return str(key["AccessKeyId"]), str(key["SecretAccessKey"])

    def create_role(
        self,
        account_id: str,
        role_name: str,
        trust_policy: Mapping[str, Any],
        policy: Mapping[str, Any] | None = None,
        max_session_duration: int = 3600,
    ) -> str:
        """Create a role in account_id (trust policy as given, optional inline policy): its ARN."""
        iam = self._admin_client("iam", account_id)
        role = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(trust_policy),
            MaxSessionDuration=max_session_duration,
        )["Role"]
        if policy is not None:
            iam.put_role_policy(
                RoleName=role_name,
                PolicyName=f"{role_name}-inline",
                PolicyDocument=json.dumps(policy),
            )
        return str(role["Arn"])

    def install_stack(
        self,
        account_id: str,
        stack_name: str,
        template_body: str,
        parameters: Mapping[str, str],
    ) -> dict[str, str]:
        """Create a CloudFormation stack in account_id as its admin; returns the stack outputs.

        moto creates the resources synchronously (AWS::IAM::Role with trust policy and inline
        policies resolved from the parameters).
        """
        cfn = self._admin_client("cloudformation", account_id)
        cfn.create_stack(
            StackName=stack_name,
            TemplateBody=template_body,
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
        )
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        if stack["StackStatus"] != "CREATE_COMPLETE":
            raise RuntimeError(f"stack {stack_name} ended in {stack['StackStatus']}")
        return {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", [])}

    def create_organization(
        self,
        management_account_id: str,
        member_ids: Iterable[str],
        names: Mapping[str, str] | None = None,
    ) -> str:
        """Create an organization managed by management_account_id with these members.

        Members keep the ids given (moto would invent random ones), joined as INVITED. names
        maps account ids (management included) to account names. Returns the organization id.
        """
        _check_account_id(management_account_id)
        names = dict(names or {})
        backend = organizations_backends[management_account_id]["aws"]
        described = backend.create_organization(region=self.region, FeatureSet="ALL")
        org = backend.org
        assert org is not None  # just created
        if management_account_id in names:
            backend.get_account_by_id(management_account_id).name = names[management_account_id]
        for member_id in member_ids:
            _check_account_id(member_id)
            if member_id in organizations_backends.master_accounts:
                raise ValueError(f"{member_id} is already in an organization")
            status = backend.create_account(
                AccountName=names.get(member_id, f"member-{member_id}"),
                Email=f"aws+{member_id}@example.invalid",
            )
            random_id = status["CreateAccountStatus"]["AccountId"]
            account = backend.get_account_by_id(random_id)
            account.id = member_id
            account.joined_method = "INVITED"
            organizations_backends.master_accounts.pop(random_id, None)
            organizations_backends.master_accounts[member_id] = (management_account_id, "aws")
            # moto's FakeAccount created an OrganizationAccountAccessRole in an IAM backend of
            # the random id; drop that stray account so it does not linger in moto's state.
            if random_id in iam_backends:
                del iam_backends[random_id]
        return str(described["Organization"]["Id"])

    def register_delegated_admin(
        self,
        org_mgmt: str,
        account_id: str,
        service_principal: str = "access-analyzer.amazonaws.com",
    ) -> None:
        """Register a member as delegated administrator (may then call ListAccounts)."""
        backend = organizations_backends[org_mgmt]["aws"]
        backend.register_delegated_administrator(
            AccountId=account_id, ServicePrincipal=service_principal
        )

    def _admin_client(self, service: str, account_id: str) -> BaseClient:
        """A botocore client acting as account_id's admin via moto's x-moto-account-id."""
        _check_account_id(account_id)
        cached = self._clients.get((service, account_id))
        if cached is not None:
            return cached
        if self._botocore_session is None:
            self._botocore_session = botocore.session.Session()
        client = self._botocore_session.create_client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=_SEED_ACCESS_KEY,
            aws_secret_access_key="simaws-seed-secret",  # a dummy: moto checks no signature
            # proxies={} (not None): never route loopback seeding through an env proxy.
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}, proxies={}),
        )

        def add_headers(request: Any, **_: Any) -> None:
            request.headers["x-moto-account-id"] = account_id
            request.headers[_INTERNAL_HEADER] = "1"

        service_id = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-sign.{service_id}", add_headers)
        self._clients[(service, account_id)] = client
        return client

    # -- request handling (server threads) ---------------------------------------------------

    def _answer(self, resp: BaseResponse, original: Callable[[], TYPE_RESPONSE]) -> TYPE_RESPONSE:
        """Log, delay, fault or route one request; `original` is moto's own answer."""
        service = str(resp.service_name or "")
        operation = str(resp._get_action() or "")
        account_id = str(resp.current_account)
        internal = resp.headers.get(_INTERNAL_HEADER) == "1"
        if not internal:
            call = SimCall(
                service, operation, account_id, resp.region, _request_params(resp), self.monotonic()
            )
            with self._lock:
                self._stores.calls.append(call)
            delay = self.latency.get((service, operation))
            if delay:
                time.sleep(delay)
            fault = self.faults.take(service, operation, account_id)
            if fault is not None and fault.stall_s > 0:
                self._stall(fault.stall_s)
            elif fault is not None:
                return _error_response(resp, fault.code, fault.message, fault.status)
            if (service, operation) == ("cloudtrail", "LookupEvents") and self._over_quota(call):
                return _error_response(resp, "ThrottlingException", "Rate exceeded", 400)
        handler = _HANDLERS.get((service, operation))
        try:
            if handler is not None:
                return handler(self, resp, original)
            return original()
        except _SimError as error:
            return _error_response(resp, error.code, error.message, error.status)

    def _handle_assume_role(
        self, resp: BaseResponse, original: Callable[[], TYPE_RESPONSE]
    ) -> TYPE_RESPONSE:
        """sts:AssumeRole with AWS's checks; moto's own assume runs only once they pass."""
        role_arn = str(resp._get_param("RoleArn") or "")
        session_name = resp._get_param("RoleSessionName")
        external_id = resp._get_param("ExternalId")
        duration_raw = resp._get_param("DurationSeconds")
        # Static validation first: AWS answers these before looking at the role.
        if session_name is None or not _SESSION_NAME_RE.fullmatch(str(session_name)):
            raise _SimError(
                "ValidationError",
                f"1 validation error detected: Value '{session_name}' at 'roleSessionName' failed "
                "to satisfy constraint: Member must have length between 2 and 64 and satisfy "
                r"regular expression pattern: [\w+=,.@-]*",
            )
        if len(role_arn) < 20:
            raise _SimError(
                "ValidationError",
                f"1 validation error detected: Value '{role_arn}' at 'roleArn' failed to satisfy "
                "constraint: Member must have length greater than or equal to 20",
            )
        if external_id is not None and not _EXTERNAL_ID_RE.fullmatch(str(external_id)):
            raise _SimError(
                "ValidationError",
                "1 validation error detected: Value at 'externalId' failed to satisfy constraint: "
                r"Member must have length between 2 and 1224 and satisfy [\w+=,.@:/-]*",
            )
        duration = 3600
        if duration_raw is not None:
            try:
                duration = int(duration_raw)
            except (TypeError, ValueError) as exc:
                raise _SimError("ValidationError", "DurationSeconds must be an integer") from exc
            if not 900 <= duration <= 43200:
                raise _SimError(
                    "ValidationError",
                    f"1 validation error detected: Value '{duration}' at 'durationSeconds' failed "
                    "to satisfy constraint: Member must have value between 900 and 43200",
                )
        caller = _resolve_caller(resp)
        role = _find_role(role_arn)
        trusted = role is not None and _trust_allows(
            role.assume_role_policy_document,
            caller,
            None if external_id is None else str(external_id),
        )
        if role is None or not trusted:
            # One answer for "no such role", "not trusted" and "wrong ExternalId", as AWS does:
            # a prober must not learn which roles exist.
            raise _SimError(
                "AccessDenied",
                f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: "
                f"{role_arn}",
                403,
            )
        max_duration = int(role.max_session_duration or 3600)
        if duration > max_duration:
            raise _SimError(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            )
        return original()

    def _handle_lookup_events(
        self, resp: BaseResponse, original: Callable[[], TYPE_RESPONSE]
    ) -> TYPE_RESPONSE:
        """cloudtrail:LookupEvents over the events stored for (caller account, request region)."""
        body = _json_body(resp)
        query = _LookupQuery.parse(body)
        account_id, region = str(resp.current_account), resp.region
        self._interrupt_lookup(account_id, region)
        now = self.clock().timestamp()
        fingerprint = _fingerprint(
            account_id,
            region,
            {k: body.get(k) for k in ("LookupAttributes", "StartTime", "EndTime", "EventCategory")},
        )
        before: tuple[float, str] | None = None
        token = body.get("NextToken")
        if token is not None:
            decoded = _decode_token(token)
            position = decoded.get("k") if decoded else None
            issued = decoded.get("t") if decoded else None
            if (
                decoded is None
                or decoded.get("h") != fingerprint
                or not isinstance(position, list)
                or len(position) != 2
                or not isinstance(issued, int | float)
                or now - issued > self.lookup_token_ttl_s
            ):
                raise _SimError(
                    "InvalidNextTokenException",
                    "A token that is not valid, or a token that was previously used in a request "
                    "with different parameters.",
                )
            before = (float(position[0]), str(position[1]))

        page: list[_StoredEvent] = []
        more = False
        if query.category is None:  # insight events are never simulated
            with self._lock:
                bucket = list(self._stores.events.get((account_id, region), ()))
            page, more = query.walk(bucket, before, now)

        answer: dict[str, Any] = {"Events": [_lookup_item(e) for e in page]}
        if more:
            answer["NextToken"] = _encode_token(
                {"h": fingerprint, "k": list(page[-1].key), "t": now}
            )
        return _json_response(answer)

    def _handle_get_cost_and_usage(
        self, resp: BaseResponse, original: Callable[[], TYPE_RESPONSE]
    ) -> TYPE_RESPONSE:
        """ce:GetCostAndUsage over the ledger, as seen by the caller's account."""
        account_id = str(resp.current_account)
        with self._lock:
            disabled = account_id in self._stores.ce_disabled
            ledger = list(self._stores.ledger)
            page_size = max(1, int(self.ce_page_size))
            history = int(self.ce_history_months)
        if disabled:
            raise _SimError("AccessDeniedException", "User not enabled for cost explorer access")
        body = _json_body(resp)
        today = self.clock().astimezone(UTC).date()
        query = _CostQuery.parse(body)
        query.check_dates(today, history)
        fingerprint = _fingerprint(
            account_id,
            "",
            {k: body.get(k) for k in ("TimePeriod", "Granularity", "Metrics", "GroupBy", "Filter")},
        )
        offset = 0
        now = self.clock().timestamp()
        token = body.get("NextPageToken")
        if token is not None:
            decoded = _decode_token(token)
            issued = decoded.get("t") if decoded else None
            if (
                decoded is None
                or not isinstance(decoded.get("o"), int)
                or decoded["o"] < 0
                or decoded.get("a") != account_id  # another account's token
                or not isinstance(issued, int | float)
                or now - issued > self.ce_token_ttl_s
            ):
                raise _SimError(
                    "InvalidNextTokenException",
                    "The pagination token is invalid. Try again without a pagination token.",
                )
            if decoded.get("h") != fingerprint:
                raise _SimError(
                    "RequestChangedException",
                    "Your request parameters changed between pages. Try again with the old "
                    "parameters or without a pagination token.",
                )
            offset = int(decoded["o"])

        visible, names = _cost_visibility(account_id)
        rows = [r for r in ledger if r.account_id in visible and query.row_matches(r)]
        months = query.months()
        current = date(today.year, today.month, 1)
        entries = [query.month_entry(m, rows, current) for m in months]
        total_groups = sum(len(e["Groups"]) for e in entries)
        if offset > total_groups:
            raise _SimError(
                "InvalidNextTokenException",
                "The pagination token is invalid. Try again without a pagination token.",
            )
        page, next_offset = _page_entries(entries, offset, page_size, bool(query.group_by))

        answer: dict[str, Any] = {"ResultsByTime": page, "DimensionValueAttributes": []}
        if query.group_by:
            answer["GroupDefinitions"] = [
                {"Type": "DIMENSION", "Key": key} for key in query.group_by
            ]
        if "LINKED_ACCOUNT" in query.group_by:
            position = query.group_by.index("LINKED_ACCOUNT")
            shown = sorted({g["Keys"][position] for e in page for g in e["Groups"]})
            answer["DimensionValueAttributes"] = [
                {"Value": acct, "Attributes": {"description": names[acct]}}
                for acct in shown
                if acct in names
            ]
        if next_offset is not None:
            answer["NextPageToken"] = _encode_token(
                {"a": account_id, "h": fingerprint, "o": next_offset, "t": now}
            )
        return _json_response(answer)

    def _handle_list_accounts(
        self, resp: BaseResponse, original: Callable[[], TYPE_RESPONSE]
    ) -> TYPE_RESPONSE:
        """organizations:ListAccounts only for the management account or a delegated admin,
        with MaxResults 1-20 (moto accepts any)."""
        max_results = _request_params(resp).get("MaxResults")
        if max_results is not None:
            try:
                valid = 1 <= int(max_results) <= _ORG_MAX_RESULTS
            except (TypeError, ValueError):
                valid = False
            if not valid:
                raise _SimError(
                    "InvalidInputException",
                    f"MaxResults must be between 1 and {_ORG_MAX_RESULTS} (MAX_VALUE_EXCEEDED)",
                )
        account_id = str(resp.current_account)
        partition = resp.partition
        if organizations_backends[account_id][partition].org is not None:
            return original()
        membership = organizations_backends.master_accounts.get(account_id)
        if membership is None:
            raise _SimError(
                "AWSOrganizationsNotInUseException",
                "Your account is not a member of an organization.",
            )
        management_id, management_partition = membership
        management = organizations_backends[management_id][management_partition]
        if any(admin.account.id == account_id for admin in management.admins):
            # moto answers from the caller's own (empty) backend; a delegated administrator
            # sees the management account's list, so answer as the management account.
            resp.current_account = management_id
            return original()
        raise _SimError(
            "AccessDeniedException", "You don't have permissions to access this resource."
        )


_HANDLERS: dict[tuple[str, str], Handler] = {
    ("sts", "AssumeRole"): SimulatedAws._handle_assume_role,
    ("cloudtrail", "LookupEvents"): SimulatedAws._handle_lookup_events,
    ("ce", "GetCostAndUsage"): SimulatedAws._handle_get_cost_and_usage,
    ("organizations", "ListAccounts"): SimulatedAws._handle_list_accounts,
}


# --------------------------------------------------------------------------------------------
# Request/response plumbing
# --------------------------------------------------------------------------------------------


def _check_account_id(account_id: str) -> None:
    if not _ACCOUNT_ID_RE.fullmatch(account_id):
        raise ValueError(f"an AWS account id is 12 digits, got {account_id!r}")


def _request_params(resp: BaseResponse) -> dict[str, Any]:
    """The request's parameters for the call log: the JSON body, else query string and form.

    Read from the request itself rather than moto's `querystring`, which falls back to the
    request headers (credentials included) when a request has no parameters.
    """
    body = resp.body
    if isinstance(body, dict):  # dynamodb's call_action swaps in parsed params
        return dict(body)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = body if isinstance(body, str) else ""
    if text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            parsed = json.loads(text)
            if isinstance(parsed, dict):
                return parsed
    # werkzeug has already consumed a form body into request.form; `values` is query + form.
    values = getattr(getattr(resp, "normalized_request", None), "values", None)
    pairs = list(values.items()) if values is not None else []
    return {key: value for key, value in pairs if key not in ("Action", "Version")}


def _json_body(resp: BaseResponse) -> dict[str, Any]:
    body = resp.body
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise _SimError("SerializationException", "Request body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise _SimError("SerializationException", "Request body is not a JSON object")
    return parsed


def _json_response(payload: Mapping[str, Any]) -> TYPE_RESPONSE:
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    return 200, headers, json.dumps(payload)


def _error_response(resp: BaseResponse, code: str, message: str, status: int) -> TYPE_RESPONSE:
    """An error in the wire format of the request's protocol, as botocore expects to parse it."""
    request_id = str(uuid.uuid4())
    fault = "Sender" if status < 500 else "Receiver"
    service_model = get_service_model(resp.boto3_service_name)
    protocol = resp.determine_response_protocol(service_model)
    headers: dict[str, Any] = {"x-amzn-RequestId": request_id, "status": status}
    if "json" in protocol:
        headers["Content-Type"] = "application/x-amz-json-1.1"
        headers["x-amzn-ErrorType"] = code
        if "awsQueryCompatible" in service_model.metadata:
            # botocore takes the code from this header for JSON services that once were query.
            headers["x-amzn-query-error"] = f"{code};{fault}"
        return status, headers, json.dumps({"__type": code, "message": message})
    code_x, message_x = xml_escape(code), xml_escape(message)
    headers["Content-Type"] = "text/xml"
    if protocol == "ec2":
        body = (
            f"<Response><Errors><Error><Code>{code_x}</Code><Message>{message_x}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
    else:
        body = (
            f"<ErrorResponse><Error><Type>{fault}</Type><Code>{code_x}</Code>"
            f"<Message>{message_x}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        )
    return status, headers, body


def _encode_token(payload: Mapping[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: Any) -> dict[str, Any] | None:
    if not isinstance(token, str):
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:  # binascii.Error and JSONDecodeError are both ValueErrors
        return None
    return decoded if isinstance(decoded, dict) else None


def _fingerprint(account_id: str, region: str, params: Mapping[str, Any]) -> str:
    """What a pagination token is bound to: caller account, region, the other parameters."""
    text = json.dumps([account_id, region, params], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------------------------
# STS: caller resolution and trust-policy evaluation
# --------------------------------------------------------------------------------------------


def _resolve_caller(resp: BaseResponse) -> _Caller:
    """The principal behind the request's access key, as AWS would name it."""
    access_key = resp.get_access_key()
    account_id = str(resp.current_account)
    partition = resp.partition
    assumed = sts_backends[account_id][partition].get_assumed_role_from_access_key(access_key)
    if assumed is not None:
        return _Caller(arn=assumed.arn, account_id=account_id, aliases=(assumed.role_arn,))
    user = iam_backends[account_id][partition].get_user_from_access_key_id(access_key)
    if user is not None:
        return _Caller(arn=user.arn, account_id=account_id)
    # Keys moto does not know act as the root of their account (moto's default account).
    return _Caller(arn=f"arn:{partition}:iam::{account_id}:root", account_id=account_id)


def _find_role(role_arn: str) -> Any | None:
    """The moto Role of that ARN in its own account, or None."""
    match = _ROLE_ARN_RE.fullmatch(role_arn)
    if not match:
        return None
    partition, account_id = match.group(1), match.group(2)
    if account_id not in iam_backends:
        # Indexing a BackendDict creates the account; an unknown account has no roles anyway.
        return None
    backend = iam_backends[account_id][partition]
    return next((r for r in backend.roles.values() if r.arn == role_arn), None)


def _load_policy(document: Any) -> dict[str, Any] | None:
    """A policy document as moto stores it (JSON text, sometimes URL-encoded, or a dict)."""
    if isinstance(document, dict):
        return document
    if not isinstance(document, str):
        return None
    for text in (document, urllib.parse.unquote(document)):
        try:
            parsed = json.loads(text)
        except ValueError:
            continue
        return parsed if isinstance(parsed, dict) else None
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _principal_matches(principal: Any, caller: _Caller) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for entry in _as_list(principal.get("AWS")):
        if not isinstance(entry, str):
            continue
        if entry in ("*", caller.arn, caller.account_id) or entry in caller.aliases:
            return True
        root = _ROOT_ARN_RE.fullmatch(entry)
        if root and root.group(1) == caller.account_id:
            return True
    return False


def _action_matches(action: Any) -> bool:
    return any(
        isinstance(a, str) and fnmatchcase("sts:assumerole", a.lower()) for a in _as_list(action)
    )


def _iam_like(value: str, pattern: str) -> bool:
    """IAM StringLike: `*` and `?` are wildcards, everything else is literal."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


_EXTERNAL_ID_OPERATORS = ("StringEquals", "StringLike", "StringNotEquals", "StringNotLike", "Null")


def _external_id_verdict(operator: str, values: list[str], external_id: str | None) -> bool | None:
    """One operator on sts:ExternalId, as IAM evaluates it: a key absent from the request
    matches no value, so positive operators are false and negated ones (StringNot...) true;
    `Null` tests presence ("true": absent)."""
    if operator == "Null":
        if values not in (["true"], ["false"]):
            return None
        return (external_id is None) == (values == ["true"])
    if external_id is None:
        return operator.startswith("StringNot")
    if operator in ("StringEquals", "StringNotEquals"):
        matched = external_id in values
    else:
        matched = any(_iam_like(external_id, v) for v in values)
    return matched if not operator.startswith("StringNot") else not matched


def _conditions_hold(condition: Any, external_id: str | None) -> bool | None:
    """True/False for conditions we evaluate; None when one is beyond the simulator."""
    if not isinstance(condition, dict):
        return None
    verdicts: list[bool | None] = []
    for operator, block in condition.items():
        if not isinstance(block, dict):
            return None
        for key, expected in block.items():
            if str(key).lower() != "sts:externalid" or operator not in _EXTERNAL_ID_OPERATORS:
                verdicts.append(None)
                continue
            values = [str(v) for v in _as_list(expected)]
            verdicts.append(_external_id_verdict(operator, values, external_id))
    if False in verdicts:
        return False
    if None in verdicts:
        return None
    return True


def _statement_applies(statement: Any, caller: _Caller, external_id: str | None) -> bool | None:
    if not isinstance(statement, dict):
        return None
    if "NotPrincipal" in statement or "NotAction" in statement:
        return None
    if not _principal_matches(statement.get("Principal"), caller):
        return False
    if not _action_matches(statement.get("Action")):
        return False
    if "Condition" not in statement:
        return True
    return _conditions_hold(statement["Condition"], external_id)


def _trust_allows(document: Any, caller: _Caller, external_id: str | None) -> bool:
    """IAM's rule: some Allow statement applies and no Deny statement may apply.

    Fails closed: what the simulator cannot evaluate never allows, and always denies.
    """
    policy = _load_policy(document)
    if policy is None:
        return False
    allowed = False
    for statement in _as_list(policy.get("Statement")):
        verdict = _statement_applies(statement, caller, external_id)
        effect = statement.get("Effect") if isinstance(statement, dict) else None
        if effect == "Deny" and verdict is not False:
            return False
        if effect == "Allow" and verdict is True:
            allowed = True
    return allowed


# --------------------------------------------------------------------------------------------
# CloudTrail
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LookupQuery:
    """A validated LookupEvents request (everything but the token)."""

    attribute: tuple[str, str] | None
    max_results: int
    start: float | None
    end: float | None
    category: str | None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> _LookupQuery:
        attributes = body.get("LookupAttributes") or []
        if not isinstance(attributes, list) or len(attributes) > 1:
            raise _SimError(
                "InvalidLookupAttributesException", "You can specify only one lookup attribute."
            )
        attribute: tuple[str, str] | None = None
        if attributes:
            key = attributes[0].get("AttributeKey")
            value = attributes[0].get("AttributeValue")
            if key not in _LOOKUP_ATTRIBUTE_KEYS or not isinstance(value, str):
                raise _SimError(
                    "InvalidLookupAttributesException", f"Invalid lookup attribute key: {key}"
                )
            attribute = (str(key), value)
        max_results = body.get("MaxResults", 50)
        if not isinstance(max_results, int) or not 1 <= max_results <= 50:
            raise _SimError(
                "InvalidMaxResultsException", "MaxResults must be between 1 and 50 (inclusive)."
            )
        start = _parse_timestamp(body.get("StartTime"), "StartTime")
        end = _parse_timestamp(body.get("EndTime"), "EndTime")
        if start is not None and end is not None and start > end:
            raise _SimError("InvalidTimeRangeException", "Start time must be before end time.")
        category = body.get("EventCategory")
        if category not in (None, "insight"):
            raise _SimError("InvalidEventCategoryException", f"Invalid event category {category}")
        return cls(attribute, max_results, start, end, category)

    def walk(
        self, bucket: list[_StoredEvent], before: tuple[float, str] | None, now: float
    ) -> tuple[list[_StoredEvent], bool]:
        """One page, newest first, and whether more match after it, as seen at `now`.

        The store is ascending by (eventTime, eventID); walk it backwards from the end of the
        window (or from just below the token's position), stopping one match past a full page.
        Keyed on the last event returned, a token stays exact when newer events arrive. Events
        not yet delivered at `now`, or older than the 90 days LookupEvents keeps, are not there.
        """
        upper = len(bucket)
        if self.end is not None:
            upper = bisect.bisect_right(bucket, (self.end, "\U0010ffff"), key=_event_key)
        if before is not None:
            upper = min(upper, bisect.bisect_left(bucket, before, key=_event_key))
        oldest = now - LOOKUP_HORIZON.total_seconds()
        page: list[_StoredEvent] = []
        for index in range(upper - 1, -1, -1):
            item = bucket[index]
            if (self.start is not None and item.key[0] < self.start) or item.key[0] < oldest:
                break
            if item.visible_at > now:
                continue
            if self.attribute is not None and not _event_matches(item, *self.attribute):
                continue
            if len(page) == self.max_results:
                return page, True
            page.append(item)
        return page, False


def _event_key(item: _StoredEvent) -> tuple[float, str]:
    return item.key


def _parse_iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_timestamp(value: Any, name: str) -> float | None:
    """A botocore JSON timestamp (epoch seconds; ISO text tolerated) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
        with contextlib.suppress(ValueError):
            return _parse_iso(value).timestamp()
    raise _SimError("InvalidTimeRangeException", f"{name} is not a valid timestamp.")


def _username(identity: Mapping[str, Any]) -> str | None:
    """LookupEvents' Username: user name, session name, or "root"."""
    kind = identity.get("type")
    arn = str(identity.get("arn") or "")
    if kind == "Root":
        return "root"
    if kind in ("AssumedRole", "FederatedUser") and "/" in arn:
        return arn.rsplit("/", 1)[-1]
    name = identity.get("userName")
    return str(name) if name else None


def _stored_event(
    record: dict[str, Any], delay: Callable[[Mapping[str, Any]], float] | None = None
) -> _StoredEvent:
    for required in ("eventID", "eventTime", "eventName", "eventSource"):
        if not isinstance(record.get(required), str):
            raise ValueError(f"a CloudTrail record needs a string {required}")
    event_time = _parse_iso(record["eventTime"]).timestamp()
    late = 0.0 if delay is None else float(delay(record))
    if late < 0:
        raise ValueError("a delivery delay cannot be negative")
    identity = record.get("userIdentity") or {}
    read_only = record.get("readOnly")
    resources = [
        (r.get("type"), r.get("ARN") or r.get("arn"))
        for r in record.get("resources") or []
        if isinstance(r, dict)
    ]
    return _StoredEvent(
        key=(event_time, record["eventID"]),
        visible_at=event_time + late,
        event_id=record["eventID"],
        event_name=record["eventName"],
        event_source=record["eventSource"],
        read_only=None if read_only is None else str(bool(read_only)).lower(),
        username=_username(identity),
        access_key_id=identity.get("accessKeyId") or None,
        resources=resources,
        # Serialised once, here: proves the record is JSON and is what AWS hands back.
        cloudtrail_event=json.dumps(record),
    )


def _event_matches(item: _StoredEvent, key: str, value: str) -> bool:
    if key == "ResourceType":
        return any(t == value for t, _ in item.resources)
    if key == "ResourceName":
        return any(n == value for _, n in item.resources)
    actual = {
        "EventId": item.event_id,
        "EventName": item.event_name,
        "EventSource": item.event_source,
        "ReadOnly": item.read_only,
        "Username": item.username,
        "AccessKeyId": item.access_key_id,
    }[key]
    return actual == value


def _lookup_item(item: _StoredEvent) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "EventId": item.event_id,
        "EventName": item.event_name,
        "EventTime": item.key[0],
        "EventSource": item.event_source,
        "Resources": [
            {k: v for k, v in (("ResourceType", t), ("ResourceName", n)) if v is not None}
            for t, n in item.resources
        ],
        "CloudTrailEvent": item.cloudtrail_event,
    }
    for name, value in (
        ("ReadOnly", item.read_only),
        ("AccessKeyId", item.access_key_id),
        ("Username", item.username),
    ):
        if value is not None:
            answer[name] = value
    return answer


# --------------------------------------------------------------------------------------------
# Cost Explorer
# --------------------------------------------------------------------------------------------


def _validation(message: str) -> _SimError:
    return _SimError("ValidationException", message)


def _parse_date(value: Any, name: str) -> date:
    if not isinstance(value, str):
        raise _validation(f"TimePeriod.{name} is required")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise _validation(f"{name} date {value} is not in the format yyyy-MM-dd") from exc


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _amount_text(amount: Decimal) -> str:
    return format(amount, "f")


@dataclass(frozen=True)
class _CostQuery:
    start: date
    end: date
    metrics: tuple[str, ...]
    group_by: tuple[str, ...]
    filter: dict[str, Any] | None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> _CostQuery:
        period = body.get("TimePeriod")
        if not isinstance(period, dict):
            raise _validation("TimePeriod is required")
        start = _parse_date(period.get("Start"), "Start")
        end = _parse_date(period.get("End"), "End")
        if start >= end:
            raise _validation("Start date (and hour) should be before end date (and hour)")
        granularity = body.get("Granularity")
        if granularity != "MONTHLY":
            raise _validation(
                f"Granularity {granularity} is not supported by the simulated Cost Explorer "
                "(MONTHLY only)"
            )
        metrics = body.get("Metrics")
        if not isinstance(metrics, list) or not metrics:
            raise _validation("Metrics is required")
        unknown = [m for m in metrics if m not in _CE_METRICS]
        if unknown:
            raise _validation(f"Unsupported metrics: {', '.join(map(str, unknown))}")
        group_by = body.get("GroupBy") or []
        if not isinstance(group_by, list) or len(group_by) > 2:
            raise _validation("You can only group by up to two dimensions or tags.")
        keys: list[str] = []
        for definition in group_by:
            if not isinstance(definition, dict) or definition.get("Type") != "DIMENSION":
                raise _validation("The simulated Cost Explorer groups by DIMENSION only")
            key = definition.get("Key")
            if key not in _CE_DIMENSIONS:
                raise _validation(
                    f"Group by dimension {key} is not supported (SERVICE, LINKED_ACCOUNT)"
                )
            if key in keys:
                raise _validation(f"Duplicate group by dimension {key}")
            keys.append(str(key))
        expression = body.get("Filter")
        if expression is not None:
            _check_expression(expression)
        return cls(start, end, tuple(str(m) for m in metrics), tuple(keys), expression)

    def months(self) -> list[date]:
        month = date(self.start.year, self.start.month, 1)
        months = []
        while month < self.end:
            months.append(month)
            month = _next_month(month)
        return months

    def row_matches(self, row: _CostRow) -> bool:
        return self.filter is None or _expression_matches(self.filter, row)

    def check_dates(self, today: date, history_months: int) -> None:
        """What AWS checks against today: Start not after today, End not past the first day
        of next month, Start within the history Cost Explorer keeps (first month of it:
        `history_months` - 1 before the current one)."""
        current = date(today.year, today.month, 1)
        if self.start > today:
            raise _validation("Start date must be on or before today's date")
        if self.end > _next_month(current):
            raise _validation("end date past the beginning of next month")
        index = current.year * 12 + current.month - 1 - (history_months - 1)
        oldest = date(index // 12, index % 12 + 1, 1)
        if self.start < oldest:
            raise _validation(
                f"Start date {self.start.isoformat()} is before the earliest date with cost "
                f"data ({oldest.isoformat()}): Cost Explorer keeps {history_months} months"
            )

    def month_entry(self, month: date, rows: list[_CostRow], current: date) -> dict[str, Any]:
        """One ResultsByTime entry. The current month (and any later) is Estimated whether or
        not it has costs yet: AWS finalises a month only after it ends."""
        in_month = [r for r in rows if r.month == month]
        period = {
            "Start": max(self.start, month).isoformat(),
            "End": min(self.end, _next_month(month)).isoformat(),
        }
        entry: dict[str, Any] = {
            "TimePeriod": period,
            "Total": {},
            "Groups": [],
            "Estimated": month >= current or any(r.estimated for r in in_month),
        }
        if not self.group_by:
            entry["Total"] = self._metrics(in_month)
            return entry
        grouped: dict[tuple[str, ...], list[_CostRow]] = {}
        for row in in_month:
            dims = {"SERVICE": row.service, "LINKED_ACCOUNT": row.account_id}
            grouped.setdefault(tuple(dims[k] for k in self.group_by), []).append(row)
        entry["Groups"] = [
            {"Keys": list(keys), "Metrics": self._metrics(grouped[keys])}
            for keys in sorted(grouped)
        ]
        return entry

    def _metrics(self, rows: list[_CostRow]) -> dict[str, dict[str, str]]:
        currency = rows[0].currency if rows else "USD"
        return {
            metric: {
                "Amount": _amount_text(
                    sum((r.amounts.get(metric, Decimal(0)) for r in rows), Decimal(0))
                ),
                "Unit": "N/A" if metric in _CE_QUANTITY_METRICS else currency,
            }
            for metric in self.metrics
        }


def _check_expression(expression: Any) -> None:
    """Validate a CE Filter: And/Or/Not and Dimensions on SERVICE/LINKED_ACCOUNT (EQUALS)."""
    if not isinstance(expression, dict) or len(expression) != 1:
        raise _validation("A Filter expression must have exactly one of And, Or, Not, Dimensions")
    ((kind, value),) = expression.items()
    if kind in ("And", "Or"):
        if not isinstance(value, list) or len(value) < 2:
            raise _validation(f"{kind} needs at least two expressions")
        for sub in value:
            _check_expression(sub)
    elif kind == "Not":
        _check_expression(value)
    elif kind == "Dimensions":
        if not isinstance(value, dict) or value.get("Key") not in _CE_DIMENSIONS:
            raise _validation("The simulated Cost Explorer filters on SERVICE or LINKED_ACCOUNT")
        if value.get("MatchOptions") not in (None, ["EQUALS"]):
            raise _validation("The simulated Cost Explorer supports MatchOptions EQUALS only")
        if not isinstance(value.get("Values"), list):
            raise _validation("Dimensions.Values is required")
    else:
        raise _validation(f"Filter on {kind} is not supported by the simulated Cost Explorer")


def _expression_matches(expression: Mapping[str, Any], row: _CostRow) -> bool:
    ((kind, value),) = expression.items()
    if kind == "And":
        return all(_expression_matches(sub, row) for sub in value)
    if kind == "Or":
        return any(_expression_matches(sub, row) for sub in value)
    if kind == "Not":
        return not _expression_matches(value, row)
    actual = row.service if value["Key"] == "SERVICE" else row.account_id
    return actual in value["Values"]


def _cost_visibility(account_id: str) -> tuple[set[str], dict[str, str]]:
    """Accounts whose rows the caller sees, and account names known from Organizations."""
    backend = organizations_backends[account_id]["aws"]
    if backend.org is None:
        return {account_id}, {}
    names = {str(a.id): str(a.name) for a in backend.accounts}
    return set(names) | {account_id}, names


def _page_entries(
    entries: list[dict[str, Any]], offset: int, size: int, grouped: bool
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of ResultsByTime holding groups [offset, offset+size) in month order.

    A month split across pages appears on each with its share of groups; a month without
    groups goes on the page where its position falls. Without GroupBy there is one page.
    """
    if not grouped:
        return entries, None
    total = sum(len(e["Groups"]) for e in entries)
    limit = offset + size
    last_page = limit >= total
    page: list[dict[str, Any]] = []
    position = 0
    for entry in entries:
        groups = entry["Groups"]
        first, stop = position, position + len(groups)
        position = stop
        if not groups:
            if offset <= first < limit or (last_page and first >= offset):
                page.append(entry)
            continue
        lo, hi = max(first, offset), min(stop, limit)
        if lo < hi:
            page.append({**entry, "Groups": groups[lo - first : hi - first]})
    return page, None if last_page else limit


# --------------------------------------------------------------------------------------------
# moto patching: one wrapper around BaseResponse.call_action, installed while started
# --------------------------------------------------------------------------------------------
#
# Every moto service answers through BaseResponse.call_action after setup_class has parsed the
# request (account from the access key, region from the signature). Wrapping that single method
# gives the simulator the call log, latency, faults and its handlers for all services, without
# touching any service's own response class. (dynamodb and autoscaling override call_action but
# call super(), so they pass through the wrapper too.) The wrapper routes a request to the
# simulator whose server received it (by server port) and leaves every other request - e.g. an
# in-process `mock_aws` used by another test - to moto unchanged.

_PATCH_LOCK = threading.Lock()
_ACTIVE: dict[int, SimulatedAws] = {}
_ORIGINAL_CALL_ACTION: Callable[[BaseResponse], TYPE_RESPONSE] | None = None


def _patched_call_action(self: BaseResponse) -> TYPE_RESPONSE:
    original = _ORIGINAL_CALL_ACTION
    if original is None:  # pragma: no cover - only if uninstalled mid-request
        raise RuntimeError("simaws patch called while not installed")
    sim = _simulator_for(self)
    if sim is None:
        return original(self)
    return sim._answer(self, lambda: original(self))


def _simulator_for(resp: BaseResponse) -> SimulatedAws | None:
    request = getattr(resp, "normalized_request", None)
    environ = getattr(request, "environ", None) or {}
    try:
        port = int(environ.get("SERVER_PORT", ""))
    except ValueError:
        return None
    return _ACTIVE.get(port)


def _register(port: int, sim: SimulatedAws) -> None:
    """Route `port` to `sim`; the first registration installs the wrapper (idempotent)."""
    global _ORIGINAL_CALL_ACTION  # noqa: PLW0603 - the one piece of process-wide patch state
    with _PATCH_LOCK:
        if BaseResponse.call_action is not _patched_call_action:
            _ORIGINAL_CALL_ACTION = BaseResponse.call_action
            BaseResponse.call_action = _patched_call_action  # type: ignore[method-assign]
        _ACTIVE[port] = sim


def _unregister(port: int) -> None:
    """Forget `port`; the last one out restores moto's own call_action."""
    global _ORIGINAL_CALL_ACTION  # noqa: PLW0603
    with _PATCH_LOCK:
        _ACTIVE.pop(port, None)
        if not _ACTIVE and _ORIGINAL_CALL_ACTION is not None:
            BaseResponse.call_action = _ORIGINAL_CALL_ACTION  # type: ignore[method-assign,assignment]
            _ORIGINAL_CALL_ACTION = None


def patch_installed() -> bool:
    """Whether the moto extensions are currently installed (for tests)."""
    return BaseResponse.call_action is _patched_call_action


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class _QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without werkzeug's per-request access log line on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return


class _QuietMotoServer(ThreadedMotoServer):
    """ThreadedMotoServer on 127.0.0.1, port 0 (a free port), without access logging.

    Only `_server_entry` differs from moto's: the quiet handler, and a bind failure is reported
    to start() instead of leaving it waiting forever.
    """

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self._startup_error: BaseException | None = None

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        try:
            self._server = make_server(
                self._ip_address, self._port, app, True, request_handler=_QuietRequestHandler
            )
        except OSError as exc:
            self._startup_error = exc
            self._server_ready_event.set()
            return
        self._server_ready_event.set()
        # A short poll interval: stop() waits for the serving loop to notice the shutdown.
        self._server.serve_forever(poll_interval=0.05)

    def start(self) -> None:
        super().start()
        if self._startup_error is not None:
            raise RuntimeError("the simulated AWS server could not start") from self._startup_error
