"""State updates for credit reports, financials, complaints and order mix.

These events change what the customer is known to be rather than what it
owes, so each update is a small pure function of the state and the event.
"""

from __future__ import annotations

import bisect
import math
from datetime import date

from riskstream.currency import to_minor
from riskstream.events import (
    ComplaintLogged,
    CreditReportReceived,
    FinancialsReported,
    OrderLine,
)
from riskstream.model import ANOMALY_MIN_HISTORY, OrderAnomalyDetector, log_ratio
from riskstream.state import DAY_S, MAX_CATEGORIES, CustomerState

RECENT_MIX_HALF_LIFE_DAYS = 14.0
LONG_MIX_HALF_LIFE_DAYS = 365.0
"""Half-lives of the recent and the long-term order category mix."""
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
SLOW_DAYS_TO_PAY_SMOOTHING = 0.05
"""Weight of the newest payment in the long-memory average days to pay."""
LOG_AMOUNT_SMOOTHING = 0.2
"""Weight of the newest order in the running mean of log order amounts."""


def apply_credit_report(state: CustomerState, event: CreditReportReceived) -> bool:
    """Record a bureau score; the one before it gives the score's change."""
    state.credit_score_previous = state.credit_score
    state.credit_score = float(event.score)
    state.profile["credit_bureau"] = event.bureau
    if event.rating:
        state.profile["credit_rating"] = event.rating
    return True


def apply_financials(state: CustomerState, event: FinancialsReported) -> bool:
    """Record the ratios of a reporting period; an older period changes nothing.

    Returns False when a later period is already recorded, which the engine
    counts like a repeat.
    """
    period_end = event.period_end.toordinal() - EPOCH_ORDINAL
    if state.financials is not None and period_end < state.financials[0]:
        return False
    debt_ratio = float(event.total_liabilities / event.total_assets)
    current_ratio = (
        float(event.current_assets / event.current_liabilities)
        if event.current_liabilities > 0
        else None
    )
    state.financials = [
        period_end,
        round(debt_ratio, 4),
        None if current_ratio is None else round(current_ratio, 4),
        int(event.operating_cash_flow < 0),
    ]
    return True


def apply_complaint(state: CustomerState, event: ComplaintLogged, at_s: int) -> bool:
    """Count a complaint on its day; high-severity ones are counted apart too."""
    day = at_s // DAY_S
    bisect.insort(state.complaint_days, day)
    if event.severity == "high":
        bisect.insort(state.serious_complaint_days, day)
    return True


def blend_days_to_pay(state: CustomerState, days_to_pay: float) -> None:
    """Update the long-memory average days to pay with one paid invoice."""
    if state.slow_days_to_pay is None:
        state.slow_days_to_pay = round(days_to_pay, 3)
        return
    blended = SLOW_DAYS_TO_PAY_SMOOTHING * days_to_pay
    blended += (1 - SLOW_DAYS_TO_PAY_SMOOTHING) * state.slow_days_to_pay
    state.slow_days_to_pay = round(blended, 3)


def add_order_lines(
    state: CustomerState, lines: list[OrderLine], currency: str, at_s: int
) -> None:
    """Decay the category mix to ``at_s`` and add an order's lines to it.

    A late order (before the last decay) is added without decaying, so the
    mix never grows back in time. Beyond :data:`MAX_CATEGORIES` categories
    the one with the smallest long-term amount is dropped.
    """
    elapsed_days = max(0, at_s - state.categories_at_s) / DAY_S
    if state.categories and elapsed_days > 0:
        recent = math.exp(-math.log(2) * elapsed_days / RECENT_MIX_HALF_LIFE_DAYS)
        long_term = math.exp(-math.log(2) * elapsed_days / LONG_MIX_HALF_LIFE_DAYS)
        for amounts in state.categories.values():
            amounts[0] = round(amounts[0] * recent, 2)
            amounts[1] = round(amounts[1] * long_term, 2)
    state.categories_at_s = max(state.categories_at_s, at_s)
    for line in lines:
        amount = float(to_minor(line.amount, currency))
        amounts = state.categories.setdefault(line.category, [0.0, 0.0])
        amounts[0] += amount
        amounts[1] += amount
    while len(state.categories) > MAX_CATEGORIES:
        smallest = min(state.categories, key=lambda name: state.categories[name][1])
        del state.categories[smallest]


def score_order(
    state: CustomerState, detector: OrderAnomalyDetector, amount: int, at_s: int
) -> None:
    """Score an order against the customer's history, before it joins it.

    An order of a customer with fewer than :data:`ANOMALY_MIN_HISTORY`
    earlier orders is learned from only, and clears the score.
    """
    log_amount = math.log(max(amount, 1))
    if state.orders_total >= ANOMALY_MIN_HISTORY and state.log_amount_mean is not None:
        gap_deviation = None
        last = state.last_order_s
        if last is not None and at_s >= last:
            mean_gap = max(1.0, state.gap_sum_days / (state.orders_total - 1))
            gap_deviation = log_ratio((at_s - last) / DAY_S + 1, mean_gap + 1)
        state.order_anomaly = detector.score_and_learn(
            log_amount - state.log_amount_mean, gap_deviation
        )
    else:
        state.order_anomaly = None
    if state.log_amount_mean is None:
        state.log_amount_mean = round(log_amount, 6)
    else:
        blended = LOG_AMOUNT_SMOOTHING * log_amount
        blended += (1 - LOG_AMOUNT_SMOOTHING) * state.log_amount_mean
        state.log_amount_mean = round(blended, 6)
