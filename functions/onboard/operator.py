"""Operator commands (run by us, not by agencies).

    python -m functions.onboard.operator issue-admin-key --agency <agency uuid>

Issues a new admin API key to an agency that lost its only one, and a way back in for its
people: a recovery link for its oldest admin user (or, with no admin user, an admin invitation
to its contact address; functions.people.invitations). It connects as the app role
(DATABASE_URL) inside tenant transactions for that agency, so row-level security applies as for
any request; both are audited with actor `operator`, printed once on stdout, and only hashes are
stored. A missing setting fails fast with the ConfigError's message (exit 1) before any
connection is attempted.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from functions.people import invitations
from shared import bootstrap
from shared.db import connect
from shared.errors import CaoError

from . import service


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m functions.onboard.operator")
    commands = parser.add_subparsers(dest="command", required=True)
    issue = commands.add_parser(
        "issue-admin-key", help="issue a new admin API key to an agency (printed once)"
    )
    issue.add_argument("--agency", required=True, type=uuid.UUID, help="the agency's id")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 with usage on bad arguments
    try:
        deps = bootstrap.current()
        url = deps.settings.database_url
        with connect(url, application_name="cloudagencyops-operator") as conn:
            created = service.issue_operator_admin_key(conn, args.agency)
            link = invitations.operator_admin_link(conn, deps.settings, args.agency, deps.clock())
    except CaoError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    what = (
        "Recovery link for its admin" if link.invitation.kind == "recovery" else "Admin invitation"
    )
    sys.stdout.write(
        f"new admin API key for agency {args.agency} (key id {created.row.id}).\n"
        "It is shown once; hand it over securely:\n"
        f"{created.plaintext}\n"
        f"{what} {link.invitation.email} (single use, 7 days):\n"
        f"{link.url}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
