"""Arithmetic of the risk score that the engine and its explanations share."""

from __future__ import annotations

import math
from collections.abc import Sequence


def apportion(points: Sequence[float], total: float) -> list[float]:
    """Split ``total`` over ``points`` in proportion, in tenths that add up exactly.

    The score is capped at 100 and rounded to a tenth, so the points of its
    reasons can add up to more than the score. Each reason's share is its
    points scaled to the score, rounded by the largest remainder method, so
    the shares add up to ``total`` to the tenth. Equal remainders go to the
    earlier reason.

    >>> apportion([25, 30, 10], 65.0)
    [25.0, 30.0, 10.0]
    >>> apportion([60, 60, 30], 100.0)
    [40.0, 40.0, 20.0]
    >>> apportion([1, 1, 1], 1.0)
    [0.4, 0.3, 0.3]
    >>> apportion([], 0.0)
    []
    """
    available = sum(points)
    if available <= 0:
        return [0.0] * len(points)
    tenths = round(total * 10)
    exact = [value * tenths / available for value in points]
    shares = [math.floor(value) for value in exact]
    left = tenths - sum(shares)
    by_remainder = sorted(
        range(len(points)), key=lambda index: shares[index] - exact[index]
    )
    for index in by_remainder[:left]:
        shares[index] += 1
    return [share / 10 for share in shares]
