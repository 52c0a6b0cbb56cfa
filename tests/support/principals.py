"""The principal summaries (cao.access_principals, cao.access_principal_ips and the agency
totals cao.access_principal_totals) and the vendor-access ledger (cao.access_vendor_sessions,
its event names and source IPs) beside the same summaries recomputed from the events, both read
as the owner, for exact comparisons."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql

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
    assert_vendor_ledger_matches_events(owner, agency_id)
    return len(expected)


def recomputed_vendor(owner: psycopg.Connection[Any], agency_id: uuid.UUID) -> Summaries:
    """Per account x vendor session, from every stored event of the agency marked is_vendor."""
    rows = owner.execute(
        "SELECT account_id, coalesce(principal_name, principal_arn, ''), max(aws_account_id),"
        " max(principal_arn), min(event_time), max(event_time), count(*),"
        " array_agg(DISTINCT event_name),"
        " coalesce(array_agg(DISTINCT source_ip) FILTER (WHERE source_ip IS NOT NULL),"
        " ARRAY[]::text[])"
        " FROM cao.access_events WHERE agency_id = %s AND is_vendor GROUP BY 1, 2",
        (agency_id,),
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def vendor_ledger(owner: psycopg.Connection[Any], agency_id: uuid.UUID) -> Summaries:
    """Per account x vendor session, as the ledger holds it."""
    rows = owner.execute(
        "SELECT v.account_id, v.session_name, v.aws_account_id, v.principal_arn, v.first_event,"
        " v.last_event, v.event_count,"
        " coalesce((SELECT array_agg(n.event_name ORDER BY n.event_name)"
        "   FROM cao.access_vendor_event_names n"
        "   WHERE n.account_id = v.account_id AND n.session_name = v.session_name),"
        "  ARRAY[]::text[]),"
        " coalesce((SELECT array_agg(i.source_ip ORDER BY i.source_ip) FROM cao.access_vendor_ips i"
        "   WHERE i.account_id = v.account_id AND i.session_name = v.session_name),"
        "  ARRAY[]::text[])"
        " FROM cao.access_vendor_sessions v WHERE v.agency_id = %s",
        (agency_id,),
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def assert_vendor_ledger_matches_events(
    owner: psycopg.Connection[Any], agency_id: uuid.UUID
) -> int:
    """The vendor ledger equals a recomputation from the events; returns its sessions."""
    for table in ("access_vendor_event_names", "access_vendor_ips"):
        orphans = owner.execute(
            sql.SQL(
                "SELECT count(*) FROM cao.{} x WHERE x.agency_id = %s AND NOT EXISTS"
                " (SELECT 1 FROM cao.access_vendor_sessions v"
                "  WHERE v.account_id = x.account_id AND v.session_name = x.session_name)"
            ).format(sql.Identifier(table)),
            (agency_id,),
        ).fetchone()
        assert orphans == (0,), f"{table} holds rows of no vendor session"
    expected = recomputed_vendor(owner, agency_id)
    assert vendor_ledger(owner, agency_id) == expected
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
