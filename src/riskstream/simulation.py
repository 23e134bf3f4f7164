"""Simulated invoices, payments and master data on top of real or simulated orders.

Purchase logs such as CDNOW hold orders only. This module derives an invoice
per order and simulates how each customer pays it with a seeded behaviour
model, so the payment signals have something to work on. Every event it makes
carries ``source`` ``simulated:...``, and the orders passed in keep theirs.

The behaviour model, per customer (drawn once, from the customer's own seeded
generator, so a subset of customers gets the same events as the full set):

============  =====  =====================  =======  ======
profile       share  paid, days after due   partial  failed
============  =====  =====================  =======  ======
prompt        70 %   normal(-5, 4)          2 %      1 %
slow          18 %   normal(12, 8)          8 %      4 %
distressed     8 %   normal(35, 15)         20 %     15 %
defaulter      4 %   as slow until a stop   8 %      30 %
============  =====  =====================  =======  ======

Credit reports, financial statements and complaints are simulated from the
same profile, with a second generator per customer so that they do not change
the payments drawn:

============  ============  ==========  =============  ==================
profile       credit score  debt ratio  current ratio  complaint per order
============  ============  ==========  =============  ==================
prompt        75 +- 8       0.45        1.6            2 %
slow          58 +- 10      0.65        1.1            4 %
distressed    38 +- 10      0.85        0.7            8 %
defaulter     60 +- 8, -30  0.80        0.8            6 %
============  ============  ==========  =============  ==================

A credit report arrives 5 days after the first order and every 91 days
until 91 days after the last one. A defaulter's score falls by 30 once it
stops paying. Financial statements arrive 120 days after the first order and
then yearly, each ratio with 10 % noise. Their operating cash flow is
negative in one statement in two of a distressed or defaulting customer and
in one in ten otherwise. A complaint is high severity one time in five.

Each customer's master data names an industry and a region (an ISO 3166
country code), drawn with the shares of :data:`INDUSTRIES` and
:data:`REGIONS` from a third generator, independently of the payment
profile.

A defaulter stops paying at a uniformly drawn point of its order history:
invoices issued after it are never paid. A partial payment pays half the
invoice on the drawn day and the rest 10 to 30 days later. A failed payment
is an attempt for the full amount two days before the real one.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

SIMULATED = "simulated:riskstream-payment-model-v1"
FAILURE_REASONS = ("refused", "bounced", "insufficient_funds")


@dataclass(frozen=True, slots=True)
class Profile:
    """Payment behaviour of one kind of customer."""

    name: str
    share: float
    delay_mean_days: float
    delay_sd_days: float
    partial_rate: float
    failed_rate: float
    stops_paying: bool = False
    credit_score: tuple[float, float] = (75.0, 8.0)
    """Mean and standard deviation of the bureau score."""
    debt_ratio: float = 0.45
    current_ratio: float = 1.6
    complaint_rate: float = 0.02


PROFILES = (
    Profile("prompt", 0.70, -5.0, 4.0, 0.02, 0.01),
    Profile("slow", 0.18, 12.0, 8.0, 0.08, 0.04, False, (58.0, 10.0), 0.65, 1.1, 0.04),
    Profile(
        "distressed", 0.08, 35.0, 15.0, 0.20, 0.15, False, (38.0, 10.0), 0.85, 0.7, 0.08
    ),
    Profile(
        "defaulter", 0.04, 12.0, 8.0, 0.08, 0.30, True, (60.0, 8.0), 0.80, 0.8, 0.06
    ),
)
DEFAULT_SCORE_FALL = 30.0
REPORT_EVERY_DAYS = 91
BUREAU = "simulated-bureau"
INDUSTRIES = (
    ("retail", 0.25),
    ("wholesale", 0.20),
    ("manufacturing", 0.20),
    ("services", 0.15),
    ("construction", 0.08),
    ("hospitality", 0.07),
    ("utilities", 0.05),
)
"""Simulated industries and their shares of customers."""
REGIONS = (
    ("US", 0.55),
    ("CA", 0.15),
    ("GB", 0.10),
    ("DE", 0.10),
    ("MX", 0.10),
)
"""Simulated regions and their shares of customers."""


@dataclass(slots=True)
class Order:
    """One order as the simulation needs it."""

    customer_id: str
    order_id: str
    placed_at: datetime
    amount: Decimal
    currency: str
    source: str
    lines: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class CustomerPlan:
    """The simulated behaviour drawn for one customer."""

    profile: Profile
    stop_at: datetime | None
    events: list[dict[str, Any]] = field(default_factory=list)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def customer_rng(seed: int, customer_id: str) -> random.Random:
    """Return the customer's own generator, independent of other customers.

    >>> customer_rng(1, "a").random() == customer_rng(1, "a").random()
    True
    """
    digest = hashlib.sha256(f"{seed}:{customer_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def draw_share(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    """Draw one name of ``choices``, each with its share of the total.

    >>> draw_share(random.Random(1), (("a", 0.5), ("b", 0.5)))
    'a'
    """
    point = rng.random() * sum(share for _, share in choices)
    for name, share in choices:
        point -= share
        if point < 0:
            return name
    return choices[-1][0]


def draw_profile(rng: random.Random) -> Profile:
    """Draw a payment profile with the shares of :data:`PROFILES`."""
    point = rng.random()
    cumulative = 0.0
    for profile in PROFILES:
        cumulative += profile.share
        if point < cumulative:
            return profile
    return PROFILES[-1]


def credit_limit(first_order: Decimal) -> Decimal:
    """Set the simulated credit limit from the first order only (no look-ahead).

    Twice the first order, rounded up to a multiple of 50, at least 100.

    >>> credit_limit(Decimal("12.49")), credit_limit(Decimal("180.10"))
    (Decimal('100'), Decimal('400'))
    """
    doubled = (first_order * 2 / 50).to_integral_value(rounding=ROUND_CEILING) * 50
    return max(Decimal(100), doubled)


def simulate(
    orders: Iterable[Order],
    *,
    seed: int,
    terms_days: int = 30,
    end: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every event for ``orders``: the orders and the simulated rest.

    ``orders`` must be grouped by customer and sorted by time within a
    customer. Events after ``end`` are left out. The output is sorted by
    ``occurred_at``, then customer, then a per-customer sequence number, so
    the same seed gives byte-identical files.
    """
    events: list[tuple[str, str, int, dict[str, Any]]] = []
    current: str | None = None
    plan: CustomerPlan | None = None
    rng = random.Random(0)
    history: list[Order] = []

    def finish() -> None:
        if plan is not None and current is not None:
            plan.events.extend(
                _simulate_profile_events(current, history, plan, seed, terms_days)
            )
            for number, event in enumerate(plan.events):
                if end is None or event["occurred_at"] <= _iso(end):
                    events.append((event["occurred_at"], current, number, event))

    for order in orders:
        if order.customer_id != current:
            finish()
            current = order.customer_id
            rng = customer_rng(seed, current)
            plan = _start_customer(order, rng, terms_days, seed)
            history = []
        assert plan is not None
        history.append(order)
        _simulate_order(plan, order, len(history), rng, terms_days)
    finish()
    events.sort(key=lambda row: row[:3])
    for _, _, _, event in events:
        yield event


def _start_customer(
    order: Order, rng: random.Random, terms_days: int, seed: int
) -> CustomerPlan:
    profile = draw_profile(rng)
    master = customer_rng(seed, f"{order.customer_id}:master-data")
    stop_at = None
    if profile.stops_paying:
        stop_at = order.placed_at + timedelta(days=rng.uniform(30, 360))
    plan = CustomerPlan(profile, stop_at)
    plan.events.append(
        {
            "event_id": f"{order.customer_id}-profile",
            "type": "customer.updated",
            "customer_id": order.customer_id,
            "occurred_at": _iso(order.placed_at - timedelta(minutes=1)),
            "source": SIMULATED,
            "name": f"Customer {order.customer_id}",
            "industry": draw_share(master, INDUSTRIES),
            "region": draw_share(master, REGIONS),
            "credit_limit": str(credit_limit(order.amount)),
            "currency": order.currency,
            "payment_terms_days": terms_days,
        }
    )
    return plan


def _simulate_order(
    plan: CustomerPlan, order: Order, number: int, rng: random.Random, terms_days: int
) -> None:
    customer = order.customer_id
    placed: dict[str, Any] = {
        "event_id": f"{order.order_id}-placed",
        "type": "order.placed",
        "customer_id": customer,
        "occurred_at": _iso(order.placed_at),
        "source": order.source,
        "order_id": order.order_id,
        "amount": str(order.amount),
        "currency": order.currency,
    }
    if order.lines:
        placed["lines"] = order.lines
    plan.events.append(placed)

    issued_at = order.placed_at + timedelta(days=1)
    due_at = issued_at + timedelta(days=terms_days)
    invoice_id = f"{order.order_id}-inv"
    plan.events.append(
        {
            "event_id": f"{invoice_id}-issued",
            "type": "invoice.issued",
            "customer_id": customer,
            "occurred_at": _iso(issued_at),
            "source": SIMULATED,
            "invoice_id": invoice_id,
            "order_id": order.order_id,
            "amount": str(order.amount),
            "currency": order.currency,
            "due_at": _iso(due_at),
        }
    )

    profile = plan.profile
    delay = rng.gauss(profile.delay_mean_days, profile.delay_sd_days)
    paid_at = max(issued_at + timedelta(hours=1), due_at + timedelta(days=delay))
    partial = rng.random() < profile.partial_rate
    failed = rng.random() < profile.failed_rate
    stopped = plan.stop_at is not None and issued_at >= plan.stop_at
    payment = {
        "customer_id": customer,
        "source": SIMULATED,
        "invoice_id": invoice_id,
        "currency": order.currency,
    }
    if failed or stopped:
        attempt_at = paid_at - timedelta(days=2)
        plan.events.append(
            {
                **payment,
                "event_id": f"{invoice_id}-fail",
                "type": "payment.failed",
                "occurred_at": _iso(max(issued_at, attempt_at)),
                "payment_id": f"{invoice_id}-pf",
                "amount": str(order.amount),
                "reason": FAILURE_REASONS[rng.randrange(len(FAILURE_REASONS))],
            }
        )
    if stopped:
        return
    if partial and order.amount >= Decimal("0.02"):
        first = (order.amount / 2).quantize(Decimal("0.01"))
        rest_at = paid_at + timedelta(days=rng.uniform(10, 30))
        parts = [(paid_at, first, "p1"), (rest_at, order.amount - first, "p2")]
    else:
        parts = [(paid_at, order.amount, "p1")]
    for moment, amount, suffix in parts:
        plan.events.append(
            {
                **payment,
                "event_id": f"{invoice_id}-{suffix}",
                "type": "payment.received",
                "occurred_at": _iso(moment),
                "payment_id": f"{invoice_id}-{suffix}",
                "amount": str(amount),
            }
        )


def synthetic_orders(
    customers: int, *, days: int, seed: int, start: datetime | None = None
) -> Iterator[Order]:
    """Yield simulated orders: each customer orders every few days, in EUR.

    For load tests and benchmarks only; their source is ``simulated:orders``.
    """
    start = start or datetime(2025, 1, 1, tzinfo=UTC)
    for index in range(customers):
        customer = f"SIM-{index:06d}"
        rng = customer_rng(seed, customer)
        mean_gap = rng.uniform(3, 30)
        basket = rng.uniform(50, 5000)
        moment = start + timedelta(days=rng.uniform(0, mean_gap))
        number = 0
        while moment < start + timedelta(days=days):
            amount = Decimal(str(round(basket * math.exp(rng.gauss(0, 0.3)), 2)))
            number += 1
            yield Order(
                customer,
                f"{customer}-o{number}",
                moment,
                amount,
                "EUR",
                "simulated:orders",
            )
            moment += timedelta(days=rng.expovariate(1 / mean_gap))


def _simulate_profile_events(
    customer: str,
    history: list[Order],
    plan: CustomerPlan,
    seed: int,
    terms_days: int,
) -> list[dict[str, Any]]:
    """Simulate credit reports, financial statements and complaints."""
    rng = customer_rng(seed, f"{customer}:profile-data")
    profile = plan.profile
    first, last = history[0].placed_at, history[-1].placed_at
    base = {"customer_id": customer, "source": SIMULATED}
    events: list[dict[str, Any]] = []

    moment, number = first + timedelta(days=5), 0
    while moment <= last + timedelta(days=REPORT_EVERY_DAYS):
        mean, spread = profile.credit_score
        if plan.stop_at is not None and moment >= plan.stop_at:
            mean -= DEFAULT_SCORE_FALL
        score = min(100.0, max(0.0, rng.gauss(mean, spread)))
        events.append(
            {
                **base,
                "event_id": f"{customer}-credit-{number}",
                "type": "credit_report.received",
                "occurred_at": _iso(moment),
                "bureau": BUREAU,
                "score": round(score, 1),
            }
        )
        moment, number = moment + timedelta(days=REPORT_EVERY_DAYS), number + 1

    moment, number = first + timedelta(days=120), 0
    troubled = profile.name in ("distressed", "defaulter")
    while moment <= last + timedelta(days=terms_days):
        assets = Decimal(1_000_000)
        debt = profile.debt_ratio * rng.uniform(0.9, 1.1)
        current_ratio = profile.current_ratio * rng.uniform(0.9, 1.1)
        liabilities = Decimal(round(300_000 * rng.uniform(0.8, 1.2)))
        negative = rng.random() < (0.5 if troubled else 0.1)
        events.append(
            {
                **base,
                "event_id": f"{customer}-financials-{number}",
                "type": "financials.reported",
                "occurred_at": _iso(moment),
                "period_end": (moment - timedelta(days=30)).date().isoformat(),
                "total_assets": str(assets),
                "total_liabilities": str(
                    (assets * Decimal(str(round(debt, 4)))).quantize(Decimal(1))
                ),
                "current_assets": str(
                    (liabilities * Decimal(str(round(current_ratio, 4)))).quantize(
                        Decimal(1)
                    )
                ),
                "current_liabilities": str(liabilities),
                "operating_cash_flow": str(
                    Decimal(round(rng.uniform(-50_000, -1_000)))
                    if negative
                    else Decimal(round(rng.uniform(1_000, 80_000)))
                ),
            }
        )
        moment, number = moment + timedelta(days=365), number + 1

    for order in history:
        if rng.random() < profile.complaint_rate:
            events.append(
                {
                    **base,
                    "event_id": f"{order.order_id}-complaint",
                    "type": "complaint.logged",
                    "occurred_at": _iso(
                        order.placed_at + timedelta(days=rng.uniform(2, 10))
                    ),
                    "severity": "high" if rng.random() < 0.2 else "medium",
                    "category": "delivery" if rng.random() < 0.6 else "invoice",
                }
            )
    return events
