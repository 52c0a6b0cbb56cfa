"""Benchmark: what a browser session costs beside an API key, and what a passkey sign-in costs.

    python -m bench.people_auth [sessions] [requests]      # defaults: 100000 300

- Data: 20 agencies x 50 users, one passkey each, and `sessions` live sessions spread over them
  (loaded with COPY as the superuser), so the session lookup (`cao.authenticate_session`, by the
  token's hash) runs on a table of that size. ANALYZE after.
- "key" and "session": the same request (`GET /api/users`, an admin's) through the ASGI app
  in-process, authenticated by an admin API key or by an admin's session cookie.
- "sign-in": `POST /api/session/options` then `POST /api/session` with an assertion of the
  software authenticator (tests/support/authenticator.py), each signed fresh: the challenge
  round trip, py_webauthn's ES256 verification and the new session.
- Database: $BENCH_DATABASE_URL or $TEST_DATABASE_URL (a superuser URL, loopback) if set, else
  an embedded Postgres in a temporary directory.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from devstack import pg
from functions.people.routes import people_router
from shared import auth, bootstrap
from shared.bootstrap import Deps
from shared.settings import Settings
from shared.web import create_app
from tests.support.authenticator import SoftAuthenticator

AGENCIES = 20
USERS = 50
ORIGIN = "https://cloudagencyops.com"


@contextmanager
def _database() -> Iterator[pg.LocalDatabase]:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    name = f"cao_bench_people_{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="cao-bench-") as tmp:
        server = pg.embedded_server(Path(tmp), keep=False) if not url else _given(url)
        with server as admin:
            local = pg.bootstrap(admin, name, "bench-owner", "bench-app")
            try:
                yield local
            finally:
                pg.drop(admin, name)


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def _load(admin_url: str, sessions: int) -> tuple[str, str]:
    """The people and sessions; (an admin's API key, an admin's session token)."""
    now = datetime.now(UTC)
    users: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = []  # agency, user, passkey
    with psycopg.connect(admin_url, autocommit=True) as conn:
        key = ""
        for a in range(AGENCIES):
            new = auth.generate_key()
            row = conn.execute(
                "SELECT agency_id FROM cao.create_agency(%s, %s, %s, %s, %s)",
                (
                    f"Agency {a}",
                    "b@example.com",
                    f"bench-{secrets.token_hex(12)}",
                    new.key_hash,
                    new.display_prefix,
                ),
            ).fetchone()
            assert row is not None
            key = key or new.plaintext
            for u in range(USERS):
                user, passkey = uuid.uuid4(), uuid.uuid4()
                users.append((row[0], user, passkey))
                conn.execute(
                    "INSERT INTO cao.users (id, agency_id, email, name, role) VALUES"
                    " (%s, %s, %s, %s, 'admin')",
                    (user, row[0], f"u{a}-{u}-{secrets.token_hex(3)}@example.com", f"User {u}"),
                )
                conn.execute(
                    "INSERT INTO cao.passkeys (id, agency_id, user_id, credential_id, public_key,"
                    " name) VALUES (%s, %s, %s, %s, %s, 'key')",
                    (passkey, row[0], user, secrets.token_bytes(32), secrets.token_bytes(77)),
                )
        token = auth.generate_token()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY cao.sessions (agency_id, user_id, passkey_id, token_hash, created_at,"
                " last_seen_at, expires_at) FROM STDIN"
            ) as copy,
        ):
            for i in range(sessions):
                agency, user, passkey = users[i % len(users)]
                value = token if i == 0 else auth.generate_token()
                copy.write_row(
                    (
                        agency,
                        user,
                        passkey,
                        auth.hash_token(value),
                        now,
                        now,
                        now + timedelta(days=7),
                    )
                )
        conn.execute("ANALYZE")
    return key, token


def _measure(call: Callable[[], Any], n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def main(argv: list[str]) -> int:
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    sessions = int(argv[0]) if argv else 100_000
    requests = int(argv[1]) if len(argv) > 1 else 300
    with _database() as local:
        key, token = _load(local.admin_url, sessions)
        settings = Settings(
            {"DATABASE_URL": local.app_url, "LOG_LEVEL": "WARNING", "CAO_PUBLIC_URL": ORIGIN}
        )
        with bootstrap.use(Deps(settings)):
            app = create_app(people_router)
            with TestClient(app, base_url=ORIGIN) as http:
                by_key = {"Authorization": f"Bearer {key}"}
                by_cookie = {"Cookie": f"{auth.SESSION_COOKIE}={token}"}
                assert http.get("/api/users", headers=by_key).status_code == 200
                assert http.get("/api/users", headers=by_cookie).status_code == 200
                rows = [
                    (
                        "GET /api/users, API key",
                        _measure(lambda: http.get("/api/users", headers=by_key), requests),
                    ),
                    (
                        "GET /api/users, session cookie",
                        _measure(lambda: http.get("/api/users", headers=by_cookie), requests),
                    ),
                ]
                authenticator = SoftAuthenticator()
                enrol(http, local.admin_url, authenticator)

                def sign_in() -> None:
                    opts = http.post(
                        "/api/session/options",
                        headers={"Origin": ORIGIN, "X-Real-IP": _address()},
                    ).json()["options"]
                    r = http.post(
                        "/api/session",
                        json={"credential": authenticator.get(opts, ORIGIN)},
                        headers={"Origin": ORIGIN, "X-Real-IP": _address()},
                    )
                    assert r.status_code == 200, r.text

                rows.append(("sign-in (options + assertion)", _measure(sign_in, 9)))
    print(f"{sessions} sessions, {requests} requests each (sign-in: 9, the credential's limit)")
    print(f"{'request':<34} {'p50 (ms)':>9} {'p95 (ms)':>9}")
    for name, (p50, p95) in rows:
        print(f"{name:<34} {p50:>9.1f} {p95:>9.1f}")
    return 0


def _address() -> str:
    return f"2001:db8:{secrets.randbelow(65535):x}::1"


def enrol(http: TestClient, admin_url: str, authenticator: SoftAuthenticator) -> None:
    """A user of a fresh agency enrols a passkey, as sign-up starts it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        new = auth.generate_key()
        row = conn.execute(
            "SELECT agency_id FROM cao.create_agency('Enrol', 'e@example.com', %s, %s, %s)",
            (f"bench-{secrets.token_hex(12)}", new.key_hash, new.display_prefix),
        ).fetchone()
        assert row is not None
        user = conn.execute(
            "INSERT INTO cao.users (agency_id, email, name, role) VALUES (%s, %s, 'E', 'admin')"
            " RETURNING id",
            (row[0], f"e-{secrets.token_hex(4)}@example.com"),
        ).fetchone()
        assert user is not None
        token = auth.generate_token()
        now = datetime.now(UTC)
        conn.execute(
            "INSERT INTO cao.enrolments (agency_id, user_id, token_hash, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (row[0], user[0], auth.hash_token(token), now, now + timedelta(minutes=15)),
        )
    headers = {"Origin": ORIGIN}
    opts = http.post(
        "/api/passkeys/registration/options", json={"enrolment_token": token}, headers=headers
    ).json()["options"]
    r = http.post(
        "/api/passkeys/registration",
        json={"enrolment_token": token, "credential": authenticator.create(opts, ORIGIN)},
        headers=headers,
    )
    assert r.status_code == 201, r.text


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
