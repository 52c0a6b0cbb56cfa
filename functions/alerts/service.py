"""Alerts' use cases: forecasts, budgets, anomalies and the evaluation after each cost sync.

**Evaluation** (`after_cost_sync`) runs in the costs job, right after the sync stored its
months (functions/jobs/registry.py), never on a read request: for every series the sync just
snapshotted, the anomaly rule (`detect`); for every budget of the agency, its thresholds
(each raised at most once a month: `cao.budget_events`' unique key); then the snapshots past
their retention are purged. It reads only what is stored: no AWS request.

**Reads** compute forecasts from the stored snapshots (`forecast`): the numbers shown by
/api/forecasts and by each budget are the same computation over the same series.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import groupby

from functions.alerts import detect, forecast, schemas, whatchanged
from shared.db import Connection, tenant_tx
from shared.errors import ConflictError, NotFoundError, UnprocessableError
from shared.kit.months import add_months, month_of, month_text
from shared.kit.pages import decode_uuid_cursor, split_page
from shared.logs import get_logger
from shared.store import accounts, audit, clients, snapshots
from shared.store import alerts as store

HISTORY = detect.LOOKBACK + timedelta(days=7)  # the baseline's rates and their references
_CENT = Decimal("0.01")
MAX_ABSOLUTE_FLOOR = 1_000_000  # per day (the column's bound)


# ---- scopes and forecasts -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Scope:
    account_ids: tuple[uuid.UUID, ...] | None
    aws_account_ids: tuple[str, ...] | None


def _scope(
    conn: Connection,
    agency_id: uuid.UUID,
    client_id: uuid.UUID | None,
    account_id: uuid.UUID | None,
) -> _Scope:
    """The account filter of a client and/or an account (both: the account, if the client's)."""
    if client_id is None and account_id is None:
        return _Scope(None, None)
    ids: tuple[uuid.UUID, ...] | None = None
    aws: tuple[str, ...] | None = None
    if client_id is not None:
        found = clients.scope_of(conn, agency_id, client_id)
        if found is None:
            raise NotFoundError(f"client not found: {client_id}")
        ids, aws = found.account_ids, found.aws_account_ids
    if account_id is not None:
        one = accounts.aws_ids_of(conn, agency_id, [account_id])
        if not one:
            raise NotFoundError(f"account not found: {account_id}")
        if ids is not None and account_id not in ids:
            return _Scope((), ())
        ids, aws = (account_id,), (one[account_id],)
    return _Scope(ids, aws)


@dataclass(frozen=True)
class _Series:
    usage_account_id: str
    service: str
    currency: str
    account_id: uuid.UUID  # the link of its latest snapshot
    links: frozenset[uuid.UUID]  # every link it was pulled through this month
    result: forecast.Forecast
    as_of: datetime | None


def _all_forecasts(conn: Connection, agency_id: uuid.UUID, month: date) -> list[_Series]:
    """Every series' forecast of the agency for `month` (one read of the month's snapshots)."""
    points = snapshots.of_month(conn, agency_id, month)
    previous = store.previous_totals(conn, agency_id, add_months(month, -1))
    out = []
    for key, group in groupby(points, key=lambda s: (s.usage_account_id, s.service, s.currency)):
        series = list(group)
        result = forecast.series_forecast(
            [forecast.Point(s.taken_at, s.amount) for s in series], month, previous.get(key)
        )
        out.append(
            _Series(
                *key,
                series[-1].account_id,
                frozenset(s.account_id for s in series),
                result,
                series[-1].taken_at,
            )
        )
    return out


def _in_scope(series: Sequence[_Series], scope: _Scope) -> list[_Series]:
    """The series of a scope: pulled through one of its accounts, or attributed to one of
    its AWS accounts (the cost reads' account filter)."""
    if scope.account_ids is None and scope.aws_account_ids is None:
        return list(series)
    ids, aws = set(scope.account_ids or ()), set(scope.aws_account_ids or ())
    return [s for s in series if s.usage_account_id in aws or s.links & ids]


def _forecasts(conn: Connection, agency_id: uuid.UUID, month: date, scope: _Scope) -> list[_Series]:
    return _in_scope(_all_forecasts(conn, agency_id, month), scope)


def _sum(items: Sequence[_Series], currency: str) -> tuple[Decimal, Decimal, Decimal, bool]:
    picked = [s.result for s in items if s.currency == currency]
    return (
        sum((r.actual for r in picked), Decimal(0)),
        sum((r.forecast for r in picked), Decimal(0)),
        sum((r.rate_per_day for r in picked), Decimal(0)),
        any(r.floored for r in picked),
    )


def _money(value: Decimal) -> str:
    """An amount with two decimals ("1260.00"), as a budget's amount is given."""
    return format(value.quantize(_CENT), "f")


def forecasts(
    conn: Connection,
    agency_id: uuid.UUID,
    now: datetime,
    *,
    group_by: schemas.ForecastGroupBy,
    client_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
) -> schemas.ForecastReport:
    """This month's actual and month-end forecast per client, account or service."""
    month = month_of(now)
    with tenant_tx(conn, agency_id):
        scope = _scope(conn, agency_id, client_id, account_id)
        series = _forecasts(conn, agency_id, month, scope)
        labels = accounts.labels(conn, agency_id)
        owners = clients.client_of_accounts(conn, agency_id)
        names = {c.id: c.name for c in clients.list_all(conn, agency_id)} if owners else {}

    def key_of(s: _Series) -> tuple[str, str | None]:
        label = labels.get(s.usage_account_id)
        if group_by == "service":
            return s.service, None
        if group_by == "account":
            return s.usage_account_id, label.name if label else None
        linked = label.account_id if label and label.account_id else s.account_id
        owner = owners.get(linked) or owners.get(s.account_id)
        return (str(owner), names.get(owner)) if owner else ("none", None)

    grouped: dict[tuple[str, str | None, str], list[_Series]] = {}
    for s in series:
        key, label = key_of(s)
        grouped.setdefault((key, label, s.currency), []).append(s)
    items = []
    for (key, label, currency), members in grouped.items():
        actual, fc, rate, floored = _sum(members, currency)
        items.append(
            schemas.ForecastItem(
                key=key,
                label=label,
                currency=currency,
                actual=_money(actual),
                forecast=_money(fc),
                rate_per_day=_money(rate),
                previous_month_floor=floored,
            )
        )
    items.sort(key=lambda i: (-Decimal(i.forecast), i.key, i.currency))
    totals = []
    for currency in sorted({s.currency for s in series}):
        actual, fc, rate, floored = _sum(series, currency)
        totals.append(
            schemas.ForecastItem(
                key="total",
                label=None,
                currency=currency,
                actual=_money(actual),
                forecast=_money(fc),
                rate_per_day=_money(rate),
                previous_month_floor=floored,
            )
        )
    as_of = max((s.as_of for s in series if s.as_of), default=None)
    return schemas.ForecastReport(
        month=month_text(month), group_by=group_by, as_of=as_of, items=items, totals=totals
    )


# ---- budgets ------------------------------------------------------------------------------------


def _budget_numbers(
    conn: Connection,
    agency_id: uuid.UUID,
    row: store.BudgetRow,
    series: Sequence[_Series],
) -> tuple[Decimal, Decimal]:
    scope = _scope(conn, agency_id, row.client_id, row.account_id)
    actual, fc, _, _ = _sum(_in_scope(series, scope), row.currency)
    return actual, fc


def _percent(part: Decimal, whole: Decimal) -> str:
    return format((part * 100 / whole).quantize(Decimal("0.1")), "f")


def _budget_view(
    row: store.BudgetRow,
    month: date,
    actual: Decimal,
    fc: Decimal,
    raised: Sequence[store.BudgetEventRow],
) -> schemas.Budget:
    return schemas.Budget(
        id=row.id,
        name=row.name,
        client_id=row.client_id,
        account_id=row.account_id,
        amount=_money(row.amount),
        currency=row.currency,
        thresholds=[schemas.Threshold.model_validate(t) for t in row.thresholds],
        month=month_text(month),
        actual=_money(actual),
        forecast=_money(fc),
        actual_percent=_percent(actual, row.amount),
        forecast_percent=_percent(fc, row.amount),
        raised=[
            schemas.RaisedThreshold(
                kind="forecast" if e.kind == "forecast" else "actual",
                percent=e.percent,
                raised_at=e.raised_at,
                actual=_money(e.actual),
                forecast=_money(e.forecast),
            )
            for e in raised
            if e.budget_id == row.id
        ],
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def list_budgets(conn: Connection, agency_id: uuid.UUID, now: datetime) -> schemas.BudgetList:
    month = month_of(now)
    with tenant_tx(conn, agency_id):
        rows = store.budgets(conn, agency_id)
        raised = store.budget_events(conn, agency_id, month, [r.id for r in rows])
        series = _all_forecasts(conn, agency_id, month) if rows else []
        items = [
            _budget_view(r, month, *_budget_numbers(conn, agency_id, r, series), raised)
            for r in rows
        ]
    return schemas.BudgetList(month=month_text(month), items=items)


def get_budget(
    conn: Connection, agency_id: uuid.UUID, budget_id: uuid.UUID, now: datetime
) -> schemas.Budget:
    month = month_of(now)
    with tenant_tx(conn, agency_id):
        row = store.budget(conn, agency_id, budget_id)
        if row is None:
            raise NotFoundError("budget not found")
        raised = store.budget_events(conn, agency_id, month, [row.id])
        series = _all_forecasts(conn, agency_id, month)
        return _budget_view(row, month, *_budget_numbers(conn, agency_id, row, series), raised)


def _positive(amount: str) -> Decimal:
    value = Decimal(amount)
    if value <= 0:
        raise UnprocessableError("amount must be above 0", code="invalid_request")
    return value


def create_budget(
    conn: Connection, agency_id: uuid.UUID, actor: str, body: schemas.BudgetCreate, now: datetime
) -> schemas.Budget:
    with tenant_tx(conn, agency_id):
        _scope(conn, agency_id, body.client_id, body.account_id)  # 404 for unknown ids
        if (body.client_id is None) == (body.account_id is None):
            raise UnprocessableError(
                "a budget is for one client_id or one account_id: send exactly one",
                code="invalid_request",
            )
        amount = _positive(body.amount)
        if store.count_budgets(conn, agency_id) >= store.MAX_BUDGETS:
            raise ConflictError(
                f"an agency can hold at most {store.MAX_BUDGETS} budgets", code="too_many_budgets"
            )
        thresholds = [t.model_dump() for t in body.thresholds]
        budget_id = store.insert_budget(
            conn,
            agency_id,
            name=body.name,
            client_id=body.client_id,
            account_id=body.account_id,
            amount=amount,
            currency=body.currency,
            thresholds=thresholds,
        )
        audit.record(
            conn,
            agency_id,
            actor,
            "budget.created",
            str(budget_id),
            {"name": body.name, "amount": str(amount), "thresholds": thresholds},
        )
    return get_budget(conn, agency_id, budget_id, now)


def update_budget(
    conn: Connection,
    agency_id: uuid.UUID,
    actor: str,
    budget_id: uuid.UUID,
    body: schemas.BudgetPatch,
    *,
    now: datetime,
) -> schemas.Budget:
    with tenant_tx(conn, agency_id):
        row = store.budget(conn, agency_id, budget_id, lock=True)
        if row is None:
            raise NotFoundError("budget not found")
        amount = _positive(body.amount) if body.amount is not None else row.amount
        thresholds = (
            [t.model_dump() for t in body.thresholds]
            if body.thresholds is not None
            else row.thresholds
        )
        store.update_budget(
            conn,
            agency_id,
            budget_id,
            name=body.name or row.name,
            amount=amount,
            thresholds=thresholds,
        )
        audit.record(
            conn,
            agency_id,
            actor,
            "budget.updated",
            str(budget_id),
            {k: v for k, v in body.model_dump(exclude_none=True).items()},
        )
    return get_budget(conn, agency_id, budget_id, now)


def delete_budget(conn: Connection, agency_id: uuid.UUID, actor: str, budget_id: uuid.UUID) -> None:
    with tenant_tx(conn, agency_id):
        row = store.budget(conn, agency_id, budget_id, lock=True)
        if row is None or not store.delete_budget(conn, agency_id, budget_id):
            raise NotFoundError("budget not found")
        audit.record(conn, agency_id, actor, "budget.deleted", str(budget_id), {"name": row.name})


def _evaluate_budgets(conn: Connection, agency_id: uuid.UUID, now: datetime) -> int:
    """Raise every threshold crossed this month not raised yet; returns how many were."""
    month = month_of(now)
    raised = 0
    rows = store.budgets(conn, agency_id)
    series = _all_forecasts(conn, agency_id, month) if rows else []
    for row in rows:
        actual, fc = _budget_numbers(conn, agency_id, row, series)
        for t in row.thresholds:
            limit = row.amount * Decimal(int(t["percent"])) / 100
            crossed = actual >= limit if t["kind"] == "actual" else fc > limit
            if crossed and store.raise_threshold(
                conn,
                agency_id,
                row.id,
                month=month,
                kind=str(t["kind"]),
                percent=int(t["percent"]),
                raised_at=now,
                actual=actual,
                forecast=fc,
                amount=row.amount,
            ):
                raised += 1
    return raised


# ---- anomalies ----------------------------------------------------------------------------------


def _evaluate_anomalies(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    since: datetime,
    until: datetime | None = None,
) -> tuple[int, int]:
    """The anomaly rule on every series the sync just snapshotted: (raised, extended)."""
    floors = store.floors(conn, agency_id)
    rule = detect.Floors(floors.relative_floor_pct, floors.absolute_floor)
    points = snapshots.series_touched(
        conn,
        agency_id,
        account_id,
        taken_since=since,
        history_since=since - HISTORY,
        taken_until=until,
    )
    raised = extended = 0
    for (usage, service, currency), group in groupby(
        points, key=lambda s: (s.usage_account_id, s.service, s.currency)
    ):
        series = list(group)
        latest = max(s.taken_at for s in series)
        if latest < since:
            continue
        detect_points = [
            detect.Point(datetime(s.month.year, s.month.month, 1, tzinfo=UTC), s.taken_at, s.amount)
            for s in series
        ]
        finding = detect.evaluate(detect.rates(detect_points), latest, rule)
        if finding is None:
            continue
        open_id = store.open_anomaly(
            conn, agency_id, usage, service, currency, seen_since=latest - detect.CONTINUES
        )
        if open_id is not None:
            store.extend_anomaly(conn, agency_id, open_id, latest)
            extended += 1
            continue
        rate = finding.rate
        if store.insert_anomaly(
            conn,
            agency_id,
            account_id=series[-1].account_id,
            usage_account_id=usage,
            service=service,
            currency=currency,
            span_start=rate.start,
            span_end=rate.end,
            growth=rate.growth,
            rate_per_day=rate.per_day,
            baseline_per_day=finding.baseline_per_day,
            mad_per_day=finding.mad_per_day,
            baseline_rates=finding.baseline_rates,
            detected_at=latest,
        ):
            raised += 1
    return raised, extended


def after_cost_sync(
    conn: Connection,
    agency_id: uuid.UUID,
    account_id: uuid.UUID,
    *,
    since: datetime,
    now: datetime,
) -> None:
    """Evaluate anomalies of what the sync of `account_id` snapshotted at or after `since`, the
    agency's budgets, and purge expired snapshots; one transaction."""
    with tenant_tx(conn, agency_id):
        raised, extended = _evaluate_anomalies(conn, agency_id, account_id, since)
        thresholds = _evaluate_budgets(conn, agency_id, now)
        purged = snapshots.purge(conn, agency_id, now.astimezone(UTC).date())
    get_logger().info(
        "alerts evaluated",
        extra={
            "account_id": str(account_id),
            "anomalies_raised": raised,
            "anomalies_extended": extended,
            "thresholds_raised": thresholds,
            "snapshots_purged": purged,
        },
    )


def evaluate_anomalies_at(
    conn: Connection, agency_id: uuid.UUID, account_id: uuid.UUID, at: datetime
) -> int:
    """The anomaly rule as the sync that took the snapshots at `at` ran it (later snapshots
    left out): for seeded snapshot history (make demo). Returns anomalies raised."""
    with tenant_tx(conn, agency_id):
        raised, _ = _evaluate_anomalies(conn, agency_id, account_id, at, until=at)
    return raised


def _summary(row: store.AnomalyRow, label: str | None) -> str:
    who = f"{label} ({row.usage_account_id})" if label else row.usage_account_id
    hours = int((row.span_end - row.span_start).total_seconds() // 3600)
    return (
        f"{who}: {row.service} grew {_money(row.growth)} {row.currency} in {hours} h"
        f" ({_money(row.rate_per_day)}/day) against a usual {_money(row.baseline_per_day)}/day"
    )


def _anomaly_view(row: store.AnomalyRow, label: str | None) -> schemas.Anomaly:
    return schemas.Anomaly(
        id=row.id,
        account_id=row.account_id,
        aws_account_id=row.usage_account_id,
        service=row.service,
        currency=row.currency,
        span_start=row.span_start,
        span_end=row.span_end,
        growth=_money(row.growth),
        rate_per_day=_money(row.rate_per_day),
        baseline_per_day=_money(row.baseline_per_day),
        mad_per_day=_money(row.mad_per_day),
        baseline_rates=row.baseline_rates,
        first_detected_at=row.first_detected_at,
        last_detected_at=row.last_detected_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        note=row.note,
        summary=_summary(row, label),
    )


def list_anomalies(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    client_id: uuid.UUID | None = None,
    account_id: uuid.UUID | None = None,
    acknowledged: bool | None = None,
) -> schemas.AnomalyPage:
    after = decode_uuid_cursor("anomalies", cursor) if cursor else None
    with tenant_tx(conn, agency_id):
        scope = _scope(conn, agency_id, client_id, account_id)
        rows = store.anomalies_page(
            conn,
            agency_id,
            limit=limit,
            after=after,
            account_ids=scope.account_ids,
            usage_account_ids=scope.aws_account_ids,
            acknowledged=acknowledged,
        )
        labels = accounts.labels(conn, agency_id)
    page, next_cursor = split_page(
        rows, limit, "anomalies", lambda r: (r.first_detected_at, str(r.id))
    )
    return schemas.AnomalyPage(
        items=[_anomaly_view(r, _label(labels, r.usage_account_id)) for r in page],
        next_cursor=next_cursor,
    )


def _label(labels: dict[str, accounts.AccountLabel], aws_id: str) -> str | None:
    found = labels.get(aws_id)
    return found.name if found else None


def get_anomaly(
    conn: Connection, agency_id: uuid.UUID, anomaly_id: uuid.UUID
) -> schemas.AnomalyDetail:
    """The anomaly and what changed in its account in the window the lag allows."""
    with tenant_tx(conn, agency_id):
        row = store.anomaly(conn, agency_id, anomaly_id)
        if row is None:
            raise NotFoundError("anomaly not found")
        since, until = row.span_start - whatchanged.LAG, row.span_end
        groups = store.write_event_groups(
            conn,
            agency_id,
            row.usage_account_id,
            since=since,
            until=until,
            name_pattern=whatchanged.WRITE_PATTERN,
        )
        regions = store.regions_read(conn, agency_id, row.usage_account_id)
        labels = accounts.labels(conn, agency_id)
    ranked = whatchanged.rank(row.service, groups)
    base = _anomaly_view(row, _label(labels, row.usage_account_id))
    return schemas.AnomalyDetail(
        **base.model_dump(),
        what_changed=schemas.WhatChanged(
            since=since,
            until=until,
            rule=(
                "CloudTrail events whose name starts with "
                + ", ".join(whatchanged.WRITE_PREFIXES)
                + f" in the account from {int(whatchanged.LAG.total_seconds() // 3600)} h"
                " before the growth's span to its end, grouped by principal and event name,"
                " ranked: operations of the service's AWS services only it defines, then"
                " shared names, then others"
            ),
            regions_read=[
                schemas.RegionRead(region=r.region, read_until=r.read_until) for r in regions
            ],
            groups=[
                schemas.ChangeGroup(
                    principal_arn=r.group.principal_arn,
                    principal_name=r.group.principal_name,
                    event_name=r.group.event_name,
                    count=r.group.count,
                    first_seen=r.group.first_seen,
                    last_seen=r.group.last_seen,
                    source_ips=r.group.source_ips or [],
                    regions=r.group.regions,
                    match=r.match,
                    services_defining=r.services_defining,
                )
                for r in ranked
            ],
        ),
    )


def acknowledge(
    conn: Connection,
    agency_id: uuid.UUID,
    actor: str,
    anomaly_id: uuid.UUID,
    *,
    note: str | None,
    now: datetime,
) -> schemas.AnomalyDetail:
    with tenant_tx(conn, agency_id):
        row = store.anomaly(conn, agency_id, anomaly_id, lock=True)
        if row is None:
            raise NotFoundError("anomaly not found")
        store.acknowledge(conn, agency_id, anomaly_id, by=actor, note=note, at=now)
        audit.record(
            conn,
            agency_id,
            actor,
            "anomaly.acknowledged",
            str(anomaly_id),
            {"service": row.service, "note_chars": len(note or "")},
        )
    return get_anomaly(conn, agency_id, anomaly_id)


def get_settings(conn: Connection, agency_id: uuid.UUID) -> schemas.AnomalySettings:
    with tenant_tx(conn, agency_id):
        value = store.floors(conn, agency_id)
    return schemas.AnomalySettings(
        relative_floor_pct=value.relative_floor_pct,
        absolute_floor_per_day=_money(value.absolute_floor),
    )


def update_settings(
    conn: Connection, agency_id: uuid.UUID, actor: str, body: schemas.AnomalySettingsPatch
) -> schemas.AnomalySettings:
    if body.absolute_floor_per_day is not None and not (
        1 <= Decimal(body.absolute_floor_per_day) <= MAX_ABSOLUTE_FLOOR
    ):
        raise UnprocessableError(
            f"absolute_floor_per_day must be 1.00 to {MAX_ABSOLUTE_FLOOR} (cents never alert)",
            code="invalid_request",
        )
    with tenant_tx(conn, agency_id):
        value = store.floors(conn, agency_id)
        new = store.Floors(
            body.relative_floor_pct
            if body.relative_floor_pct is not None
            else value.relative_floor_pct,
            Decimal(body.absolute_floor_per_day)
            if body.absolute_floor_per_day is not None
            else value.absolute_floor,
        )
        store.set_floors(conn, agency_id, new)
        audit.record(
            conn,
            agency_id,
            actor,
            "anomaly_settings.updated",
            None,
            {
                "relative_floor_pct": new.relative_floor_pct,
                "absolute_floor": str(new.absolute_floor),
            },
        )
    return get_settings(conn, agency_id)
