"""The operator's rescue command, and what onboarding's entry points load at cold start."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from devstack.server import create_local_app
from functions.onboard import operator
from shared.settings import Settings
from tests.support import seed
from tests.support.deps import with_settings
from tests.support.factories import AgencyFixture

Conn = psycopg.Connection[Any]
ROOT = Path(__file__).resolve().parents[2]


def test_the_operator_issues_a_new_admin_key_printed_once_and_audited(
    settings: Settings, agency: AgencyFixture, owner_conn: Conn, capsys: pytest.CaptureFixture[str]
) -> None:
    assert operator.main(["issue-admin-key", "--agency", str(agency.id)]) == 0
    out = capsys.readouterr().out
    key = next(line for line in out.splitlines() if line.startswith("cao_"))
    row = owner_conn.execute(
        "SELECT role, name FROM cao.api_keys WHERE key_hash = %s",
        (hashlib.sha256(key.encode()).digest(),),
    ).fetchone()
    assert row == ("admin", "operator-issued admin key")
    audit = owner_conn.execute(
        "SELECT actor, action FROM cao.audit_log WHERE agency_id = %s AND actor = 'operator'",
        (agency.id,),
    ).fetchall()
    assert sorted(audit) == [("operator", "invitation.created"), ("operator", "key.created")]
    with TestClient(create_local_app()) as http:
        r = http.get("/api/agency/keys", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200 and key not in r.text
    # No admin user yet: an admin invitation to the agency's contact address.
    link = next(line for line in out.splitlines() if "/invite#" in line)
    invitation = owner_conn.execute(
        "SELECT kind, role, created_by FROM cao.invitations WHERE agency_id = %s", (agency.id,)
    ).fetchone()
    assert link.startswith("https://cloudagencyops.com/invite#")
    assert invitation == ("invite", "admin", "operator")


def test_the_operator_gives_an_admin_who_lost_every_passkey_a_recovery_link(
    settings: Settings, agency: AgencyFixture, app_conn: Conn, capsys: pytest.CaptureFixture[str]
) -> None:
    people = seed.add_people(app_conn, agency.id, "lost")
    assert operator.main(["issue-admin-key", "--agency", str(agency.id)]) == 0
    link = next(line for line in capsys.readouterr().out.splitlines() if "#" in line)
    assert link.startswith("https://cloudagencyops.com/recover#")
    with TestClient(create_local_app()) as http:
        r = http.post("/api/recovery/accept", json={"token": link.split("#", 1)[1]})
        assert r.status_code == 201
        # The recovery ended the admin's sessions (the lost device's).
        cookie = {"Cookie": f"__Host-cao_session={people['session_token']}"}
        assert http.get("/api/accounts", headers=cookie).status_code == 401


def test_the_operator_command_fails_fast_on_a_missing_setting_or_unknown_agency(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert operator.main(["issue-admin-key", "--agency", str(uuid.uuid4())]) == 1
    assert "no agency" in capsys.readouterr().err
    with with_settings({}):
        assert operator.main(["issue-admin-key", "--agency", str(uuid.uuid4())]) == 1
    assert "DATABASE_URL is not configured" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        operator.main(["issue-admin-key", "--agency", "not-a-uuid"])
    assert exit_.value.code == 2


_PROBE = """
import sys
def aws_modules():
    return sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'moto'))
import shared.web
print(','.join(aws_modules()))
import api.accounts, api.agency, api.agencies, api.onboarding, api.cron_verify
print(','.join(aws_modules()))
"""


def test_onboarding_entry_points_load_no_aws_sdk_beyond_the_web_factory() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    floor_line, loaded_line = out.stdout.splitlines()
    # The logging library imports botocore's bare package (no session, no client, no models):
    # that is the floor. Onboarding must add nothing to it, and no boto3 or moto at all.
    floor = set(filter(None, floor_line.split(",")))
    loaded = set(filter(None, loaded_line.split(",")))
    assert loaded == floor
    assert not {m for m in loaded if m.startswith(("boto3", "moto", "botocore."))}
