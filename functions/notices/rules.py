"""Pure rules of notices: what a notice must hold, the 30-day sub-processor notice, cursors.

The security page promises that an incident notice holds the known facts, the affected data
categories, mitigation steps and a point of contact, sent where feasible within 24 hours of
confirming the incident; and that agencies hear of a new or replaced sub-processor at least 30
days ahead, shorter only for urgent security, availability or legal reasons. These functions
turn an operator's input into a draft that keeps those promises, or refuse it with a message
naming the flag to fix. No I/O; unit-tested with tables of examples.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from shared.errors import BadRequestError, UnprocessableError
from shared.kit import pages
from shared.policy import INCIDENT_NOTICE_TARGET_HOURS, SUBPROCESSOR_NOTICE_DAYS

# Bounds, the same as schema.sql's CHECKs (checked here first, so the operator gets a message
# naming the flag instead of a constraint violation).
TITLE_MAX = 200
TEXT_MAX = 8000
CONTACT_MAX = 320
REASON_MAX = 1000
CATEGORY_MAX = 100
CATEGORIES_MAX = 20
MAX_UPDATES = 100  # per notice; beyond that, publish a new notice
MAX_AGENCY_ARGS = 500
# A date this far ahead is a typo (2062 for 2026), not a plan.
MAX_EFFECTIVE_DAYS = 2 * 366

# One line: no control characters. Long texts may hold newlines and tabs.
_ONE_LINE = re.compile(r"^[^\x00-\x1f\x7f]+$")
_MULTI_LINE = re.compile(r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+$")


@dataclass(frozen=True)
class IncidentDraft:
    title: str
    known_facts: str
    data_categories: tuple[str, ...]
    mitigation: str
    contact: str
    confirmed_at: datetime | None


@dataclass(frozen=True)
class ChangeDraft:
    title: str
    known_facts: str
    data_categories: tuple[str, ...]
    contact: str
    effective_at: datetime
    urgent_reason: str | None


def _text(flag: str, value: str, limit: int, *, one_line: bool = False) -> str:
    clean = value.strip()
    if not clean:
        raise BadRequestError(f"{flag} must not be empty")
    if len(clean) > limit:
        raise BadRequestError(f"{flag} is longer than {limit} characters")
    pattern = _ONE_LINE if one_line else _MULTI_LINE
    if not pattern.match(clean):
        raise BadRequestError(f"{flag} must not contain control characters")
    try:
        clean.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequestError(f"{flag} must be valid UTF-8") from None
    return clean


def parse_categories(value: str, *, required: bool) -> tuple[str, ...]:
    """'a, b,a' -> ('a', 'b'): comma-separated, trimmed, duplicates dropped, order kept."""
    seen: dict[str, None] = {}
    for part in value.split(","):
        item = part.strip()
        if not item:
            continue
        seen[_text("--data-categories item", item, CATEGORY_MAX, one_line=True)] = None
    if required and not seen:
        raise BadRequestError("--data-categories must name at least one data category")
    if len(seen) > CATEGORIES_MAX:
        raise BadRequestError(f"--data-categories names more than {CATEGORIES_MAX} categories")
    return tuple(seen)


def incident_draft(
    *,
    title: str,
    facts: str,
    data_categories: str,
    mitigation: str,
    contact: str,
    confirmed_at: datetime | None,
    now: datetime,
) -> IncidentDraft:
    if confirmed_at is not None:
        confirmed_at = _aware(confirmed_at)
        if confirmed_at > now:
            raise BadRequestError("--confirmed-at is in the future")
    return IncidentDraft(
        title=_text("--title", title, TITLE_MAX, one_line=True),
        known_facts=_text("--facts", facts, TEXT_MAX),
        data_categories=parse_categories(data_categories, required=True),
        mitigation=_text("--mitigation", mitigation, TEXT_MAX),
        contact=_text("--contact", contact, CONTACT_MAX, one_line=True),
        confirmed_at=confirmed_at,
    )


def hours_late(confirmed_at: datetime | None, now: datetime) -> float | None:
    """Hours past the 24-hour notification target, or None when within it (or unknown)."""
    if confirmed_at is None:
        return None
    elapsed = (now - confirmed_at) / timedelta(hours=1)
    return elapsed if elapsed > INCIDENT_NOTICE_TARGET_HOURS else None


def change_draft(
    *,
    title: str,
    facts: str,
    effective: date,
    data_categories: str,
    contact: str,
    urgent: bool,
    reason: str | None,
    now: datetime,
) -> ChangeDraft:
    """A sub-processor change, effective at 00:00 UTC of `effective`: at least
    SUBPROCESSOR_NOTICE_DAYS days after today (UTC) unless urgent, with the reason recorded."""
    if urgent and reason is None:
        raise BadRequestError("--urgent needs --reason: why the change cannot wait 30 days")
    if reason is not None and not urgent:
        raise BadRequestError("--reason is only for --urgent changes")
    urgent_reason = None if reason is None else _text("--reason", reason, REASON_MAX)
    ahead = days_ahead(effective, now)
    if ahead < 0:
        raise UnprocessableError(
            f"--effective {effective.isoformat()} is in the past: agencies are told before a "
            "sub-processor is added or replaced"
        )
    if ahead > MAX_EFFECTIVE_DAYS:
        raise BadRequestError(f"--effective is more than {MAX_EFFECTIVE_DAYS} days ahead")
    if ahead < SUBPROCESSOR_NOTICE_DAYS and not urgent:
        earliest = (
            now.astimezone(UTC).date() + timedelta(days=SUBPROCESSOR_NOTICE_DAYS)
        ).isoformat()
        raise UnprocessableError(
            f"--effective {effective.isoformat()} is {ahead} days ahead; the security page "
            f"promises at least {SUBPROCESSOR_NOTICE_DAYS} days' notice (earliest "
            f"{earliest}). "
            "For urgent security, availability or legal reasons pass --urgent --reason '...'"
        )
    return ChangeDraft(
        title=_text("--title", title, TITLE_MAX, one_line=True),
        known_facts=_text("--facts", facts, TEXT_MAX),
        data_categories=parse_categories(data_categories, required=False),
        contact=_text("--contact", contact, CONTACT_MAX, one_line=True),
        effective_at=datetime.combine(effective, time(0), tzinfo=UTC),
        urgent_reason=urgent_reason,
    )


def days_ahead(effective: date, now: datetime) -> int:
    """Whole days from today (UTC) to `effective`."""
    return (effective - now.astimezone(UTC).date()).days


def update_text(text: str) -> str:
    return _text("--text", text, TEXT_MAX)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# ---- keyset cursors of GET /api/notices ------------------------------------------------------

# Shorter than the kit's bound: a notices cursor holds a timestamp and a uuid (and a longer
# token stays the 422 of the query's pattern it always was).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,200}$"


def encode_cursor(delivered_at: datetime, notice_id: uuid.UUID) -> str:
    """The position after a page's last row; it grants nothing (every query stays scoped)."""
    return pages.encode_cursor("notices", delivered_at, str(notice_id))


def decode_cursor(token: str) -> tuple[datetime, uuid.UUID]:
    """The kit's cursor of kind "notices" (1970 <= time < 9000), whose key is a notice id."""
    return pages.decode_uuid_cursor("notices", token)
