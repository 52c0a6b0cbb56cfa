"""Cost Explorer spend over simulated days, for the anomaly tests and the demo (issue 19).

The simulator's Cost Explorer answers from a monthly ledger (`SimulatedAws.put_cost`: rows of
an account, month and service add up). `SpendScenario` writes that ledger day by day, the way
Cost Explorer's month-to-date amounts move in real life:

- **noisy normal spend**: each line (account x service) spends its daily amount, with uniform
  noise of +-`noise` (deterministic: drawn from `seed`, the day and the line);
- **Cost Explorer's lag**: a day's spend shows only 1 or 2 days later (drawn per day), so some
  days nothing new shows and the next shows two days;
- **month-start fees** (`month_fees`): charges AWS posts on the first of a month (support, tax,
  Savings Plans), shown with the same lag;
- **one-off adjustments** (`adjustments`): a credit or a downward Estimated revision (negative
  amounts) or a planted spike (positive), on a given day.

`post_through(today)` posts every day's spend that has become visible by `today`, once. The
simulator's current month is always Estimated; rows are posted final.
`run_instances_events` builds the CloudTrail records of a planted spike's RunInstances calls.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

METRICS = ("UnblendedCost", "AmortizedCost", "NetUnblendedCost")
_CENT = Decimal("0.01")


class Ledger(Protocol):
    """What the scenario needs of the simulator (SimulatedAws.put_cost)."""

    def put_cost(
        self,
        account_id: str,
        month: str,
        service: str,
        amounts: dict[str, Decimal],
        *,
        estimated: bool = False,
        currency: str = "USD",
    ) -> None: ...


@dataclass(frozen=True)
class Line:
    """An account's daily spend on one Cost Explorer service."""

    account_id: str
    service: str
    daily: Decimal
    noise: float = 0.15  # +- fraction of `daily`


@dataclass(frozen=True)
class Adjustment:
    """A one-off amount on a day: a credit or revision (negative) or a spike (positive)."""

    day: date
    account_id: str
    service: str
    amount: Decimal


@dataclass
class SpendScenario:
    lines: list[Line]
    seed: int = 19
    month_fees: list[Line] = field(default_factory=list)  # `daily` = the fee, on the 1st
    adjustments: list[Adjustment] = field(default_factory=list)
    lags: tuple[int, ...] = (1, 2)  # days until a day's spend shows
    _posted: set[date] = field(default_factory=set)

    def lag(self, day: date) -> int:
        return random.Random(f"{self.seed}:lag:{day.isoformat()}").choice(self.lags)

    def spend_of(self, day: date) -> list[tuple[str, str, Decimal]]:
        """(account, service, amount) spent on `day`."""
        out = []
        for n, line in enumerate(self.lines):
            draw = random.Random(f"{self.seed}:{day.isoformat()}:{n}")
            factor = Decimal(str(1 + draw.uniform(-line.noise, line.noise)))
            out.append((line.account_id, line.service, (line.daily * factor).quantize(_CENT)))
        if day.day == 1:
            out += [(f.account_id, f.service, f.daily) for f in self.month_fees]
        out += [(a.account_id, a.service, a.amount) for a in self.adjustments if a.day == day]
        return out

    def visible_on(self, day: date) -> date:
        return day + timedelta(days=self.lag(day))

    def post_through(self, sim: Ledger, today: date, first_day: date) -> int:
        """Post to the ledger every day from `first_day` whose spend shows by `today` and was
        not posted yet; returns the days posted."""
        posted = 0
        day = first_day
        while day < today:
            if day not in self._posted and self.visible_on(day) <= today:
                self._post(sim, day)
                self._posted.add(day)
                posted += 1
            day += timedelta(days=1)
        return posted

    def _post(self, sim: Ledger, day: date) -> None:
        # Rows are posted final: the simulator calls the current month Estimated anyway.
        month = f"{day.year}-{day.month:02d}"
        for account, service, amount in self.spend_of(day):
            sim.put_cost(account, month, service, dict.fromkeys(METRICS, amount))

    def month_to_date(self, account_id: str, service: str, through: date) -> Decimal:
        """What the ledger holds for the line's month of `through` once every day up to it
        (included) is posted (for assertions)."""
        total = Decimal(0)
        day = through.replace(day=1)
        while day <= through:
            total += sum(
                (a for acc, svc, a in self.spend_of(day) if acc == account_id and svc == service),
                Decimal(0),
            )
            day += timedelta(days=1)
        return total


def run_instances_events(
    account_id: str,
    *,
    principal: str,
    source_ip: str,
    times: Iterable[datetime],
    region: str = "us-east-1",
    event_name: str = "RunInstances",
) -> list[dict[str, Any]]:
    """CloudTrail records of `principal` (an IAM user name) calling EC2 at `times`."""
    records = []
    for at in times:
        records.append(
            {
                "eventVersion": "1.09",
                "userIdentity": {
                    "type": "IAMUser",
                    "principalId": "AIDA" + uuid.uuid5(uuid.NAMESPACE_DNS, principal).hex[:16],
                    "arn": f"arn:aws:iam::{account_id}:user/{principal}",
                    "accountId": account_id,
                    "userName": principal,
                },
                "eventTime": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "eventSource": "ec2.amazonaws.com",
                "eventName": event_name,
                "awsRegion": region,
                "sourceIPAddress": source_ip,
                "userAgent": "aws-cli/2.15.0",
                "requestParameters": {"instanceType": "p4d.24xlarge", "minCount": 1},
                "responseElements": None,
                "requestID": str(uuid.uuid4()),
                "eventID": str(uuid.uuid4()),
                "readOnly": False,
                "eventType": "AwsApiCall",
                "managementEvent": True,
                "recipientAccountId": account_id,
                "eventCategory": "Management",
            }
        )
    return records
