"""The plans, in one place: each plan's limit of linked accounts and its Polar product.

The trial is ours (every new agency starts in it, see `cao.agencies.trial_ends_at`); the paid
plans are Polar products whose ids are settings (`POLAR_PRODUCT_...`), so a sandbox and the
production organization use the same code. A webhook names a product id; `plan_for_product`
turns it back into a plan. The limit is enforced when an account is linked
(`check_account_limit`, called by onboarding inside its linking transaction).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.db import Connection, tenant_tx
from shared.errors import BadRequestError, ConfigError, NotFoundError, PaymentRequiredError
from shared.kit.clock import utc_now
from shared.settings import Settings
from shared.store import billing as billing_store


@dataclass(frozen=True)
class Plan:
    """A plan: its name (stored in cao.agencies.plan), linked-account limit, Polar product."""

    name: str
    title: str
    max_accounts: int
    product_setting: str | None  # the setting holding its Polar product id; None: not sold


TRIAL = Plan("trial", "Trial", 5, None)
PLANS: tuple[Plan, ...] = (
    TRIAL,
    Plan("starter", "Starter", 10, "POLAR_PRODUCT_STARTER"),
    Plan("pro", "Pro", 50, "POLAR_PRODUCT_PRO"),
)
_BY_NAME = {p.name: p for p in PLANS}
PURCHASABLE: tuple[str, ...] = tuple(p.name for p in PLANS if p.product_setting)


def plan_named(name: str) -> Plan:
    """The plan called `name`; an unknown name (set by hand, or a retired plan) gets the trial's
    limits, the conservative choice."""
    return _BY_NAME.get(name, TRIAL)


def purchasable_plan(name: str) -> Plan:
    """The plan a checkout may buy; 400 naming the choices for anything else."""
    plan = _BY_NAME.get(name)
    if plan is None or plan.product_setting is None:
        raise BadRequestError(f"plan must be one of: {', '.join(PURCHASABLE)}")
    return plan


def product_id(plan: Plan, settings: Settings) -> str:
    """The Polar product id of a paid plan; ConfigError (503) naming the setting when unset."""
    if plan.product_setting is None:
        raise BadRequestError(f"plan {plan.name!r} cannot be bought")
    value = settings.get(plan.product_setting)
    if not value:
        raise ConfigError(
            f"{plan.product_setting} is not configured: the Polar product id of plan {plan.name!r}"
        )
    return value


def plan_for_product(product: str | None, settings: Settings) -> str | None:
    """The plan whose configured Polar product is `product`; None when none is."""
    if not product:
        return None
    for plan in PLANS:
        if plan.product_setting and settings.get(plan.product_setting) == product:
            return plan.name
    return None


def check_account_limit(
    conn: Connection,
    agency_id: uuid.UUID,
    *,
    adding: int = 1,
    now: datetime | None = None,
) -> None:
    """Raise 402 when linking `adding` more accounts would exceed the agency's plan, or when its
    billing does not entitle it to sync at all (trial over, revoked, ...).

    Call it inside the transaction that inserts the account: it locks the agency row until that
    transaction ends, so two concurrent links cannot both take the last slot. (Called on its
    own, it runs in a transaction of its own and the lock ends with it.)
    """
    at = now or utc_now()
    with tenant_tx(conn, agency_id):
        row = billing_store.lock_for_linking(conn, agency_id, at)
    if row is None:
        raise NotFoundError("agency not found")
    plan = plan_named(row.state.plan)
    if not row.entitled:
        raise PaymentRequiredError(
            f"billing is {row.state.status} and does not allow linking accounts: subscribe "
            "through POST /api/billing/checkout, or manage the subscription through "
            "POST /api/billing/portal",
            code="billing_inactive",
        )
    if row.linked_accounts + adding > plan.max_accounts:
        raise PaymentRequiredError(
            f"plan {plan.name!r} allows {plan.max_accounts} linked accounts and "
            f"{row.linked_accounts} are linked: unlink one, or upgrade (POST "
            "/api/billing/checkout; when already subscribed, POST /api/billing/portal)",
            code="plan_limit_reached",
        )
