"""The weekly trust-policy probe (api/cron_verify.py, Vercel Cron)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from shared.cron import CronDep
from shared.settings import get_settings
from shared.web import Conn

if TYPE_CHECKING:
    pass


from functions.onboard.routes._common import (
    ProbeOut,
    _now,
    _ours,
)

# ---- cron -----------------------------------------------------------------------------------

verify_cron_router = APIRouter(tags=["cron"])


@verify_cron_router.get(
    "/api/cron/verify",
    response_model=ProbeOut,
    responses={401: {"description": "missing or wrong cron bearer"}, 503: {}},
)
def cron_verify(_: CronDep, conn: Conn) -> ProbeOut:
    """Weekly trust probe (Vercel Cron): flags accounts found open or unreachable."""
    from functions.onboard import verify  # noqa: PLC0415 - loads botocore

    summary = verify.run_weekly_probe(
        conn, _ours(), _now(), our_account_id=get_settings().aws_account_id
    )
    return ProbeOut(
        due=summary.due,
        probed=summary.probed,
        ok=summary.ok,
        flagged=summary.flagged,
        skipped=summary.skipped,
    )
