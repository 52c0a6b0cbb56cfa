"""The principal summaries (cao.access_principals, cao.access_principal_ips and the agency
totals cao.access_principal_totals) beside the same summaries recomputed from the events, both
read as the owner, for exact comparisons."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

Summaries = dict[tuple[uuid.UUID, str], tuple[Any, ...]]


def recomputed(owner: psycopg.Connection[Any], agency_id: uuid.UUID) -> Summaries:
    """Per account x principal, from every stored event of the agency."""
    rows = owner.execute(
        "SELECT account_id, coalesce(principal_arn, principal_name), max(principal_arn),"
        " max(principal_name), min(event_time), max(event_time), count(*),"
        " coalesce(array_agg(DISTINCT source_ip) FILTER (WHERE source_ip IS NOT NULL),"
        " ARRAY[]::text[])"
        " FROM cao.access_events WHERE agency_id = %s"
        " AND coalesce(principal_arn, principal_name) IS NOT NULL GROUP BY 1, 2",
        (agency_id,),
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def summarised(owner: psycopg.Connection[Any], agency_id: uuid.UUID) -> Summaries:
    """Per account x principal, as the summaries hold it."""
    rows = owner.execute(
        "SELECT s.account_id, s.principal, s.principal_arn, s.principal_name, s.first_seen,"
        " s.last_seen, s.event_count,"
        " coalesce((SELECT array_agg(i.source_ip ORDER BY i.source_ip)"
        "   FROM cao.access_principal_ips i"
        "   WHERE i.account_id = s.account_id AND i.principal = s.principal), ARRAY[]::text[])"
        " FROM cao.access_principals s WHERE s.agency_id = %s",
        (agency_id,),
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def assert_summaries_match_events(owner: psycopg.Connection[Any], agency_id: uuid.UUID) -> int:
    """The summaries equal a recomputation from the events; returns how many there are."""
    expected = recomputed(owner, agency_id)
    orphans = owner.execute(
        "SELECT count(*) FROM cao.access_principal_ips i WHERE i.agency_id = %s AND NOT EXISTS"
        " (SELECT 1 FROM cao.access_principals s"
        "  WHERE s.account_id = i.account_id AND s.principal = i.principal)",
        (agency_id,),
    ).fetchone()
    assert orphans == (0,), "source IPs summarised for a principal with no summary"
    assert summarised(owner, agency_id) == expected
    assert totals(owner, agency_id) == recomputed_totals(owner, agency_id)
    return len(expected)


def recomputed_totals(owner: psycopg.Connection[Any], agency_id: uuid.UUID) -> dict[str, Any]:
    """Per principal over all the agency's accounts, from every stored event."""
    rows = owner.execute(
        "SELECT coalesce(principal_arn, principal_name), max(principal_arn), max(principal_name),"
        " min(event_time), max(event_time), count(*), count(DISTINCT source_ip),"
        " coalesce((array_agg(DISTINCT source_ip) FILTER (WHERE source_ip IS NOT NULL))[1:20],"
        " ARRAY[]::text[])"
        " FROM cao.access_events WHERE agency_id = %s"
        " AND coalesce(principal_arn, principal_name) IS NOT NULL GROUP BY 1",
        (agency_id,),
    ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def totals(owner: psycopg.Connection[Any], agency_id: uuid.UUID) -> dict[str, Any]:
    """Per principal, as cao.access_principal_totals holds it."""
    rows = owner.execute(
        "SELECT principal, principal_arn, principal_name, first_seen, last_seen, event_count,"
        " source_ip_count, source_ips FROM cao.access_principal_totals WHERE agency_id = %s",
        (agency_id,),
    ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}
