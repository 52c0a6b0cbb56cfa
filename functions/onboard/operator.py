"""Operator commands (run by us, not by agencies).

    python -m functions.onboard.operator issue-admin-key --agency <agency uuid>

Issues a new admin API key to an agency that lost its only one. It connects as the app role
(DATABASE_URL) inside a tenant transaction for that agency, so row-level security applies as
for any request; the key is audited with actor `operator`, printed once on stdout, and only its
hash is stored. A missing setting fails fast with the ConfigError's message (exit 1) before any
connection is attempted.
"""

from __future__ import annotations

import argparse
import sys
import uuid

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
        url = bootstrap.current().settings.database_url
        with connect(url, application_name="cloudagencyops-operator") as conn:
            created = service.issue_operator_admin_key(conn, args.agency)
    except CaoError as exc:
        sys.stderr.write(f"error: {exc.message}\n")
        return 1
    sys.stdout.write(
        f"new admin API key for agency {args.agency} (key id {created.row.id}).\n"
        "It is shown once; hand it over securely:\n"
        f"{created.plaintext}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
