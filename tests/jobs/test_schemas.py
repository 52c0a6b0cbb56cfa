"""The queue message of one job (functions/jobs/schemas.py): its payload, key and parsing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.jobs.schemas import JobMessage


def test_a_job_message_round_trips_and_its_key_names_job_and_period() -> None:
    job = uuid.uuid4()
    message = JobMessage(job, uuid.uuid4(), "costs", datetime(2025, 3, 14, 2, tzinfo=UTC))
    again = JobMessage.from_payload(message.payload())
    assert again == message
    assert message.idempotency_key == f"costs-{job}-{int(message.period.timestamp())}"
    later = JobMessage(job, message.agency_id, "costs", message.period + timedelta(days=1))
    assert later.idempotency_key != message.idempotency_key


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "x",
        {},
        {
            "job_id": "nope",
            "agency_id": str(uuid.uuid4()),
            "kind": "costs",
            "period": "2025-03-14T00:00:00+00:00",
        },
        {
            "job_id": str(uuid.uuid4()),
            "agency_id": str(uuid.uuid4()),
            "kind": "mining",
            "period": "2025-03-14T00:00:00+00:00",
        },
        {
            "job_id": str(uuid.uuid4()),
            "agency_id": str(uuid.uuid4()),
            "kind": "costs",
            "period": "2025-03-14T00:00:00",
        },
        {
            "job_id": str(uuid.uuid4()),
            "agency_id": str(uuid.uuid4()),
            "kind": "costs",
            "period": "2025-03-14T00:00:00+00:00",
            "extra": "x",
        },
    ],
)
def test_messages_that_are_not_ours_are_refused(payload: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        JobMessage.from_payload(payload)
