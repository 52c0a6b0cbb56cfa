"""What the app role can do to the database, proved as the app role (issue 15, items 5 and 7).

SECURITY DEFINER functions take the time from the database, clamp their limits and expose no
more than their caller needs; the app role may write only what the code writes (no rewriting of
its own audit log, billing columns, key hashes, ExternalId values or old runbook versions); an
account's ExternalId is one of its own agency's.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import errors

from functions.jobs.service import SYNC_NOW_LIMIT, SYNC_NOW_WINDOW_S
from functions.onboard.service import SIGNUP_LIMIT, SIGNUP_WINDOW_S
from functions.onboard.verify import VERIFY_LIMIT, VERIFY_WINDOW_S
from functions.people.sessions import SIGNIN_CREDENTIAL_LIMIT, SIGNIN_LIMIT, SIGNIN_WINDOW_S
from shared import auth
from shared.db import system_tx, tenant_tx
from shared.store import access
from tests.support import seed
from tests.support.database import TestDatabase
from tests.support.factories import AgencyFixture, make_account, make_agency
from tests.sync_cloudtrail.test_store import event_row

Conn = psycopg.Connection[Any]


@pytest.fixture
def two(clean_db: TestDatabase, app_conn: Conn) -> Iterator[tuple[AgencyFixture, AgencyFixture]]:
    yield make_agency(app_conn), make_agency(app_conn)


def _refused(
    conn: Conn, query: str, params: tuple[Any, ...] = (), *, tenant: uuid.UUID | None = None
) -> type[Exception]:
    """The error class a statement raises (in a transaction of `tenant`, rolled back)."""
    try:
        with conn.transaction():
            if tenant is not None:
                conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(tenant),))
            conn.execute(query, params)
    except psycopg.Error as exc:
        return type(exc)
    raise AssertionError(f"not refused: {query}")


# ---- SECURITY DEFINER functions take no "now" and clamp their limits -------------------------


@pytest.mark.parametrize(
    ("call", "params"),
    [
        (
            "SELECT * FROM cao.purge_expired_events(%s, 1000000)",
            (datetime(3000, 1, 1, tzinfo=UTC),),
        ),
        (
            "SELECT * FROM cao.dispatch_due_jobs('costs', %s, 10000)",
            (datetime(3000, 1, 1, tzinfo=UTC),),
        ),
        (
            "SELECT * FROM cao.accounts_due_trust_probe(%s, %s, 10000)",
            (datetime(3000, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)),
        ),
        ("SELECT cao.rate_limit_hit('signup:x', now() + interval '1 hour', 0, 1000000)", ()),
    ],
)
def test_no_definer_function_takes_the_callers_time_window_or_limit(
    app_conn: Conn, call: str, params: tuple[Any, ...]
) -> None:
    assert _refused(app_conn, call, params) is errors.UndefinedFunction


def test_the_purge_deletes_only_what_is_past_retention_whatever_the_app_asks(
    two: tuple[AgencyFixture, AgencyFixture], app_conn: Conn
) -> None:
    a, b = two
    now = datetime.now(UTC)
    for agency in (a, b):
        account = make_account(app_conn, agency.id)
        rows = [
            event_row("young", now - timedelta(days=1)),
            event_row("old", now - timedelta(days=91)),
        ]
        with tenant_tx(app_conn, agency.id):
            access.insert_events(app_conn, agency.id, account, rows)
    with system_tx(app_conn):
        purged = app_conn.execute(
            "SELECT agency_id, deleted FROM cao.purge_expired_events(2147483647)"
        ).fetchall()
    assert sorted(purged) == sorted([(a.id, 1), (b.id, 1)])
    for agency in (a, b):
        with tenant_tx(app_conn, agency.id):
            left = app_conn.execute("SELECT event_id FROM cao.access_events").fetchall()
        assert left == [("young",)]


def test_the_dispatcher_queues_no_job_before_it_is_due(
    two: tuple[AgencyFixture, AgencyFixture], app_conn: Conn, owner_conn: Conn
) -> None:
    _, victim = two
    account = make_account(app_conn, victim.id)
    with tenant_tx(app_conn, victim.id):
        app_conn.execute(
            "INSERT INTO cao.sync_jobs (agency_id, account_id, kind, next_run_at)"
            " VALUES (%s, %s, 'costs', now() + interval '1 day')",
            (victim.id, account),
        )
    with system_tx(app_conn):
        due = app_conn.execute("SELECT job_id FROM cao.dispatch_due_jobs('costs', 2147483647)")
        assert due.fetchall() == []
    state = owner_conn.execute(
        "SELECT state, requested_at FROM cao.sync_jobs WHERE account_id = %s", (account,)
    ).fetchone()
    assert state == ("idle", None)


def test_a_claim_cannot_run_ahead_of_the_database_clock_or_hold_a_job_for_long(
    two: tuple[AgencyFixture, AgencyFixture], app_conn: Conn, owner_conn: Conn
) -> None:
    _, victim = two
    account = make_account(app_conn, victim.id)
    with tenant_tx(app_conn, victim.id):
        job = app_conn.execute(
            "INSERT INTO cao.sync_jobs (agency_id, account_id, kind, next_run_at)"
            " VALUES (%s, %s, 'costs', now() + interval '1 day') RETURNING id",
            (victim.id, account),
        ).fetchone()
    assert job is not None
    future = datetime.now(UTC) + timedelta(days=3650)
    with system_tx(app_conn):
        taken = app_conn.execute(
            "SELECT * FROM cao.claim_job(%s, %s, 2147483647)", (job[0], future)
        ).fetchall()
    assert taken == []  # not due on the database's clock, whatever the caller says
    assert owner_conn.execute(
        "SELECT state, lease_token FROM cao.sync_jobs WHERE id = %s", (job[0],)
    ).fetchone() == ("idle", None)

    owner_conn.execute(
        "UPDATE cao.sync_jobs SET next_run_at = now() - interval '1 minute' WHERE id = %s",
        (job[0],),
    )
    with system_tx(app_conn):
        [claimed] = app_conn.execute(
            "SELECT * FROM cao.claim_job(%s, %s, 2147483647)", (job[0], future)
        ).fetchall()
    lease = owner_conn.execute(
        "SELECT lease_expires_at - now() FROM cao.sync_jobs WHERE id = %s", (job[0],)
    ).fetchone()
    assert claimed[0] is not None and lease is not None
    assert lease[0] <= timedelta(minutes=10)  # clamped: not the asked-for 68 years from 3000


def test_the_trust_probe_list_holds_only_accounts_due_a_probe(
    two: tuple[AgencyFixture, AgencyFixture], app_conn: Conn
) -> None:
    a, b = two
    due = make_account(app_conn, a.id)
    make_account(app_conn, b.id, verified_at=datetime.now(UTC) - timedelta(days=1))
    with system_tx(app_conn):
        listed = app_conn.execute(
            "SELECT agency_id, account_id FROM cao.accounts_due_trust_probe(2147483647)"
        ).fetchall()
    assert listed == [(a.id, due)]


def test_the_trust_probe_list_is_clamped(
    two: tuple[AgencyFixture, AgencyFixture], app_conn: Conn
) -> None:
    a, _ = two
    with tenant_tx(app_conn, a.id):
        ext = app_conn.execute("SELECT id FROM cao.external_ids").fetchone()
        assert ext is not None
        app_conn.execute(
            "INSERT INTO cao.accounts (agency_id, aws_account_id, role_arn, external_id_id)"
            " SELECT %s, lpad(n::text, 12, '0'), 'arn:aws:iam::' || lpad(n::text, 12, '0')"
            " || ':role/R', %s FROM generate_series(1, 1001) AS n",
            (a.id, ext[0]),
        )
    with system_tx(app_conn):
        listed = app_conn.execute("SELECT * FROM cao.accounts_due_trust_probe(100000)").fetchall()
    assert len(listed) == 1000


def test_no_caller_can_reset_or_widen_a_rate_limit(app_conn: Conn) -> None:
    bucket = f"sync-now:{uuid.uuid4()}"
    with system_tx(app_conn):
        waits = [
            app_conn.execute("SELECT cao.rate_limit_hit(%s)", (bucket,)).fetchone()
            for _ in range(SYNC_NOW_LIMIT + 3)
        ]
    assert [w[0] if w else None for w in waits[:SYNC_NOW_LIMIT]] == [0] * SYNC_NOW_LIMIT
    assert all(w is not None and 0 < w[0] <= SYNC_NOW_WINDOW_S for w in waits[SYNC_NOW_LIMIT:])
    # A bucket of a kind with no policy is refused, not given a default.
    assert _refused(app_conn, "SELECT cao.rate_limit_hit('mine:x')") is errors.InvalidParameterValue


@pytest.mark.parametrize(
    ("kind", "limit", "window"),
    [
        ("signup", SIGNUP_LIMIT, SIGNUP_WINDOW_S),
        ("sync-now", SYNC_NOW_LIMIT, SYNC_NOW_WINDOW_S),
        ("verify", VERIFY_LIMIT, VERIFY_WINDOW_S),
        ("signin", SIGNIN_LIMIT, SIGNIN_WINDOW_S),
        ("signin-credential", SIGNIN_CREDENTIAL_LIMIT, SIGNIN_WINDOW_S),
        ("signin-alert", 1, SIGNIN_WINDOW_S),
    ],
)
def test_the_limits_the_messages_state_are_the_ones_the_database_applies(
    app_conn: Conn, kind: str, limit: int, window: int
) -> None:
    bucket = f"{kind}:{uuid.uuid4()}"
    with system_tx(app_conn):
        waits = [
            app_conn.execute("SELECT cao.rate_limit_hit(%s)", (bucket,)).fetchone()
            for _ in range(limit + 1)
        ]
    assert [w[0] if w else None for w in waits[:limit]] == [0] * limit
    last = waits[limit]
    assert last is not None and window - 60 < last[0] <= window


# ---- grants: only the writes the code makes --------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE cao.audit_log SET action = 'nothing.happened'",
        "DELETE FROM cao.audit_log",
        "UPDATE cao.agencies SET billing_status = 'active'",
        "UPDATE cao.agencies SET trial_ends_at = now() + interval '10 years'",
        "UPDATE cao.agencies SET plan = 'pro', polar_subscription_id = 'sub_free'",
        "UPDATE cao.api_keys SET key_hash = sha256('cao_mine'::bytea)",
        "UPDATE cao.api_keys SET role = 'admin'",
        "UPDATE cao.api_keys SET revoked_at = NULL, agency_id = agency_id",
        "UPDATE cao.external_ids SET value = 'chosen-by-the-customer'",
        "UPDATE cao.runbook_versions SET body = 'rewritten history'",
        "INSERT INTO cao.agencies (name, contact_email) VALUES ('x', 'x@example.com')",
        "UPDATE cao.users SET email = 'someone-else@example.com'",
        "UPDATE cao.users SET agency_id = agency_id",
        "UPDATE cao.passkeys SET public_key = '\\x00'::bytea",
        "UPDATE cao.passkeys SET credential_id = credential_id",
        "UPDATE cao.sessions SET expires_at = now() + interval '10 years'",
        "UPDATE cao.sessions SET last_seen_at = now()",
        "UPDATE cao.sessions SET token_hash = sha256('mine'::bytea)",
        "UPDATE cao.invitations SET token_hash = sha256('mine'::bytea)",
        "UPDATE cao.invitations SET expires_at = now() + interval '10 years'",
        "UPDATE cao.enrolments SET expires_at = now() + interval '10 years'",
        "SELECT * FROM cao.webauthn_challenges",
        "INSERT INTO cao.webauthn_challenges (challenge, purpose, expires_at)"
        " VALUES (sha256('c'::bytea), 'authentication', now() + interval '1 year')",
    ],
)
def test_the_app_role_cannot_rewrite_what_the_code_never_rewrites(
    agency: AgencyFixture, app_conn: Conn, statement: str
) -> None:
    with tenant_tx(app_conn, agency.id):
        app_conn.execute(
            "INSERT INTO cao.audit_log (agency_id, actor, action) VALUES (%s, 'me', 'x.y')",
            (agency.id,),
        )
    assert _refused(app_conn, statement, tenant=agency.id) is errors.InsufficientPrivilege


def test_what_the_code_does_write_is_still_allowed(agency: AgencyFixture, app_conn: Conn) -> None:
    with tenant_tx(app_conn, agency.id):
        app_conn.execute("UPDATE cao.agencies SET name = 'Renamed', cloudtrail_retention_days = 30")
        app_conn.execute("UPDATE cao.api_keys SET revoked_at = now() WHERE false")
        app_conn.execute("UPDATE cao.external_ids SET retired_at = retired_at WHERE false")
        app_conn.execute(
            "INSERT INTO cao.audit_log (agency_id, actor, action) VALUES (%s, 'me', 'a.b')",
            (agency.id,),
        )
        changed = app_conn.execute(
            "SELECT cao.set_billing_state('active', 'pro', now(), 'cus_1', 'sub_1', now(), now())"
        ).fetchone()
    assert changed == (True,)


def test_a_caller_clock_can_shorten_a_session_but_never_extend_it(
    agency: AgencyFixture, app_conn: Conn
) -> None:
    people = seed.add_people(app_conn, agency.id, "clock")
    token_hash = auth.hash_token(people["session_token"])
    far_past = datetime(2000, 1, 1, tzinfo=UTC)
    with system_tx(app_conn):
        live = app_conn.execute(
            "SELECT session_id FROM cao.authenticate_session(%s, %s)", (token_hash, far_past)
        ).fetchall()
        ahead = app_conn.execute(
            "SELECT session_id FROM cao.authenticate_session(%s, %s)",
            (token_hash, datetime.now(UTC) + timedelta(days=8)),
        ).fetchall()
    assert live == [(people["session"],)] and ahead == []


def test_challenges_are_single_use_and_a_registration_needs_its_agency(
    agency: AgencyFixture, app_conn: Conn
) -> None:
    challenge = uuid.uuid4().bytes * 2
    with system_tx(app_conn):
        app_conn.execute("SELECT cao.put_challenge(%s, 'authentication', NULL)", (challenge,))
        first = app_conn.execute(
            "SELECT * FROM cao.take_challenge(%s, 'authentication')", (challenge,)
        ).fetchall()
        second = app_conn.execute(
            "SELECT * FROM cao.take_challenge(%s, 'authentication')", (challenge,)
        ).fetchall()
    assert first == [(None, None)] and second == []
    refused = _refused(
        app_conn, "SELECT cao.put_challenge(%s, 'registration', %s)", (challenge, uuid.uuid4())
    )
    assert refused is errors.InvalidParameterValue


def test_billing_state_is_written_for_the_current_tenant_only(
    two: tuple[AgencyFixture, AgencyFixture], app_conn: Conn, owner_conn: Conn
) -> None:
    a, b = two
    with system_tx(app_conn):  # no tenant: nothing
        none = app_conn.execute(
            "SELECT cao.set_billing_state('active', 'pro', now(), 'c', 's', now(), now())"
        ).fetchone()
    assert none == (False,)
    with tenant_tx(app_conn, a.id):
        app_conn.execute(
            "SELECT cao.set_billing_state('active', 'pro', now(), 'c', 's', now(), now())"
        )
    states = dict(
        owner_conn.execute(
            "SELECT id, billing_status FROM cao.agencies WHERE id = ANY(%s)", ([a.id, b.id],)
        ).fetchall()
    )
    assert states == {a.id: "active", b.id: "trialing"}


# ---- an account's ExternalId is its own agency's ---------------------------------------------


def test_an_account_cannot_point_at_another_agencys_external_id(
    two: tuple[AgencyFixture, AgencyFixture], app_conn: Conn, owner_conn: Conn
) -> None:
    a, b = two
    account = make_account(app_conn, a.id)
    row = owner_conn.execute(
        "SELECT id FROM cao.external_ids WHERE agency_id = %s", (b.id,)
    ).fetchone()
    assert row is not None
    theirs = row[0]
    assert (
        _refused(
            app_conn,
            "UPDATE cao.accounts SET external_id_id = %s WHERE id = %s",
            (theirs, account),
            tenant=a.id,
        )
        is errors.ForeignKeyViolation
    )
    with pytest.raises(errors.ForeignKeyViolation):
        make_account(app_conn, a.id, external_id_id=theirs)
