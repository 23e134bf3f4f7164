"""Risk signals computed from a customer's state at a point in event time."""

from __future__ import annotations

import bisect

from riskstream.state import BLOCK_DAYS, DAY_S, HISTORY_DAYS, RECENT_DAYS, CustomerState

MIN_BASELINE_DAYS = 90
"""History before the recent window needed for a purchase baseline."""
MIN_ORDERS_FOR_GAP = 3
BASELINE_BLOCKS = (HISTORY_DAYS - RECENT_DAYS - BLOCK_DAYS) // BLOCK_DAYS
"""Maximum number of 30-day blocks in the purchase baseline (330 days)."""
ORDERS, AMOUNT = 1, 2
"""Columns of a purchase bucket or block: ``[day or block, orders, amount]``."""
ANOMALY_WINDOW_DAYS = 30
"""Days an unusual order keeps its anomaly score as a signal."""
ANOMALY_WINDOW_S = ANOMALY_WINDOW_DAYS * DAY_S
AGEING_OFFSETS_DAYS = (31, 61, 91)
"""Days past due at which an invoice moves to the next ageing bucket."""
_NO_FINANCIALS = (None, None, None, None)


def compute_signals(state: CustomerState, now_s: int) -> dict[str, float | None]:
    """Compute every signal a rule may use; None where it is undefined.

    ``now_s`` is the evaluation time in seconds. Windows are whole UTC days: the
    30-day window covers today and the 29 days before it. The engine calls
    this at every evaluation, so the loops avoid function calls.
    """
    today = now_s // DAY_S
    days_past_due = overdue = owed = 0
    aged_1_30 = aged_31_60 = aged_61_90 = aged_over_90 = 0
    for invoice in state.invoices.values():
        outstanding = invoice.outstanding
        owed += outstanding
        if outstanding > 0 and invoice.due_s < now_s:
            overdue += outstanding
            late = (now_s - invoice.due_s) // DAY_S
            if late > days_past_due:
                days_past_due = late
            # Day 0 counts with days 1-30, as the first ageing bucket.
            if late <= 30:
                aged_1_30 += outstanding
            elif late <= 60:
                aged_31_60 += outstanding
            elif late <= 90:
                aged_61_90 += outstanding
            else:
                aged_over_90 += outstanding
    exposure = owed - state.credit
    for order in state.open_orders.values():
        exposure += order[0]
    limit = state.credit_limit
    utilisation = exposure / limit if limit else None

    volume_30 = orders_30 = volume_90 = orders_90 = 0
    start_90 = today - RECENT_DAYS
    start_30 = today - 30
    for bucket in reversed(state.days):
        day = bucket[0]
        if day <= start_90:
            break
        volume_90 += bucket[2]
        orders_90 += bucket[1]
        if day > start_30:
            volume_30 += bucket[2]
            orders_30 += bucket[1]

    since_last = gap_ratio = None
    last_order_s = state.last_order_s
    if last_order_s is not None:
        since_last = (now_s - last_order_s) / DAY_S
        if state.orders_total >= MIN_ORDERS_FOR_GAP:
            mean_gap = state.gap_sum_days / (state.orders_total - 1)
            gap_ratio = since_last / (mean_gap if mean_gap > 1.0 else 1.0)

    start_90 = today - 90
    late_days = state.late_days
    fast, slow = state.avg_days_to_pay, state.slow_days_to_pay
    score, previous = state.credit_score, state.credit_score_previous
    financials = state.financials or _NO_FINANCIALS
    expected_orders, expected = expected_purchases(state, today)
    anomaly_current = (
        last_order_s is not None and now_s - last_order_s < ANOMALY_WINDOW_S
    )
    return {
        "days_past_due": float(days_past_due),
        "overdue_amount": float(overdue),
        "late_payments_90d": float(_count_since(late_days, start_90)),
        "late_payments_365d": float(len(late_days)),
        "partial_payments_90d": float(_count_since(state.partial_days, start_90)),
        "failed_payments_90d": float(_count_since(state.failed_days, start_90)),
        "utilisation": utilisation,
        "exposure": float(exposure),
        "volume_30d": float(volume_30),
        "volume_90d": float(volume_90),
        "orders_30d": float(orders_30),
        "orders_90d": float(orders_90),
        "volume_ratio_90d": None if expected is None else volume_90 / expected,
        "days_since_last_order": since_last,
        "gap_ratio": gap_ratio,
        "avg_days_to_pay": fast,
        "overdue_1_30d": float(aged_1_30),
        "overdue_31_60d": float(aged_31_60),
        "overdue_61_90d": float(aged_61_90),
        "overdue_over_90d": float(aged_over_90),
        "days_to_pay_trend": None
        if fast is None or slow is None
        else round(fast - slow, 3),
        "order_frequency_ratio": None
        if expected_orders is None
        else orders_90 / expected_orders,
        "category_shift": category_shift(state.categories)
        if state.categories
        else None,
        "complaints_90d": float(_count_since(state.complaint_days, start_90)),
        "serious_complaints_90d": float(
            _count_since(state.serious_complaint_days, start_90)
        ),
        "credit_score": score,
        "credit_score_change": None
        if score is None or previous is None
        else score - previous,
        "debt_ratio": financials[1],
        "current_ratio": financials[2],
        "negative_cash_flow": None if financials[3] is None else float(financials[3]),
        "order_anomaly": state.order_anomaly if anomaly_current else None,
    }


def model_inputs(state: CustomerState, now_s: int) -> dict[str, float | None]:
    """Compute the signals the late-payment model reads, as :func:`compute_signals`.

    The model scores every invoice at issue, so this skips the other signals;
    a unit test checks that both functions agree.
    """
    start_90 = now_s // DAY_S - 90
    days_past_due = owed = 0
    for invoice in state.invoices.values():
        outstanding = invoice.outstanding
        owed += outstanding
        if outstanding > 0 and invoice.due_s < now_s:
            late = (now_s - invoice.due_s) // DAY_S
            if late > days_past_due:
                days_past_due = late
    exposure = owed - state.credit
    for order in state.open_orders.values():
        exposure += order[0]
    limit = state.credit_limit
    orders_90 = 0
    for day, count, _ in reversed(state.days):
        if day <= start_90:
            break
        orders_90 += count
    late_days = state.late_days
    return {
        "utilisation": exposure / limit if limit else None,
        "late_payments_90d": float(_count_since(late_days, start_90)),
        "late_payments_365d": float(len(late_days)),
        "failed_payments_90d": float(_count_since(state.failed_days, start_90)),
        "partial_payments_90d": float(_count_since(state.partial_days, start_90)),
        "days_past_due": float(days_past_due),
        "avg_days_to_pay": state.avg_days_to_pay,
        "orders_90d": float(orders_90),
    }


def category_shift(categories: dict[str, list[float]]) -> float | None:
    """Return how far recent order lines moved from the long-term category mix.

    The total variation distance between the two category distributions:
    0 is the same mix, 1 is no category in common. None without both.

    >>> category_shift({"a": [1.0, 1.0], "b": [0.0, 1.0]})
    0.5
    """
    recent = sum(amounts[0] for amounts in categories.values())
    long_term = sum(amounts[1] for amounts in categories.values())
    if recent <= 0 or long_term <= 0:
        return None
    distance = sum(
        abs(amounts[0] / recent - amounts[1] / long_term)
        for amounts in categories.values()
    )
    return round(distance / 2, 4)


def _count_since(days: list[int], after_day: int) -> int:
    """Count the days of a sorted list that are later than ``after_day``."""
    if not days or days[-1] <= after_day:
        return 0
    if days[0] > after_day:
        return len(days)
    return len(days) - bisect.bisect_right(days, after_day)


def baseline_blocks(state: CustomerState, today: int) -> tuple[int, int, int] | None:
    """Return the first and last purchase block of the baseline and its days.

    The baseline is the 30-day blocks that end before the recent 90-day
    window starts: at most :data:`BASELINE_BLOCKS` of them, and none before
    the customer's first order. It spans from the start of its first block,
    or from the first order's day when that is later, to the end of its last
    block, and exists once that is :data:`MIN_BASELINE_DAYS` or more. It
    changes only on the day a block boundary leaves the recent window, which
    is a scheduled crossing. Returns None while there is no baseline.
    """
    if state.first_order_s is None:
        return None
    last = (today - RECENT_DAYS + 1) // BLOCK_DAYS - 1
    first_day = state.first_order_s // DAY_S
    first = max(first_day // BLOCK_DAYS, last - BASELINE_BLOCKS + 1)
    span_days = (last + 1) * BLOCK_DAYS - max(first_day, first * BLOCK_DAYS)
    if span_days < MIN_BASELINE_DAYS:
        return None
    return first, last, span_days


def next_baseline_change(today: int) -> int:
    """Return the first day after ``today`` on which the baseline blocks move.

    >>> next_baseline_change(118), next_baseline_change(119)
    (119, 149)
    """
    start = today - RECENT_DAYS + 1
    return (start // BLOCK_DAYS + 1) * BLOCK_DAYS + RECENT_DAYS - 1


def expected_purchases(
    state: CustomerState, today: int
) -> tuple[float | None, float | None]:
    """Return the baseline's order count and volume, each scaled to 90 days.

    Each is None when there is no baseline yet or it contains no purchases.
    """
    span = baseline_blocks(state, today)
    if span is None:
        return None, None
    first, last, span_days = span
    orders = volume = 0
    for block in state.blocks:
        if first <= block[0] <= last:
            orders += block[ORDERS]
            volume += block[AMOUNT]
    scale = RECENT_DAYS / span_days
    return (
        orders * scale if orders > 0 else None,
        volume * scale if volume > 0 else None,
    )
