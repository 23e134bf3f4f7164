"""Crossings: when a rule's outcome changes as days leave a window.

Leaving days only lower a count or a purchase volume, so the day on which a
rule starts or stops firing is known in advance. :meth:`Engine.next_due
<riskstream.engine.Engine.next_due>` schedules that day as a crossing.
"""

from __future__ import annotations

import bisect
import math

from riskstream.config import ScoringConfig
from riskstream.features import (
    AGEING_OFFSETS_DAYS,
    AMOUNT,
    ANOMALY_WINDOW_DAYS,
    ORDERS,
    expected_purchases,
    next_baseline_change,
)
from riskstream.model import LATE_DAYS
from riskstream.state import DAY_S, EVENT_WINDOW_DAYS, RECENT_DAYS, CustomerState

NEVER = 2**62
LATE_S = LATE_DAYS * DAY_S
AGEING_SIGNALS = (
    "overdue_1_30d",
    "overdue_31_60d",
    "overdue_61_90d",
    "overdue_over_90d",
)

COUNT_WINDOWS = {
    "late_payments_90d": ("late_days", 90),
    "late_payments_365d": ("late_days", EVENT_WINDOW_DAYS),
    "partial_payments_90d": ("partial_days", 90),
    "failed_payments_90d": ("failed_days", 90),
    "complaints_90d": ("complaint_days", 90),
    "serious_complaints_90d": ("serious_complaint_days", 90),
}
"""Count signals over a window of a day list: signal -> (state field, days)."""

Check = tuple[bool, float]
"""A rule's comparison: whether it is ``>=``, and its threshold."""


def checks_for(config: ScoringConfig, signal: str) -> list[Check]:
    """Return the comparison of every rule on ``signal``."""
    return [(r.op == ">=", r.threshold) for r in config.rules if r.signal == signal]


def count_limits(checks: list[Check]) -> list[int]:
    """Turn rules on a count into how many leaving days change each outcome.

    A ``>=`` rule that fires at a count ``n`` stops once ``n - ceil(t) + 1``
    days have left. A ``<=`` rule that does not fire starts once
    ``n - floor(t)`` have left. Each entry is that count's offset from ``n``,
    ``ceil(t)`` or ``floor(t) + 1``, and an entry below 1 never changes.
    """
    return [
        math.ceil(limit) if at_least else math.floor(limit) + 1
        for at_least, limit in checks
    ]


def count_flip(days: list[int], before: int, limits: list[int]) -> int | None:
    """Return the day whose leaving the window changes a rule on its count.

    ``days`` is sorted, and days after ``before`` are inside the window. Leaving
    days only lower the count, so for each rule the first change is known.

    >>> count_flip([3, 5, 9], 0, count_limits([(True, 2.0)]))
    5
    >>> count_flip([3, 5, 9], 0, count_limits([(True, 4.0)])) is None
    True
    """
    start = bisect.bisect_right(days, before)
    inside = len(days) - start
    first: int | None = None
    for limit in limits:
        if 1 <= limit <= inside:
            day = days[start + inside - limit]
            if first is None or day < first:
                first = day
    return first


def ratio_flip(
    state: CustomerState,
    today: int,
    checks: list[Check],
    expected: float | None,
    column: int = AMOUNT,
) -> int | None:
    """Return the daily bucket whose leaving the window changes a volume rule.

    ``expected`` is the baseline's volume scaled to 90 days
    (:func:`~riskstream.features.expected_purchases`). ``column``
    :data:`~riskstream.features.ORDERS` checks rules on the order count ratio
    instead, with the baseline's order count. The baseline stays as it is
    until its next block change, which is a crossing of its own, so the ratio
    after each bucket leaves is known.
    """
    if expected is None:
        return None
    cutoff = today - RECENT_DAYS
    total = 0
    for bucket in state.days:
        if bucket[0] > cutoff:
            total += bucket[column]
    found: int | None = None
    for at_least, limit in checks:
        ratio = total / expected
        fires_now = ratio >= limit if at_least else ratio <= limit
        volume = total
        for bucket in state.days:
            if bucket[0] <= cutoff:
                continue
            if found is not None and bucket[0] >= found:
                break
            volume -= bucket[column]
            ratio = volume / expected
            if (ratio >= limit if at_least else ratio <= limit) != fires_now:
                found = bucket[0]
                break
    return found


def threshold_offsets(days: list[float]) -> list[int]:
    """Return threshold days as ascending offsets in whole seconds."""
    return sorted(math.ceil(value * DAY_S) for value in days)


class CrossingSchedule:
    """The crossings that the rules of a configuration can change at.

    Only crossings that can change a rule's outcome are scheduled, so the
    checks and offsets depend on which signals the rules read.
    """

    def __init__(self, config: ScoringConfig) -> None:
        # Crossing offsets in seconds, ascending, so the first one after the
        # clock is the next of its group.
        self._due_offsets = threshold_offsets(config.thresholds_for("days_past_due"))
        self._since_offsets = threshold_offsets(
            config.thresholds_for("days_since_last_order")
        )
        self._gap_ratios = sorted(config.thresholds_for("gap_ratio"))
        # Only crossings that can change a rule's outcome are scheduled. The
        # others would only refresh the published signals.
        read = {rule.signal for rule in config.rules}
        if "overdue_amount" in read:
            self._due_offsets = sorted({1, *self._due_offsets})
        # Each ageing bucket changes when an invoice enters or leaves it.
        bucket_edges = [1, *(days * DAY_S for days in AGEING_OFFSETS_DAYS), None]
        for index, name in enumerate(AGEING_SIGNALS):
            if name in read:
                edges = {bucket_edges[index], bucket_edges[index + 1]}
                offsets = {edge for edge in edges if edge is not None}
                self._due_offsets = sorted({*offsets, *self._due_offsets})
        self._count_checks = [
            (attr, window, count_limits(checks_for(config, signal)))
            for signal, (attr, window) in COUNT_WINDOWS.items()
            if signal in read
        ]
        self._window_30 = bool(read & {"volume_30d", "orders_30d"})
        self._window_90 = bool(read & {"volume_90d", "orders_90d"})
        # The anomaly signal ends 30 days after the order, which changes only
        # rules that fire on it.
        self._anomaly_checks = checks_for(config, "order_anomaly")
        self._ratio_checks = checks_for(config, "volume_ratio_90d")
        self._frequency_checks = checks_for(config, "order_frequency_ratio")

    def next_due(self, state: CustomerState) -> int | None:
        """Return the next crossing after the state's clock, or None.

        A crossing is a time at which a rule's outcome can change without a
        new event. An invoice reaches a days-past-due threshold, or the
        expected order does not arrive. A count of late, partial or failed
        payments, or the purchase volume, passes a threshold as days leave
        its window. The purchase baseline moves on by a block. The model's
        30-day label is a crossing too. Signals that no rule reads change
        between crossings without one.
        """
        clock = state.clock_s
        best = NEVER
        for invoice in state.invoices.values():
            if invoice.outstanding > 0:
                due = invoice.due_s
                for offset in self._due_offsets:
                    at = due + offset
                    if at > clock:
                        best = min(best, at)
                        break
                if not invoice.labelled:
                    at = due + LATE_S
                    if clock < at < best:
                        best = at
        last = state.last_order_s
        if last is not None:
            for offset in self._since_offsets:
                at = last + offset
                if at > clock:
                    best = min(best, at)
                    break
            if state.orders_total >= 3 and self._gap_ratios:
                mean_gap = max(1.0, state.gap_sum_days / (state.orders_total - 1))
                for ratio in self._gap_ratios:
                    at = last + math.ceil(ratio * mean_gap * DAY_S)
                    # The evaluation computes the ratio in floating point, so
                    # the crossing is the first second at which the rule fires.
                    while (at - last) / DAY_S / mean_gap < ratio:
                        at += 1
                    if at > clock:
                        best = min(best, at)
                        break
        today = clock // DAY_S
        for attr, window, limits in self._count_checks:
            days = getattr(state, attr)
            if not days:
                continue
            flip_day = count_flip(days, today - window, limits)
            if flip_day is not None:
                at = (flip_day + window) * DAY_S
                if clock < at < best:
                    best = at
        if self._window_30:
            for bucket in state.days:
                if bucket[0] > today - 30:
                    at = (bucket[0] + 30) * DAY_S
                    if clock < at < best:
                        best = at
                    break
        if (
            self._anomaly_checks
            and state.last_order_s is not None
            and _fires_any(self._anomaly_checks, state.order_anomaly)
        ):
            at = state.last_order_s + ANOMALY_WINDOW_DAYS * DAY_S
            if clock < at < best:
                best = at
        if self._window_90 and state.days:
            at = (state.days[0][0] + RECENT_DAYS) * DAY_S
            if clock < at < best:
                best = at
        if (
            self._ratio_checks or self._frequency_checks
        ) and state.first_order_s is not None:
            at = next_baseline_change(today) * DAY_S
            if at < best:
                best = at
            orders, volume = expected_purchases(state, today)
            for checks, expected, column in (
                (self._ratio_checks, volume, AMOUNT),
                (self._frequency_checks, orders, ORDERS),
            ):
                day = None
                if checks:
                    day = ratio_flip(state, today, checks, expected, column)
                if day is not None:
                    at = (day + RECENT_DAYS) * DAY_S
                    if clock < at < best:
                        best = at
        return None if best == NEVER else best


def _fires_any(checks: list[tuple[bool, float]], value: float | None) -> bool:
    """Tell whether any of the rule comparisons fires on ``value``."""
    if value is None:
        return False
    return any(
        value >= limit if at_least else value <= limit for at_least, limit in checks
    )
