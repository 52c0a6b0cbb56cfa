"""Operator commands for access governance (run by us, never by agencies).

    python -m functions.access.operator rebuild-principal-summaries (--agency <uuid> | --all)

Recomputes the summaries the access endpoints read from the stored events, in one transaction:
the per account x principal summaries of GET /api/access/principals and /new-principals
(`cao.access_principals`, `cao.access_principal_ips`, and through them the agency totals) and
the vendor ledger of GET /api/access/vendor (`cao.access_vendor_sessions` and its event names
and source IPs). Triggers on `cao.access_events` keep them right as events are inserted, purged or
cascaded away; this is the repair for anything else (a restore of events alone, a bug). While it
runs, event writes of every agency wait (a SHARE lock on the events table), so it is
run for one agency at a time when it can be.

It connects with DATABASE_OWNER_URL (the app role may not delete summaries); a missing setting
fails fast with the ConfigError's message (exit 1) before anything is connected. On success the
number of summary rows written is printed on stdout.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from shared import bootstrap
from shared.db import connect
from shared.errors import CaoError
from shared.store import access

_APP = "cloudagencyops-operator"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m functions.access.operator")
    commands = parser.add_subparsers(dest="command", required=True)
    rebuild = commands.add_parser(
        "rebuild-principal-summaries",
        help="recompute the principal summaries from the stored events",
    )
    scope = rebuild.add_mutually_exclusive_group(required=True)
    scope.add_argument("--agency", type=uuid.UUID, help="one agency's id")
    scope.add_argument("--all", action="store_true", help="every agency")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 with usage on bad arguments
    try:
        url = bootstrap.current().settings.owner_database_url  # fail fast, before connecting
        with connect(url, application_name=_APP) as conn, conn.transaction():
            written = access.rebuild_principal_summaries(conn, None if args.all else args.agency)
    except CaoError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    sys.stdout.write(f"{written}\n")
    sys.stderr.write(f"rebuilt {written} principal summaries from the stored events\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
