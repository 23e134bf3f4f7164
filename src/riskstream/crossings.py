"""Crossings: when a rule's outcome changes as days leave a window.

Leaving days only lower a count or a purchase volume, so the day on which a
rule starts or stops firing is known in advance. :meth:`Engine.next_due
<riskstream.engine.Engine.next_due>` schedules that day as a crossing.
"""

from __future__ import annotations

import bisect
import math

from riskstream.config import ScoringConfig
from riskstream.features import AMOUNT
from riskstream.state import DAY_S, EVENT_WINDOW_DAYS, RECENT_DAYS, CustomerState

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
