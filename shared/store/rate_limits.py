"""Fixed-window rate limits, counted in Postgres (serverless functions share no memory).

The table is cross-tenant and invisible to the app role: `hit` goes through the SECURITY DEFINER
function `cao.rate_limit_hit`. Call it inside `shared.db.system_tx`.
"""

from __future__ import annotations

from datetime import datetime

from shared.db import Connection

MAX_BUCKET_CHARS = 200


def hit(conn: Connection, bucket: str, now: datetime, window_s: int, limit: int) -> int:
    """Count one hit on `bucket`; 0 when allowed, else the seconds until the window resets."""
    if not 0 < len(bucket) <= MAX_BUCKET_CHARS:
        raise ValueError("a rate-limit bucket is 1-200 characters")
    row = conn.execute(
        "SELECT cao.rate_limit_hit(%s, %s, %s, %s)", (bucket, now, window_s, limit)
    ).fetchone()
    return int(row[0]) if row else 0
