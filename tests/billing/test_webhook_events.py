"""Event parsing and the billing state machine (pure: no database)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.polar_replay import encode, sample_event
from functions.billing.schemas import (
    MAX_JSON_DEPTH,
    Event,
    WebhookPayloadError,
    nests_deeper_than,
    parse_event,
)
from functions.billing.subscription import transition
from shared.store.billing import BillingState

AGENCY = uuid.UUID("6f1c8a52-3d7e-4b0a-9c1e-2f4a5b6c7d8e")
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PERIOD_END = T0 + timedelta(days=30)
TRIAL_END = T0 + timedelta(days=14)
PRO = "prod-pro"


def plan_for(product: str | None) -> str | None:
    return {"prod-pro": "pro", "prod-starter": "starter"}.get(product or "")


def fresh() -> BillingState:
    """A new agency: our own trial, no Polar ids, no event applied yet."""
    return BillingState("trialing", "trial", TRIAL_END, None, None, None, None)


def event(event_type: str, at: datetime = T0, **kw: Any) -> Event:
    kw.setdefault("product_id", PRO)
    kw.setdefault("period_end", PERIOD_END)
    return parse_event(encode(sample_event(AGENCY, event_type, at=at, **kw)))


def after(*events: Event, start: BillingState | None = None) -> BillingState:
    state = start or fresh()
    for e in events:
        change = transition(state, e, plan_for)
        assert change.state is not None, change.reason
        state = change.state
    return state


@pytest.mark.parametrize(
    ("event_type", "polar_status", "expected"),
    [
        ("subscription.created", "active", "active"),
        ("subscription.created", "trialing", "trialing"),
        ("subscription.active", "active", "active"),
        ("subscription.updated", "active", "active"),
        ("subscription.updated", "past_due", "past_due"),
        ("subscription.updated", "unpaid", "unpaid"),
        ("subscription.canceled", "active", "canceled"),
        ("subscription.canceled", "canceled", "canceled"),
        ("subscription.past_due", "past_due", "past_due"),
        ("subscription.revoked", "canceled", "revoked"),
    ],
)
def test_each_subscription_event_maps_to_its_billing_status(
    event_type: str, polar_status: str, expected: str
) -> None:
    state = after(event(event_type, status=polar_status))
    assert state.status == expected
    assert state.polar_subscription_id == "sub_demo_0001"
    assert state.polar_customer_id == "cus_demo_0001"
    assert state.plan == "pro"
    assert state.billing_event_at == T0


def test_a_cancellation_keeps_access_until_the_period_ends() -> None:
    ends = T0 + timedelta(days=9)
    state = after(
        event("subscription.active"),
        event("subscription.canceled", T0 + timedelta(1), period_end=ends),
    )
    assert (state.status, state.current_period_end) == ("canceled", ends)


def test_uncanceling_returns_to_active() -> None:
    state = after(
        event("subscription.active"),
        event("subscription.canceled", T0 + timedelta(1)),
        event("subscription.uncanceled", T0 + timedelta(2)),
    )
    assert state.status == "active"


def test_an_update_with_cancel_at_period_end_counts_as_canceled() -> None:
    state = after(event("subscription.updated", extra={"cancel_at_period_end": True}))
    assert state.status == "canceled"


def test_a_polar_trial_sets_the_trial_end() -> None:
    trial = T0 + timedelta(days=7)
    state = after(event("subscription.created", status="trialing", trial_end=trial))
    assert (state.status, state.trial_ends_at) == ("trialing", trial)


def test_an_incomplete_first_payment_neither_ends_the_trial_nor_grants_anything() -> None:
    for status in ("incomplete", "incomplete_expired", "some_future_status"):
        state = after(event("subscription.created", status=status))
        assert (state.status, state.trial_ends_at, state.plan) == ("trialing", TRIAL_END, "trial")
        assert state.polar_customer_id == "cus_demo_0001"


def test_an_order_paid_recovers_a_past_due_subscription() -> None:
    state = after(
        event("subscription.past_due"),
        event("order.paid", T0 + timedelta(1)),
    )
    assert state.status == "active"


def test_an_order_paid_does_not_revive_a_revoked_subscription() -> None:
    state = after(event("subscription.revoked"), event("order.paid", T0 + timedelta(1)))
    assert state.status == "revoked"


def test_an_order_for_another_subscription_changes_nothing() -> None:
    state = after(event("subscription.active"))
    change = transition(
        state, event("order.paid", T0 + timedelta(1), subscription_id="sub_x"), plan_for
    )
    assert change.state is None


def test_an_older_event_does_not_roll_state_back() -> None:
    state = after(event("subscription.revoked", T0 + timedelta(minutes=5)))
    change = transition(state, event("subscription.active", T0), plan_for)
    assert change.state is None and change.stale


def test_late_news_of_an_old_subscription_does_not_undo_the_current_one() -> None:
    state = after(event("subscription.active", subscription_id="sub_old"))
    state = after(
        event("subscription.canceled", T0 + timedelta(1), subscription_id="sub_old"),
        event("subscription.created", T0 + timedelta(2), subscription_id="sub_new"),
        start=state,
    )
    assert (state.status, state.polar_subscription_id) == ("active", "sub_new")
    change = transition(
        state,
        event("subscription.revoked", T0 + timedelta(30), subscription_id="sub_old"),
        plan_for,
    )
    assert change.state is None


def test_an_unknown_product_keeps_the_current_plan() -> None:
    state = after(event("subscription.active", product_id="prod-unknown"))
    assert state.plan == "trial"


def test_new_fields_in_a_payload_are_ignored() -> None:
    raw = sample_event(AGENCY, "subscription.active", at=T0)
    raw["brand_new_field"] = {"nested": [1, 2]}
    raw["data"]["another_new_field"] = "x"
    assert parse_event(encode(raw)).agency_id == AGENCY


def test_unknown_event_types_parse_without_data() -> None:
    parsed = parse_event(b'{"type":"benefit.granted","timestamp":"2026-06-01T00:00:00Z","data":{}}')
    assert parsed.data is None and parsed.agency_id is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"type":"subscription.active"}',
        b'{"type":"subscription.active","timestamp":"yesterday","data":{}}',
        b'{"type":"subscription.active","timestamp":"2026-06-01T00:00:00Z","data":{"id":"s"}}',
        b'{"type":"subscription.active","timestamp":"2026-06-01T00:00:00Z","data":[]}',
        b'{"type":"order.paid","timestamp":"2026-06-01T00:00:00Z","data":{"customer_id":"c"}}',
    ],
)
def test_a_payload_that_does_not_parse_is_a_400(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError) as err:
        parse_event(body)
    assert err.value.status == 400


@pytest.mark.parametrize("external_id", [None, "", "not-a-uuid", "user_123"])
def test_a_customer_without_our_agency_id_has_no_agency(external_id: str | None) -> None:
    raw = sample_event(AGENCY, "subscription.active", at=T0)
    raw["data"]["customer"]["external_id"] = external_id
    assert parse_event(encode(raw)).agency_id is None


@pytest.mark.parametrize(
    ("body", "deeper_than_2"),
    [
        (b"{}", False),
        (b'{"a":[1]}', False),
        (b'{"a":[[1]]}', True),
        (b'{"a":"[[[[{{{{"}', False),  # brackets in strings do not count
        (b'{"a":"\\"[[[","b":[]}', False),  # nor after an escaped quote
        (b'{"a":"\\\\","b":[[1]]}', True),  # an escaped backslash ends before the quote
        (b"[[[", True),
        (b'{"a":"[[[', False),  # unterminated: left for the parser to refuse
        (b"\xff\xfe[[[", True),
    ],
)
def test_nesting_is_measured_outside_strings(body: bytes, deeper_than_2: bool) -> None:
    assert nests_deeper_than(body, 2) is deeper_than_2


def test_a_payload_nested_deeper_than_the_bound_is_a_400_naming_it() -> None:
    raw = sample_event(AGENCY, "subscription.active", at=T0)
    raw["data"]["metadata"] = {"deep": json.loads("[" * 40 + "]" * 40)}
    with pytest.raises(WebhookPayloadError, match=f"deeper than {MAX_JSON_DEPTH} levels") as err:
        parse_event(encode(raw))
    assert err.value.status == 400
    # Far deeper than the parser's recursion limit: still a 400, never a RecursionError.
    with pytest.raises(WebhookPayloadError, match="deeper than"):
        parse_event(b"[" * 50_000 + b"]" * 50_000)


def test_a_payload_nested_to_the_bound_parses() -> None:
    raw = sample_event(AGENCY, "subscription.active", at=T0)
    raw["data"]["metadata"] = {"deep": json.loads("[" * 28 + "]" * 28)}  # 4 levels above it
    assert parse_event(encode(raw)).agency_id == AGENCY
