"""Risk signals computed from a customer's state at a point in event time."""

from __future__ import annotations

import bisect

from riskstream.state import BLOCK_DAYS, DAY_S, HISTORY_DAYS, RECENT_DAYS, CustomerState

MIN_BASELINE_DAYS = 90
"""History before the recent window needed for a purchase baseline."""
MIN_ORDERS_FOR_GAP = 3


def compute_signals(state: CustomerState, now_s: int) -> dict[str, float | None]:
    """Compute every signal a rule may use; None where it is undefined.

    ``now_s`` is the evaluation time in seconds. Windows are whole UTC days: the
    30-day window covers today and the 29 days before it.
    """
    today = now_s // DAY_S
    days_past_due = 0
    overdue = 0
    owed = 0
    for invoice in state.invoices.values():
        owed += invoice.outstanding
        if invoice.outstanding > 0 and invoice.due_s < now_s:
            overdue += invoice.outstanding
            days_past_due = max(days_past_due, (now_s - invoice.due_s) // DAY_S)
    exposure = owed + sum(order[0] for order in state.open_orders.values())
    exposure -= state.credit
    utilisation = None
    if state.credit_limit:
        utilisation = exposure / state.credit_limit

    volume_30 = orders_30 = volume_90 = orders_90 = 0
    for day, count, amount in state.days:
        if day > today - RECENT_DAYS:
            volume_90 += amount
            orders_90 += count
            if day > today - 30:
                volume_30 += amount
                orders_30 += count

    since_last = gap_ratio = None
    if state.last_order_s is not None:
        since_last = (now_s - state.last_order_s) / DAY_S
        if state.orders_total >= MIN_ORDERS_FOR_GAP:
            mean_gap = max(1.0, state.gap_sum_days / (state.orders_total - 1))
            gap_ratio = since_last / mean_gap

    return {
        "days_past_due": float(days_past_due),
        "overdue_amount": float(overdue),
        "late_payments_90d": float(_count_since(state.late_days, today - 90)),
        "late_payments_365d": float(len(state.late_days)),
        "partial_payments_90d": float(_count_since(state.partial_days, today - 90)),
        "failed_payments_90d": float(_count_since(state.failed_days, today - 90)),
        "utilisation": utilisation,
        "exposure": float(exposure),
        "volume_30d": float(volume_30),
        "volume_90d": float(volume_90),
        "orders_30d": float(orders_30),
        "orders_90d": float(orders_90),
        "volume_ratio_90d": _volume_ratio(state, today, volume_90),
        "days_since_last_order": since_last,
        "gap_ratio": gap_ratio,
        "avg_days_to_pay": state.avg_days_to_pay,
    }


def _count_since(days: list[int], after_day: int) -> int:
    """Count the days of a sorted list that are later than ``after_day``."""
    return len(days) - bisect.bisect_right(days, after_day)


def _volume_ratio(state: CustomerState, today: int, volume_90: int) -> float | None:
    """Compare the last 90 days' volume with the average 90 days before them.

    The baseline spans the blocks older than the recent window, at most 330
    days, and exists once the customer's first order is 90 days older than the
    recent window. Block edges make the span exact to 30 days.
    """
    if state.first_order_s is None:
        return None
    history_days = today - RECENT_DAYS - state.first_order_s // DAY_S + 1
    # The oldest kept block may be partly dropped already, so the span stops
    # one block short of the kept history.
    span_days = min(HISTORY_DAYS - RECENT_DAYS - BLOCK_DAYS, history_days)
    if span_days < MIN_BASELINE_DAYS:
        return None
    oldest_block = (today - RECENT_DAYS - span_days) // BLOCK_DAYS
    baseline = sum(b[2] for b in state.blocks if b[0] >= oldest_block)
    if baseline <= 0:
        return None
    return volume_90 / (baseline * RECENT_DAYS / span_days)
