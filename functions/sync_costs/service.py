"""One linked account's Cost Explorer sync: the 'costs' job handler (functions/jobs/registry.py).

`run` is called by the queue consumer (functions/jobs/worker.py) with a `JobContext`: the
job's lease, a run record already open, our AWS clients and the clock. Pure parts are in
`transform`. It runs in three steps:

1. A short read transaction: the account, the ExternalId it was verified with (kept in memory
   only, for the one assume-role call), the months pulled before and, for an account that is
   a member of a linked organization, its management account ("payer") and the months that one
   pulled for it. The months to pull follow (`transform.plan_months`): a first sync's 14, then
   the current month, months still Estimated, and the scheduled re-pulls of finalised months.
2. AWS, outside any transaction: assume the role (session `cao-sync-<agency>`), then ONE
   GetCostAndUsage request shape for the planned months (MONTHLY; SERVICE, or LINKED_ACCOUNT +
   SERVICE for a management account; three metrics; End the first day of next month, so the
   request is the same all month long), following NextPageToken with otherwise identical
   parameters. Every page is a billed request: requests == pages.
3. Writes as the pages come, each page in its own short transaction (starting with
   `jobs.fence`): the months it completed (and their month-to-date snapshots:
   `shared.store.snapshots`), and where the pull stands (`costs.PullState`: the
   request, the page's NextPageToken, the rows of the month still in progress). The last
   transaction also settles the job and the run. A worker whose lease was taken over raises
   LeaseLostError at its next write and writes nothing more; a crash leaves every month either
   as it was or fully replaced.

A failed pull is resumed, not repeated: its retry sends the kept request with the kept token,
so a pull that fails at page N and is retried buys each page once. AWS does not document how
long a token stays valid: when it refuses one (InvalidNextTokenException, or
RequestChangedException), the retry asks again, from the first page, for the months not yet
stored only (the pages of the month that was in progress are bought again, nothing else). A
kept request of an earlier month is dropped (its End is no longer next month's first day) and
the months are planned afresh; the months it stored stay stored. A page token is an opaque
position in one account's answer, usable only with that account's credentials: it is kept in
Postgres like the rows it leads to, and never logged.

One source per account per month: a member of a linked organization is synced through its
payer while the payer's sync is healthy (it succeeded within MEMBER_FRESHNESS); when it is not,
the member pulls what is due for itself, planned from the months the payer holds for it, and
takes those months over (`costs.store_months`); the payer takes them back when it next pulls
them. Reports therefore never count a member's month twice, in any order of failures.

Large pulls: a run buys at most `Limits.page_budget` pages (200), then stops, keeping its token,
and the job is due again at once (status `partial`); the next run resumes from the token. A
month needing more than `Limits.max_pages` pages (1000) in one request (a very large
organization) makes the pull split by linked-account groups: one request per group (a Filter on
LINKED_ACCOUNT), then one for every account no group names, each stored as its months complete
(`costs.Scope`: only that part's accounts' rows are replaced; the last part records the months).
The groups are half as many accounts as the pages of that month showed; the pages of that one
month bought before the split are the only ones bought twice, once: the account's later pulls are
split from the start (`accounts_per_request` is kept), so no pull of that size fails daily. A
group of one account that still exceeds the limit, or a member account, fails `TooManyPages`.

Failures are classified, recorded (run, job, account status) and end the delivery normally (the
consumer acknowledges them); anything else propagates for the queue to redeliver:

- AccessDenied on assume: the account shows `access_denied`; the third in a row pauses it (no
  more calls until it is verified again). Retried next day, never sooner: no retry storm.
- "User not enabled for cost explorer access": the account shows `cost_explorer_not_enabled`
  with instructions; retried next day.
- LimitExceededException (after botocore's standard retries) and other transient AWS failures:
  rescheduled with exponential backoff and jitter.
- DataUnavailableException: recorded; retried next day.
- An expired session mid-pagination is assumed again once, and the same page asked again.

Credentials stay in the client factory of this call and are dropped with it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from functions.jobs.schemas import JobContext
from functions.sync_costs import transform
from shared.db import Connection, tenant_tx
from shared.errors import (
    AccessDeniedError,
    AwsError,
    CostExplorerNotEnabledError,
    ExpiredCredentialsError,
    LeaseLostError,
    ThrottledError,
)
from shared.kit.months import add_months, month_start
from shared.logs import get_logger
from shared.store import costs, jobs, snapshots
from shared.store.costs import CostRow

if TYPE_CHECKING:
    from shared.aws import Client

CE_REGION = "us-east-1"  # Cost Explorer's only endpoint
MEMBER_FRESHNESS = timedelta(hours=26)  # a payer's pull this recent covers its members
_TOKEN_REFUSED = ("InvalidNextTokenException", "RequestChangedException")


@dataclass(frozen=True)
class Limits:
    """What one run and one month may buy (the registry's handler uses `LIMITS`; tests pass
    small ones rather than huge data)."""

    page_budget: int = 200  # pages a run buys, then it stops (token kept) and is due again at once
    max_pages: int = 1000  # pages one month may take in one request; beyond, the pull is split


LIMITS = Limits()


@dataclass
class _Pull:
    """What one run did: requests made, months and rows stored, the last months to store."""

    state: costs.PullState
    api_calls: int = 0
    ce_requests: int = 0
    pages: int = 0
    stored: dict[date, bool] = field(default_factory=dict)
    rows_written: int = 0
    usage_accounts: set[str] = field(default_factory=set)
    stopped_early: bool = False
    last: transform.CostData | None = None
    last_scope: costs.Scope | None = None
    last_record: bool = True


@dataclass(frozen=True)
class _Plan:
    target: jobs.SyncTarget
    months: list[date]
    covers: list[str]  # AWS accounts this account's pull is the source for
    covered_by_payer: bool
    state: costs.PullState = field(default_factory=costs.PullState)
    staged: list[CostRow] = field(default_factory=list)
    known: list[str] = field(default_factory=list)  # a payer's accounts (ListAccounts, rows)


class _Failure(Exception):
    """Internal: a classified failure, recorded by `_record_failure`."""

    def __init__(self, error_class: str, retry_at: datetime) -> None:
        super().__init__(error_class)
        self.error_class = error_class
        self.retry_at = retry_at


class _TokenRefused(Exception):
    """Internal: AWS no longer accepts the page token an earlier run kept."""


def run(
    ctx: JobContext, *, draw: Callable[[], float] = random.random, limits: Limits = LIMITS
) -> None:
    """Sync the costs of the leased account; see the module docstring."""
    conn, lease, clock, run_id = ctx.conn, ctx.lease, ctx.clock, ctx.run_id
    now = clock()
    plan = _plan(conn, lease, now)
    with tenant_tx(conn, lease.agency_id):
        state = jobs.job_state(conn, lease.agency_id, lease.job_id)
    failures = state.consecutive_failures if state else 0

    if plan.covered_by_payer:
        _record_covered(conn, lease, run_id, plan.months, clock())
        return

    pull = _Pull(plan.state)
    try:
        _pull(ctx, plan, pull, now=now, failures=failures, draw=draw, limits=limits)
    except _Failure as failure:
        _record_failure(conn, lease, run_id, pull, plan.months, failure, clock())
        return
    except transform.MalformedAnswerError:
        malformed = _Failure("MalformedCostAnswer", transform.next_daily_run(now))
        # Nothing of that request is kept: the next run asks afresh.
        pull.state = costs.PullState(accounts_per_request=pull.state.accounts_per_request)
        _record_failure(
            conn, lease, run_id, pull, plan.months, malformed, clock(), forget_pull=True
        )
        return
    _record_success(conn, lease, run_id, plan, pull, clock())


def _plan(conn: Connection, lease: jobs.Lease, now: datetime) -> _Plan:
    today = now.astimezone(UTC).date()
    with tenant_tx(conn, lease.agency_id):
        target = jobs.sync_target(conn, lease.agency_id, lease.account_id)
        if target is None:
            raise LeaseLostError("the account was unlinked")
        holders = [lease.account_id]
        payer = None
        if not target.is_management:
            previous = add_months(month_start(today), -1)
            payer = costs.payer_of(conn, lease.agency_id, target.aws_account_id, previous)
            if payer is not None:
                holders.append(payer.account_id)  # what the payer holds for this member
        known = costs.month_records(conn, lease.agency_id, holders)
        pull_state = costs.pull_state(conn, lease.agency_id, lease.account_id)
        staged = (
            costs.staged_rows(conn, lease.agency_id, lease.account_id)
            if pull_state.request is not None
            else []
        )
        accounts = (
            costs.known_accounts(
                conn, lease.agency_id, lease.account_id, transform.history_window(today)[0]
            )
            if target.is_management
            else []
        )
    months = transform.plan_months(today, known, now)
    fresh = (
        payer is not None
        and payer.last_success_at is not None
        and payer.last_success_at >= now - MEMBER_FRESHNESS
    )
    # The AWS accounts whose months this pull is the source of: its own, and (a payer) every
    # account its rows name, which store_months adds.
    return _Plan(
        target,
        months,
        [target.aws_account_id],
        covered_by_payer=fresh,
        state=pull_state,
        staged=staged,
        known=accounts,
    )


# ---- AWS ----------------------------------------------------------------------------------------


def _pull(
    ctx: JobContext,
    plan: _Plan,
    pull: _Pull,
    *,
    now: datetime,
    failures: int,
    draw: Callable[[], float],
    limits: Limits,
) -> None:
    """Read the pages, part after part, storing as they come; _Failure when classified."""
    today = now.astimezone(UTC).date()
    management = plan.target.is_management
    read = _page_reader(ctx, plan, pull, now=now, failures=failures, draw=draw)
    staged = plan.staged
    if pull.state.request is None or not _resumable(pull.state.request, today, management):
        # Nothing to resume (or a request of another month, which AWS would now refuse or
        # answer differently): a new pull of the planned months, split if the account's are.
        kept = pull.state.request is not None
        pull.state = _new_pull(plan, pull.state, today)
        staged = []
        if kept:  # what the dropped request kept goes before anything of the new one is stored
            _save(ctx, plan, pull, None, None, True, pull.state, [], restart=True)
    while True:
        state = _pull_part(ctx, plan, pull, read, staged, today=today, now=now, limits=limits)
        if state is None:
            return
        pull.state, staged = state, []
        if pull.pages >= limits.page_budget:  # the next part waits for the next run
            pull.stopped_early = True
            return


def _resumable(request: dict[str, Any], today: date, management: bool) -> bool:
    """Whether `request` is still what this month's pull would send (End = next month's 1st)."""
    try:
        months = transform.request_months(request)
        rebuilt = transform.cost_request(months, today, management)
    except (KeyError, TypeError, ValueError):
        return False
    if "Filter" in request:
        rebuilt["Filter"] = request["Filter"]
    return rebuilt == request


def _parts(state: costs.PullState) -> int:
    return 1 if state.groups is None else len(state.groups) + 1


def _part_request(
    state: costs.PullState, months: list[date], today: date, management: bool
) -> dict[str, Any]:
    groups = state.groups
    if groups is None:
        return transform.cost_request(months, today, management)
    if state.part < len(groups):
        return transform.cost_request(months, today, management, accounts=groups[state.part])
    every = [a for g in groups for a in g]
    return transform.cost_request(months, today, management, accounts=every, exclude=True)


def _part_scope(state: costs.PullState) -> tuple[costs.Scope | None, bool]:
    """Which rows a part replaces, and whether it records the months (the last part does)."""
    groups = state.groups
    if groups is None:
        return None, True
    if state.part < len(groups):
        return costs.Scope(tuple(groups[state.part])), False
    return costs.Scope(tuple(a for g in groups for a in g), exclude=True), True


def _chunks(accounts: list[str], size: int) -> list[list[str]]:
    return [accounts[n : n + size] for n in range(0, len(accounts), size)]


def _starting(
    state: costs.PullState, first: date, today: date, management: bool
) -> costs.PullState:
    """`state` with its part's request built and asked from its first page."""
    months = [m for m in transform.history_window(today) if m >= first]
    request = _part_request(state, months, today, management)
    return replace(
        state,
        request=request,
        token=None,
        pending=dict.fromkeys(months, False),
        month_pages=0,
        first=first,
    )


def _new_pull(plan: _Plan, state: costs.PullState, today: date) -> costs.PullState:
    management = plan.target.is_management
    per = state.accounts_per_request
    groups = _chunks(plan.known, per) if management and per and plan.known else None
    fresh = costs.PullState(groups=groups, part=0, accounts_per_request=per)
    return _starting(fresh, plan.months[0], today, management)


def _pull_part(
    ctx: JobContext,
    plan: _Plan,
    pull: _Pull,
    read: Callable[[dict[str, Any]], dict[str, Any]],
    staged: list[CostRow],
    *,
    today: date,
    now: datetime,
    limits: Limits,
) -> costs.PullState | None:
    """Buy the pages of the part in progress from where it stands. Returns the state to go on
    with (the next part, the same part asked again, a finer split), or None: the pull is done
    (its last months in `pull.last`) or the run stopped at its page budget."""
    state = pull.state
    first = state.first
    assert state.request is not None and first is not None
    target = plan.target
    management = target.is_management
    request = state.request
    months = transform.request_months(request)
    assembler = transform.MonthAssembler.resume(
        months, target.aws_account_id, management, today, pending=state.pending, rows=staged
    )
    scope, record = _part_scope(state)
    token, month_pages = state.token, state.month_pages
    while True:
        try:
            page = read(request if token is None else {**request, "NextPageToken": token})
        except _TokenRefused:
            # The kept token expired (or AWS refuses it now): ask this part again from its
            # first page, for its months still pending only; the complete ones are stored.
            pending = sorted(assembler.pending)
            state = replace(
                state,
                request=_part_request(state, pending, today, management),
                token=None,
                pending=dict.fromkeys(pending, False),
                month_pages=0,
            )
            _save(ctx, plan, pull, None, scope, record, state, [], restart=True)
            return state
        pull.pages += 1
        month_pages += 1
        token = page.get("NextPageToken") or None
        complete = assembler.add(page)
        del page  # nothing of the answer outlives this step but the rows
        if complete.months:
            month_pages = 1  # the page a month completes on holds the start of the next
        if token is None:
            rest = assembler.finish()
            done = transform.CostData(
                {**complete.months, **rest.months}, [*complete.rows, *rest.rows]
            )
            if state.part + 1 < _parts(state):
                following = _starting(replace(state, part=state.part + 1), first, today, management)
                _save(ctx, plan, pull, done, scope, record, following, [], restart=True)
                return following
            pull.last = done  # stored with the job's settlement, in one transaction
            pull.last_scope, pull.last_record = scope, record
            pull.state = costs.PullState(accounts_per_request=state.accounts_per_request)
            return None
        if month_pages > limits.max_pages:
            split = _split(plan, state, assembler, today, now)
            _save(ctx, plan, pull, complete, scope, record, split, [], restart=True)
            return split
        state = replace(state, token=token, pending=assembler.pending, month_pages=month_pages)
        _save(ctx, plan, pull, complete, scope, record, state, assembler.staged)
        pull.state = state
        if pull.pages >= limits.page_budget:
            pull.stopped_early = True  # the next run resumes from the token
            return None


def _split(
    plan: _Plan,
    state: costs.PullState,
    assembler: transform.MonthAssembler,
    today: date,
    now: datetime,
) -> costs.PullState:
    """A month needs more pages than a request may buy: ask per group of linked accounts.

    The accounts seen in the pages bought for that month are about what a request can take:
    groups of half as many. The pages of that month bought so far are not kept (their order
    within the month is not documented, so no account is known complete); this happens once,
    since the account's later pulls are split from the start."""
    month = min(assembler.pending)
    seen = assembler.accounts_of(month)
    management = plan.target.is_management
    groups = state.groups
    if not management or (groups is None and len(seen) < 2):
        raise _Failure("TooManyPages", transform.next_daily_run(now))
    if groups is None:  # the whole organization in one request
        every = sorted(set(plan.known) | seen)
        size = max(1, len(seen) // 2)
        split = costs.PullState(groups=_chunks(every, size), part=0, accounts_per_request=size)
        return _starting(split, month, today, management)
    if state.part < len(groups):  # one group: in smaller groups
        group = groups[state.part]
        if len(group) < 2:
            raise _Failure("TooManyPages", transform.next_daily_run(now))
        size = max(1, min(len(group), len(seen)) // 2)
        finer = [*groups[: state.part], *_chunks(group, size), *groups[state.part + 1 :]]
    else:  # the accounts no group named: groups of their own
        new = sorted(seen - {a for g in groups for a in g})
        if not new:
            raise _Failure("TooManyPages", transform.next_daily_run(now))
        size = max(1, len(new) // 2)
        finer = [*groups, *_chunks(new, size)]
    per = min(size, state.accounts_per_request or size)
    assert state.first is not None
    finer_state = replace(state, groups=finer, accounts_per_request=per)
    return _starting(finer_state, state.first, today, management)


def _page_reader(
    ctx: JobContext,
    plan: _Plan,
    pull: _Pull,
    *,
    now: datetime,
    failures: int,
    draw: Callable[[], float],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Assume the role; returns the function that buys one page (each call is a request)."""
    from shared import aws  # noqa: PLC0415 - botocore only when a sync calls AWS

    target = plan.target
    session = aws.session_name(ctx.lease.agency_id, "sync")

    def assume() -> Client:
        pull.api_calls += 1
        try:
            clients = aws.assume_role(ctx.ours, target.role_arn, target.external_id, session)
        except AccessDeniedError as exc:
            raise _Failure("AccessDenied", transform.next_daily_run(now)) from exc
        except AwsError as exc:
            raise _transient(exc, now, failures, draw) from exc
        return clients.client("ce", CE_REGION)

    ce = assume()
    reassumed = False

    def read(params: dict[str, Any]) -> dict[str, Any]:
        nonlocal ce, reassumed
        while True:
            pull.api_calls += 1
            pull.ce_requests += 1
            try:
                return dict(ce.get_cost_and_usage(**params))
            except ExpiredCredentialsError as exc:
                if reassumed:
                    raise _transient(exc, now, failures, draw) from exc
                reassumed = True
                ce = assume()  # then the same page again, with the same token
            except CostExplorerNotEnabledError as exc:
                raise _Failure("CostExplorerNotEnabled", transform.next_daily_run(now)) from exc
            except AwsError as exc:
                if exc.aws_code in _TOKEN_REFUSED and "NextPageToken" in params:
                    raise _TokenRefused from exc
                if exc.aws_code == "DataUnavailableException":
                    raise _Failure("DataUnavailable", transform.next_daily_run(now)) from exc
                raise _transient(exc, now, failures, draw) from exc

    return read


def _transient(exc: AwsError, now: datetime, failures: int, draw: Callable[[], float]) -> _Failure:
    """Throttling (botocore already retried), 5xx, expired twice, anything else AWS refused:
    try again later, backing off with jitter."""
    name = "Throttled" if isinstance(exc, ThrottledError) else (exc.aws_code or exc.code)
    return _Failure(name[: jobs.MAX_ERROR_CLASS], transform.backoff(now, failures, draw()))


# ---- writes -------------------------------------------------------------------------------------


def _write(
    conn: Connection,
    lease: jobs.Lease,
    *,
    plan: _Plan,
    pull: _Pull,
    data: transform.CostData,
    now: datetime,
    scope: costs.Scope | None,
    record: bool,
) -> None:
    """Store complete months (inside the caller's fenced transaction)."""
    pull.rows_written += costs.store_months(
        conn,
        lease.agency_id,
        lease.account_id,
        data.months,
        data.rows,
        covers=plan.covers,
        synced_at=now,
        scope=scope,
        record=record,
    )
    # The month-to-date snapshots (functions/alerts reads their growth): from the rows just
    # bought, in the same transaction; no request of their own.
    snapshots.record(conn, lease.agency_id, lease.account_id, data.months, data.rows, taken_at=now)
    pull.stored.update(data.months)
    pull.usage_accounts |= data.usage_accounts


def _save(  # noqa: PLR0917 - private; the same order everywhere
    ctx: JobContext,
    plan: _Plan,
    pull: _Pull,
    data: transform.CostData | None,
    scope: costs.Scope | None,
    record: bool,
    state: costs.PullState,
    staged: list[CostRow],
    *,
    restart: bool = False,
) -> None:
    """One fenced transaction per page: the months it completed, where the pull stands (its
    token), and the rows of the months still pending: kept whatever happens next."""
    conn, lease = ctx.conn, ctx.lease
    with tenant_tx(conn, lease.agency_id):
        jobs.fence(conn, lease)
        done: dict[date, bool] = {}
        if data is not None and data.months:
            _write(
                conn,
                lease,
                plan=plan,
                pull=pull,
                data=data,
                now=ctx.clock(),
                scope=scope,
                record=record,
            )
            done = data.months
        costs.save_pull(
            conn, lease.agency_id, lease.account_id, state, staged, done=done, restart=restart
        )


def _record_success(  # noqa: PLR0917 - private; called once, in this order
    conn: Connection,
    lease: jobs.Lease,
    run_id: uuid.UUID,
    plan: _Plan,
    pull: _Pull,
    now: datetime,
) -> None:
    target = plan.target
    # Stopped at the page budget: due again at once, to continue after the stored months.
    next_run = now if pull.stopped_early else transform.next_daily_run(now)
    with tenant_tx(conn, lease.agency_id):
        jobs.fence(conn, lease)
        if pull.last is not None:
            _write(
                conn,
                lease,
                plan=plan,
                pull=pull,
                data=pull.last,
                now=now,
                scope=pull.last_scope,
                record=pull.last_record,
            )
        if not pull.stopped_early:  # the pull is complete: nothing of it to resume
            costs.save_pull(conn, lease.agency_id, lease.account_id, pull.state, restart=True)
        jobs.note_access_ok(conn, lease.agency_id, lease.account_id)
        jobs.note_cost_explorer(conn, lease.agency_id, lease.account_id, enabled=True)
        members = 0
        if target.is_management:
            members = _cover_members(conn, lease, target, pull, next_run, now)
        jobs.complete(conn, lease, next_run, now=now)
        jobs.finish_run(
            conn,
            lease.agency_id,
            run_id,
            "partial" if pull.stopped_early else "succeeded",
            now=now,
            api_calls=pull.api_calls,
            ce_requests=pull.ce_requests,
            months=list(pull.stored),
            rows_written=pull.rows_written,
        )
    pull.last = None
    get_logger().info(
        "cost sync stopped at its page budget" if pull.stopped_early else "cost sync succeeded",
        extra={
            "job_id": str(lease.job_id),
            "account_id": str(lease.account_id),
            "months": len(pull.stored),
            "ce_requests": pull.ce_requests,
            "rows_written": pull.rows_written,
            "members_covered": members,
        },
    )


def _cover_members(  # noqa: PLR0917 - private; called once, in this order
    conn: Connection,
    lease: jobs.Lease,
    target: jobs.SyncTarget,
    pull: _Pull,
    next_run: datetime,
    now: datetime,
) -> int:
    """Members of this organization linked on their own: their costs just came through the
    payer (which took over their months as it stored them), so their idle jobs are done until
    the next run: no request of their own."""
    members = jobs.linked_accounts_by_aws_id(
        conn, lease.agency_id, pull.usage_accounts - {target.aws_account_id}
    )
    jobs.advance_idle(
        conn, lease.agency_id, list(members.values()), kind="costs", next_run_at=next_run, now=now
    )
    return len(members)


def _record_covered(
    conn: Connection, lease: jobs.Lease, run_id: uuid.UUID, months: list[date], now: datetime
) -> None:
    """The payer's sync is healthy: it pulls this member's months; nothing to buy here."""
    with tenant_tx(conn, lease.agency_id):
        jobs.fence(conn, lease)
        jobs.complete(conn, lease, transform.next_daily_run(now), now=now)
        jobs.finish_run(conn, lease.agency_id, run_id, "succeeded", now=now, months=months)
    get_logger().info(
        "cost sync covered by the payer",
        extra={"job_id": str(lease.job_id), "account_id": str(lease.account_id)},
    )


def _record_failure(  # noqa: PLR0917 - private; the same order as _record_success
    conn: Connection,
    lease: jobs.Lease,
    run_id: uuid.UUID,
    pull: _Pull,
    months: list[date],
    failure: _Failure,
    now: datetime,
    *,
    forget_pull: bool = False,
) -> None:
    paused = False
    with tenant_tx(conn, lease.agency_id):
        jobs.fence(conn, lease)
        if forget_pull:
            costs.save_pull(conn, lease.agency_id, lease.account_id, pull.state, restart=True)
        if failure.error_class == "AccessDenied":
            paused = jobs.note_access_denied(conn, lease.agency_id, lease.account_id)
        elif failure.error_class == "CostExplorerNotEnabled":
            jobs.note_access_ok(conn, lease.agency_id, lease.account_id)
            jobs.note_cost_explorer(conn, lease.agency_id, lease.account_id, enabled=False)
        if paused:
            jobs.pause(conn, lease, failure.error_class, now=now)
        else:
            jobs.fail(conn, lease, failure.error_class, failure.retry_at, False, now=now)
        jobs.finish_run(
            conn,
            lease.agency_id,
            run_id,
            "failed",
            now=now,
            api_calls=pull.api_calls,
            ce_requests=pull.ce_requests,
            months=months,
            rows_written=pull.rows_written,
            error_class=failure.error_class,
        )
    get_logger().warning(
        "cost sync failed",
        extra={
            "job_id": str(lease.job_id),
            "account_id": str(lease.account_id),
            "error_class": failure.error_class,
            "ce_requests": pull.ce_requests,
            "months_kept": len(pull.stored),
            "paused": paused,
            "retry_at": failure.retry_at.isoformat(),
        },
    )
