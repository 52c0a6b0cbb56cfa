"""Response models of the CloudTrail sync's routes."""

from __future__ import annotations

from pydantic import BaseModel


class PurgeOut(BaseModel):
    deleted: int
    agencies: int
    batches: int
    more: bool
