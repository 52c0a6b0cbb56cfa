"""Operator commands for notices (run by us, never by agencies).

    python -m functions.notices.operator publish-incident --title ... --facts ... \\
        --data-categories a,b --mitigation ... --contact ... (--all | --agency <uuid> ...)
    python -m functions.notices.operator update --notice <id> --text ... [--resolve]
    python -m functions.notices.operator publish-subprocessor-change --title ... --facts ... \\
        --effective YYYY-MM-DD --all [--urgent --reason ...]

They connect with DATABASE_OWNER_URL: notices are written with the owner role, which the app
role (what API requests use) is not; a missing setting fails fast with the ConfigError's
message (exit 1) before anything is read or connected. Bad input exits 1 (2 for bad flags) with
a message naming the flag, and nothing is written. On success the notice id is printed alone
on stdout (for scripts) and a summary on stderr.

This version sends no email: agencies read notices through GET /api/notices.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import date, datetime

from shared import bootstrap
from shared.db import connect
from shared.errors import BadRequestError, CaoError
from shared.kit.clock import Clock, utc_now
from shared.policy import (
    INCIDENT_NOTICE_TARGET_HOURS,
    SECURITY_CONTACT,
    SUBPROCESSOR_NOTICE_DAYS,
)
from shared.settings import Secret

from . import rules, service

_APP = "cloudagencyops-operator"

_NO_EMAIL = (
    "This version sends no email: agencies read notices through GET /api/notices "
    "(tell them out of band when it matters)."
)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _instant(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date-time (e.g. 2026-06-01T14:00Z)"
        ) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m functions.notices.operator",
        description="Publish incident and sub-processor change notices to agencies. " + _NO_EMAIL,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    incident = commands.add_parser(
        "publish-incident",
        help="notify affected agencies of a security incident",
        description="Notify affected agencies of a confirmed security incident (target: within "
        f"{INCIDENT_NOTICE_TARGET_HOURS} hours of confirming it). " + _NO_EMAIL,
    )
    incident.add_argument("--title", required=True, help="one line")
    incident.add_argument("--facts", required=True, help="what is known so far")
    incident.add_argument(
        "--data-categories", required=True, help="affected data categories, comma-separated"
    )
    incident.add_argument("--mitigation", required=True, help="mitigation steps")
    incident.add_argument("--contact", required=True, help="the point of contact")
    incident.add_argument(
        "--confirmed-at",
        type=_instant,
        help="when the incident was confirmed (ISO 8601; naive = UTC); warns past "
        f"{INCIDENT_NOTICE_TARGET_HOURS} hours",
    )
    audience = incident.add_mutually_exclusive_group(required=True)
    audience.add_argument("--all", action="store_true", help="every agency")
    audience.add_argument(
        "--agency",
        action="append",
        type=uuid.UUID,
        metavar="UUID",
        help="an affected agency (repeat for several)",
    )

    update = commands.add_parser(
        "update",
        help="add what has been learned to a notice (and resolve an incident)",
        description="Append an update to a notice; every agency it was sent to sees it. "
        + _NO_EMAIL,
    )
    update.add_argument("--notice", required=True, type=uuid.UUID, help="the notice's id")
    update.add_argument("--text", required=True, help="the new facts")
    update.add_argument("--resolve", action="store_true", help="mark the incident resolved")

    change = commands.add_parser(
        "publish-subprocessor-change",
        help=f"announce a new or replaced sub-processor ({SUBPROCESSOR_NOTICE_DAYS}+ days ahead)",
        description="Announce a sub-processor added or replaced, at least "
        f"{SUBPROCESSOR_NOTICE_DAYS} days before it takes effect (shorter only with --urgent "
        "and a --reason: urgent security, availability or legal reasons). " + _NO_EMAIL,
    )
    change.add_argument("--title", required=True, help="one line")
    change.add_argument("--facts", required=True, help="who, for what, where, which data")
    change.add_argument(
        "--effective", required=True, type=_date, help="YYYY-MM-DD (takes effect 00:00 UTC)"
    )
    change.add_argument(
        "--data-categories", default="", help="data categories it will process, comma-separated"
    )
    change.add_argument(
        "--contact", default=SECURITY_CONTACT, help=f"for objections (default {SECURITY_CONTACT})"
    )
    change.add_argument("--all", required=True, action="store_true", help="every agency (required)")
    change.add_argument("--urgent", action="store_true", help="less than the usual notice")
    change.add_argument("--reason", help="why the change is urgent (recorded and shown)")
    return parser


def main(argv: list[str] | None = None, *, clock: Clock | None = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 with usage on bad flags
    now = (clock or utc_now)()
    try:
        url = (
            bootstrap.current().settings.owner_database_url
        )  # fail fast: before reading or connecting
        if args.command == "publish-incident":
            return _publish_incident(args, url, now)
        if args.command == "update":
            return _update(args, url)
        return _publish_change(args, url, now)
    except CaoError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1


def _publish_incident(args: argparse.Namespace, url: Secret, now: datetime) -> int:
    draft = rules.incident_draft(
        title=args.title,
        facts=args.facts,
        data_categories=args.data_categories,
        mitigation=args.mitigation,
        contact=args.contact,
        confirmed_at=args.confirmed_at,
        now=now,
    )
    agencies = None if args.all else tuple(dict.fromkeys(args.agency))
    if agencies is not None and len(agencies) > rules.MAX_AGENCY_ARGS:
        raise BadRequestError(f"more than {rules.MAX_AGENCY_ARGS} --agency; use --all")
    with connect(url, application_name=_APP) as conn:
        published = service.publish_incident(conn, draft, agencies)
    _report(published, "incident notice")
    late = rules.hours_late(draft.confirmed_at, now)
    if late is not None:
        sys.stderr.write(
            f"warning: published {late:.1f} hours after confirmation; the security page's "
            f"target is {INCIDENT_NOTICE_TARGET_HOURS} hours\n"
        )
    return 0


def _update(args: argparse.Namespace, url: Secret) -> int:
    text = rules.update_text(args.text)
    with connect(url, application_name=_APP) as conn:
        updated = service.update(conn, args.notice, text, resolve=args.resolve)
    sys.stdout.write(f"{updated.notice_id}\n")
    sys.stderr.write(
        f"updated notice {updated.notice_id} (status {updated.status}) for "
        f"{updated.agencies} agencies. No email was sent.\n"
    )
    return 0


def _publish_change(args: argparse.Namespace, url: Secret, now: datetime) -> int:
    draft = rules.change_draft(
        title=args.title,
        facts=args.facts,
        effective=args.effective,
        data_categories=args.data_categories,
        contact=args.contact,
        urgent=args.urgent,
        reason=args.reason,
        now=now,
    )
    with connect(url, application_name=_APP) as conn:
        published = service.publish_subprocessor_change(conn, draft)
    _report(published, "sub-processor change notice")
    return 0


def _report(published: service.Published, what: str) -> None:
    sys.stdout.write(f"{published.notice_id}\n")
    sys.stderr.write(
        f"published {what} {published.notice_id} to {published.agencies} agencies. "
        "No email was sent: agencies read it through GET /api/notices.\n"
    )


if __name__ == "__main__":
    raise SystemExit(main())
