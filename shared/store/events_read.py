"""Reads of stored CloudTrail access metadata (`cao.access_events`) for access governance.

Events are read newest first with keyset pagination on (event_time, id): the index
`access_events_agency_time (agency_id, event_time DESC, id DESC)` serves the page directly, and
rows inserted while a client pages never shift it (no OFFSET). The keyset condition is written
as plain comparisons rather than a row comparison: with row-level security on, only leakproof
operators may be used as index conditions ahead of the policy, and timestamptz/bigint
comparisons are.

A principal is its ARN when CloudTrail gave one, else its name (AWS service principals).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import sql
from psycopg.rows import class_row

from shared.db import Connection

MAX_LISTED_IPS = 20
MAX_LISTED_EVENT_NAMES = 50


@dataclass(frozen=True)
class EventFilter:
    account_ids: Sequence[uuid.UUID] | None = None
    principal: str | None = None
    event_name: str | None = None
    source_ip: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class EventRow:
    id: int
    account_id: uuid.UUID
    aws_account_id: str
    region: str
    event_id: str
    event_time: datetime
    event_name: str
    principal_arn: str | None
    principal_name: str | None
    source_ip: str | None
    is_vendor: bool


@dataclass(frozen=True)
class PrincipalRow:
    principal: str
    principal_arn: str | None
    principal_name: str | None
    first_seen: datetime
    last_seen: datetime
    event_count: int
    source_ip_count: int
    source_ips: list[str]


@dataclass(frozen=True)
class VendorSessionRow:
    key: str
    account_id: uuid.UUID
    aws_account_id: str
    session_name: str
    principal_arn: str | None
    first_event: datetime
    last_event: datetime
    event_count: int
    event_names: list[str]
    source_ips: list[str]


def _conditions(
    agency_id: uuid.UUID, f: EventFilter, alias: str = "", *, accounts: bool = True
) -> tuple[list[sql.Composable], dict[str, object]]:
    p = sql.SQL(alias + "." if alias else "")
    where: list[sql.Composable] = [sql.SQL("{}agency_id = %(agency)s").format(p)]
    params: dict[str, object] = {"agency": agency_id}
    if f.account_ids is not None and accounts:
        where.append(sql.SQL("{}account_id = ANY(%(accounts)s)").format(p))
        params["accounts"] = list(f.account_ids)
    if f.principal is not None:
        column = "principal_arn" if f.principal.startswith("arn:") else "principal_name"
        where.append(sql.SQL("{}{} = %(principal)s").format(p, sql.Identifier(column)))
        params["principal"] = f.principal
    if f.event_name is not None:
        where.append(sql.SQL("{}event_name = %(event_name)s").format(p))
        params["event_name"] = f.event_name
    if f.source_ip is not None:
        where.append(sql.SQL("{}source_ip = %(source_ip)s").format(p))
        params["source_ip"] = f.source_ip
    if f.since is not None:
        where.append(sql.SQL("{}event_time >= %(since)s").format(p))
        params["since"] = f.since
    if f.until is not None:
        where.append(sql.SQL("{}event_time < %(until)s").format(p))
        params["until"] = f.until
    return where, params


_EVENT_COLUMNS = sql.SQL(
    "id, account_id, aws_account_id, region, event_id, event_time, event_name, principal_arn,"
    " principal_name, source_ip, is_vendor"
)


def page_events(
    conn: Connection,
    agency_id: uuid.UUID,
    f: EventFilter,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[EventRow]:
    """Up to `limit` events, newest first, strictly after the position `after`.

    The keyset condition is `event_time <= t AND (event_time < t OR id < i)`: its first term is
    an index range, so a deep page starts where the previous one ended instead of filtering its
    way down. With an account filter, each account's newest rows are read from
    `access_events_account_time` and merged (a LATERAL per account): an `= ANY(...)` filter on
    the agency-wide index would read past every other account's events.
    """
    where, params = _conditions(agency_id, f, accounts=False)
    if after is not None:
        where.append(sql.SQL("event_time <= %(at)s AND (event_time < %(at)s OR id < %(after_id)s)"))
        params.update(at=after[0], after_id=after[1])
    params["limit"] = limit
    if f.account_ids is None:
        query = sql.SQL(
            "SELECT {columns} FROM cao.access_events WHERE {where}"
            " ORDER BY event_time DESC, id DESC LIMIT %(limit)s"
        ).format(columns=_EVENT_COLUMNS, where=sql.SQL(" AND ").join(where))
    else:
        params["accounts"] = list(dict.fromkeys(f.account_ids))
        query = sql.SQL(
            "SELECT e.* FROM unnest(%(accounts)s::uuid[]) AS a(account_id)"
            " CROSS JOIN LATERAL (SELECT {columns} FROM cao.access_events"
            "   WHERE account_id = a.account_id AND {where}"
            "   ORDER BY event_time DESC, id DESC LIMIT %(limit)s) e"
            " ORDER BY e.event_time DESC, e.id DESC LIMIT %(limit)s"
        ).format(columns=_EVENT_COLUMNS, where=sql.SQL(" AND ").join(where))
    cur = conn.cursor(row_factory=class_row(EventRow))
    return cur.execute(query, params).fetchall()


_PRINCIPAL_AGGREGATE = sql.SQL(
    "SELECT coalesce(principal_arn, principal_name) AS principal,"
    " max(principal_arn) AS principal_arn, max(principal_name) AS principal_name,"
    " min(event_time) AS first_seen, max(event_time) AS last_seen, count(*) AS event_count,"
    " count(DISTINCT source_ip) AS source_ip_count,"
    " coalesce((array_agg(DISTINCT source_ip) FILTER (WHERE source_ip IS NOT NULL))"
    "[1:{ips}], ARRAY[]::text[]) AS source_ips"
    " FROM cao.access_events WHERE {where}"
    " AND coalesce(principal_arn, principal_name) IS NOT NULL GROUP BY 1"
)


def page_principals(
    conn: Connection,
    agency_id: uuid.UUID,
    f: EventFilter,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PrincipalRow]:
    """One row per principal seen under filter `f`, most recently active first."""
    where, params = _conditions(agency_id, f)
    keyset = sql.SQL("")
    if after is not None:
        keyset = sql.SQL(
            " WHERE last_seen < %(at)s OR (last_seen = %(at)s AND principal > %(after_key)s)"
        )
        params.update(at=after[0], after_key=after[1])
    params["limit"] = limit
    query = sql.SQL(
        "SELECT * FROM ({agg}) p{keyset} ORDER BY last_seen DESC, principal LIMIT %(limit)s"
    ).format(
        agg=_PRINCIPAL_AGGREGATE.format(
            ips=sql.Literal(MAX_LISTED_IPS), where=sql.SQL(" AND ").join(where)
        ),
        keyset=keyset,
    )
    cur = conn.cursor(row_factory=class_row(PrincipalRow))
    return cur.execute(query, params).fetchall()


def page_new_principals(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    account_ids: Sequence[uuid.UUID] | None,
    cutoff: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[PrincipalRow]:
    """Principals whose first stored event (under the account filter) is at or after `cutoff`,
    newest first-appearance first. "First" is within what retention keeps."""
    recent_where, params = _conditions(agency_id, EventFilter(account_ids=account_ids))
    recent_where.append(sql.SQL("event_time >= %(cutoff)s"))
    older = [sql.SQL("o.agency_id = %(agency)s"), sql.SQL("o.event_time < %(cutoff)s")]
    if account_ids is not None:
        older.append(sql.SQL("o.account_id = ANY(%(accounts)s)"))
    params["cutoff"] = cutoff
    keyset = sql.SQL("")
    if after is not None:
        keyset = sql.SQL(
            " AND (first_seen < %(at)s OR (first_seen = %(at)s AND principal > %(after_key)s))"
        )
        params.update(at=after[0], after_key=after[1])
    params["limit"] = limit
    older_sql = sql.SQL(" AND ").join(older)
    # Two NOT EXISTS, one per way a principal is keyed, so each can use its index.
    query = sql.SQL(
        "SELECT * FROM ({agg}) r"
        " WHERE NOT EXISTS (SELECT 1 FROM cao.access_events o WHERE {older}"
        "   AND o.principal_arn = r.principal)"
        " AND NOT EXISTS (SELECT 1 FROM cao.access_events o WHERE {older}"
        "   AND o.principal_arn IS NULL AND o.principal_name = r.principal){keyset}"
        " ORDER BY first_seen DESC, principal LIMIT %(limit)s"
    ).format(
        agg=_PRINCIPAL_AGGREGATE.format(
            ips=sql.Literal(MAX_LISTED_IPS), where=sql.SQL(" AND ").join(recent_where)
        ),
        older=older_sql,
        keyset=keyset,
    )
    cur = conn.cursor(row_factory=class_row(PrincipalRow))
    return cur.execute(query, params).fetchall()


def page_vendor_sessions(
    conn: Connection,
    agency_id: uuid.UUID,
    f: EventFilter,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[VendorSessionRow]:
    """Our own sessions (events marked is_vendor) per account and session name, latest first."""
    where, params = _conditions(agency_id, f)
    where.append(sql.SQL("is_vendor"))
    keyset = sql.SQL("")
    if after is not None:
        keyset = sql.SQL(
            " WHERE last_event < %(at)s OR (last_event = %(at)s AND key > %(after_key)s)"
        )
        params.update(at=after[0], after_key=after[1])
    params["limit"] = limit
    query = sql.SQL(
        "SELECT * FROM ("
        " SELECT account_id::text || '/' || coalesce(principal_name, principal_arn, '') AS key,"
        " account_id, max(aws_account_id) AS aws_account_id,"
        " coalesce(principal_name, principal_arn, '') AS session_name,"
        " max(principal_arn) AS principal_arn, min(event_time) AS first_event,"
        " max(event_time) AS last_event, count(*) AS event_count,"
        " (array_agg(DISTINCT event_name))[1:{names}] AS event_names,"
        " coalesce((array_agg(DISTINCT source_ip) FILTER (WHERE source_ip IS NOT NULL))"
        "[1:{ips}], ARRAY[]::text[]) AS source_ips"
        " FROM cao.access_events WHERE {where} GROUP BY account_id, 4"
        ") v{keyset} ORDER BY last_event DESC, key LIMIT %(limit)s"
    ).format(
        names=sql.Literal(MAX_LISTED_EVENT_NAMES),
        ips=sql.Literal(MAX_LISTED_IPS),
        where=sql.SQL(" AND ").join(where),
        keyset=keyset,
    )
    cur = conn.cursor(row_factory=class_row(VendorSessionRow))
    return cur.execute(query, params).fetchall()
