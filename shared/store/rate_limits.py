"""Fixed-window rate limits, counted in Postgres (serverless functions share no memory).

The table is cross-tenant and invisible to the app role: `hit` goes through the SECURITY DEFINER
function `cao.rate_limit_hit`, which fixes each kind's window and limit itself (the constants
that word the 429 messages are tested against it).
Call it inside `shared.db.system_tx`.
"""

from __future__ import annotations

from shared.db import Connection

MAX_BUCKET_CHARS = 200


def hit(conn: Connection, bucket: str) -> int:
    """Count one hit on `bucket` (`<kind>:<key>`); 0 when allowed, else the seconds until the
    window resets. The kind's window and limit are fixed in the database function, and so is
    the clock."""
    if not 0 < len(bucket) <= MAX_BUCKET_CHARS:
        raise ValueError("a rate-limit bucket is 1-200 characters")
    row = conn.execute("SELECT cao.rate_limit_hit(%s)", (bucket,)).fetchone()
    return int(row[0]) if row else 0
