"""Cost reports: account x service x month sums, grouped one way, with totals and
month-over-month change.

`make_query` validates (pure), `report` reads (one tenant transaction), `shape` is pure; the
CSV form of a report is `render.to_csv` (pure). Sums are `Decimal` end to end and leave as
decimal strings.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from functions.costs import schemas
from functions.costs.schemas import GroupBy, Metric
from shared.db import Connection, tenant_tx
from shared.errors import NotFoundError, UnprocessableError
from shared.kit.months import MAX_MONTHS, add_months, month_of, month_span, month_text, parse_month
from shared.kit.params import dec_str, percent_change
from shared.store import accounts, clients, costs

DEFAULT_MONTHS = 6


@dataclass(frozen=True)
class CostQuery:
    first: date
    last: date
    group_by: GroupBy
    metric: Metric
    account_ids: tuple[uuid.UUID, ...] | None = None
    aws_account_ids: tuple[str, ...] | None = None
    services: tuple[str, ...] | None = None
    client_id: uuid.UUID | None = None


def make_query(
    *,
    now: datetime,
    first: str | None,
    last: str | None,
    group_by: GroupBy,
    metric: Metric,
    account_ids: Sequence[uuid.UUID] | None = None,
    aws_account_ids: Sequence[str] | None = None,
    services: Sequence[str] | None = None,
    client_id: uuid.UUID | None = None,
) -> CostQuery:
    """The query, with the month range defaulted (the last six months) and bounded."""
    first_month = parse_month(first) if first else None
    if last:
        last_month = parse_month(last)
    else:
        last_month = max(month_of(now), first_month) if first_month else month_of(now)
    if first_month is None:
        first_month = add_months(last_month, -(DEFAULT_MONTHS - 1))
    if first_month > last_month:
        raise UnprocessableError("from must not be after to", code="invalid_request")
    if len(month_span(first_month, last_month)) > MAX_MONTHS:
        raise UnprocessableError(
            f"the month range spans more than {MAX_MONTHS} months", code="invalid_request"
        )
    return CostQuery(
        first=first_month,
        last=last_month,
        group_by=group_by,
        metric=metric,
        account_ids=tuple(dict.fromkeys(account_ids)) if account_ids else None,
        aws_account_ids=tuple(dict.fromkeys(aws_account_ids)) if aws_account_ids else None,
        services=tuple(dict.fromkeys(services)) if services else None,
        client_id=client_id,
    )


def _client_filter(
    conn: Connection, agency_id: uuid.UUID, q: CostQuery
) -> tuple[tuple[uuid.UUID, ...] | None, tuple[str, ...] | None]:
    """The account filter with the client's accounts: the client's alone, or (with
    account_id or aws_account_id) those of the given ones the client holds."""
    account_ids, aws_ids = q.account_ids, q.aws_account_ids
    if q.client_id is None:
        return account_ids, aws_ids
    scope = clients.scope_of(conn, agency_id, q.client_id)
    if scope is None:
        raise NotFoundError(f"client not found: {q.client_id}")
    if account_ids is None and aws_ids is None:
        return scope.account_ids, scope.aws_account_ids
    if account_ids is not None:
        account_ids = tuple(a for a in account_ids if a in scope.account_ids)
    if aws_ids is not None:
        aws_ids = tuple(a for a in aws_ids if a in scope.aws_account_ids)
    return account_ids or (), aws_ids or ()


def report(conn: Connection, agency_id: uuid.UUID, q: CostQuery) -> schemas.CostReport:
    with tenant_tx(conn, agency_id):
        if q.account_ids:
            found = accounts.aws_ids_of(conn, agency_id, q.account_ids)
            missing = [str(i) for i in q.account_ids if i not in found]
            if missing:
                raise NotFoundError(f"account not found: {missing[0]}")
        account_ids, aws_ids = _client_filter(conn, agency_id, q)
        usage: list[str] | None = list(aws_ids) if aws_ids is not None else None
        if account_ids:
            found = accounts.aws_ids_of(conn, agency_id, account_ids)
            usage = (usage or []) + list(found.values())
        cells = costs.aggregate(
            conn,
            agency_id,
            metric=q.metric,
            first=q.first,
            last=q.last,
            group_by=q.group_by,
            account_ids=account_ids,
            usage_account_ids=usage,
            services=q.services,
        )
        labels = accounts.labels(conn, agency_id) if q.group_by == "account" else {}
    return shape(cells, q, labels)


Series = dict[tuple[str, str], dict[date, tuple[Decimal, bool]]]  # (key, currency) -> month
_ZERO = (Decimal(0), False)


def shape(
    cells: Sequence[costs.CostCell],
    q: CostQuery,
    labels: dict[str, accounts.AccountLabel],
) -> schemas.CostReport:
    """The report from summed cells (pure)."""
    months = month_span(q.first, q.last)
    series: Series = {}
    for c in cells:
        series.setdefault((c.key, c.currency), {})[c.month] = (c.amount, c.estimated)
    currencies = sorted({currency for _, currency in series})
    if q.group_by == "month":
        groups = [g for cur in currencies for g in _month_groups(_merged(series, cur), cur, months)]
    else:
        groups = _ranked_groups(series, months, labels if q.group_by == "account" else {})
    return schemas.CostReport(
        metric=q.metric,
        group_by=q.group_by,
        first_month=month_text(q.first),
        last_month=month_text(q.last),
        months=[month_text(m) for m in months],
        groups=groups,
        totals=[_totals(_merged(series, cur), cur, months) for cur in currencies],
        estimated_months=sorted({month_text(c.month) for c in cells if c.estimated}),
    )


def _merged(series: Series, currency: str) -> dict[date, tuple[Decimal, bool]]:
    """All groups of one currency summed per month."""
    out: dict[date, tuple[Decimal, bool]] = {}
    for (_, cur), by_month in series.items():
        if cur != currency:
            continue
        for m, (amount, estimated) in by_month.items():
            acc, est = out.get(m, _ZERO)
            out[m] = (acc + amount, est or estimated)
    return out


def _month_groups(
    by_month: dict[date, tuple[Decimal, bool]], currency: str, months: list[date]
) -> list[schemas.CostGroup]:
    groups = []
    for i, m in enumerate(months):
        amount, estimated = by_month.get(m, _ZERO)
        change = None
        if i > 0:
            change = _change(months[i - 1], by_month.get(months[i - 1], _ZERO)[0], m, amount)
        groups.append(
            schemas.CostGroup(
                key=month_text(m),
                label=None,
                account_id=None,
                currency=currency,
                total=dec_str(amount),
                estimated=estimated,
                months=[month_text(m)],
                amounts=[dec_str(amount)],
                amounts_estimated=[estimated],
                change=change,
            )
        )
    return groups


def _ranked_groups(
    series: Series, months: list[date], labels: dict[str, accounts.AccountLabel]
) -> list[schemas.CostGroup]:
    """Account or service groups, largest total first, each with a dense (zero-filled) series
    and the change from the range's second-to-last month to its last."""
    ranked = sorted(
        (
            (sum((v[0] for v in s.values()), Decimal(0)), key, currency, s)
            for (key, currency), s in series.items()
        ),
        key=lambda r: (-r[0], r[1], r[2]),
    )
    texts = [month_text(m) for m in months]
    groups = []
    for total, key, currency, s in ranked:
        label = labels.get(key)
        change = None
        if len(months) >= 2:
            prev_m, last_m = months[-2], months[-1]
            change = _change(prev_m, s.get(prev_m, _ZERO)[0], last_m, s.get(last_m, _ZERO)[0])
        groups.append(
            schemas.CostGroup(
                key=key,
                label=label.name if label else None,
                account_id=label.account_id if label else None,
                currency=currency,
                total=dec_str(total),
                estimated=any(v[1] for v in s.values()),
                months=texts,
                amounts=[dec_str(s.get(m, _ZERO)[0]) for m in months],
                amounts_estimated=[s.get(m, _ZERO)[1] for m in months],
                change=change,
            )
        )
    return groups


def _totals(
    by_month: dict[date, tuple[Decimal, bool]], currency: str, months: list[date]
) -> schemas.CostTotals:
    entries = []
    for i, m in enumerate(months):
        amount, estimated = by_month.get(m, _ZERO)
        change_amount = change_percent = None
        if i > 0:
            prev = by_month.get(months[i - 1], _ZERO)[0]
            change_amount = dec_str(amount - prev)
            change_percent = percent_change(prev, amount)
        entries.append(
            schemas.TotalMonth(
                month=month_text(m),
                amount=dec_str(amount),
                estimated=estimated,
                change_amount=change_amount,
                change_percent=change_percent,
            )
        )
    return schemas.CostTotals(
        currency=currency,
        total=dec_str(sum((v[0] for v in by_month.values()), Decimal(0))),
        estimated=any(v[1] for v in by_month.values()),
        months=entries,
    )


def _change(prev_m: date, prev: Decimal, month: date, amount: Decimal) -> schemas.Change:
    return schemas.Change(
        month=month_text(month),
        previous_month=month_text(prev_m),
        amount=dec_str(amount - prev),
        percent=percent_change(prev, amount),
    )
