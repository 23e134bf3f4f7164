"""Counts of the customer states a worker owns, kept up to date for the gauges.

A worker cannot afford to decode every customer state of its partitions on
each metrics refresh, and its state cache holds only the recently used ones.
:class:`StateTally` therefore keeps, per partition, each customer's risk level
and the signal kinds and statuses of its open alerts. The worker fills a
partition from the states it restores when the partition starts. It updates
the partition from the states it writes at the end of each batch, and drops
it when the partition is revoked. The counts therefore follow the partitions
the worker owns.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from riskstream.state import CustomerState

OPEN_STATUSES = ("open", "acknowledged", "snoozed")
"""Statuses counted as open. A ``closed`` alert, which an operator resolved
while its rules still fire, stays in the state but is no longer open."""


@dataclass(slots=True)
class PartitionTally:
    """Levels and open alerts of one partition's customers."""

    levels: dict[str, str] = field(default_factory=dict)
    """Risk level of every customer of the partition."""
    alerts: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    """``(signal_kind, status)`` of each open alert, for customers that have one."""
    level_counts: Counter[str] = field(default_factory=Counter)
    alert_counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    def record(self, state: CustomerState) -> None:
        """Replace what the tally holds for the state's customer."""
        customer_id = state.customer_id
        previous = self.levels.get(customer_id)
        if previous is not None:
            self.level_counts[previous] -= 1
        level = sys.intern(state.level)
        self.levels[customer_id] = level
        self.level_counts[level] += 1

        for key in self.alerts.pop(customer_id, ()):
            self.alert_counts[key] -= 1
        open_alerts = tuple(
            sorted(
                (sys.intern(kind), sys.intern(alert.status))
                for kind, alert in state.open_alerts.items()
                if alert.status in OPEN_STATUSES
            )
        )
        for key in open_alerts:
            self.alert_counts[key] += 1
        if open_alerts:
            self.alerts[customer_id] = open_alerts


class StateTally:
    """Per-partition counts of customers by level and of open alerts.

    A partition is either absent or complete: :meth:`record` ignores states of
    partitions that :meth:`rebuild` has not filled, so a partial count is
    never published.
    """

    def __init__(self) -> None:
        self.partitions: dict[int, PartitionTally] = {}

    def rebuild(
        self, partitions: Iterable[int], states: Iterable[CustomerState]
    ) -> None:
        """Count ``partitions`` afresh from ``states``, which must hold all of theirs.

        States of other partitions are skipped, so ``states`` may be a whole
        table read lazily.
        """
        fresh = {partition: PartitionTally() for partition in partitions}
        for state in states:
            tally = fresh.get(state.partition)
            if tally is not None:
                tally.record(state)
        self.partitions.update(fresh)

    def record(self, states: Iterable[CustomerState]) -> None:
        """Update the counts from changed states of counted partitions."""
        for state in states:
            tally = self.partitions.get(state.partition)
            if tally is not None:
                tally.record(state)

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget partitions the worker no longer owns."""
        for partition in partitions:
            self.partitions.pop(partition, None)

    def level_counts(self) -> Counter[str]:
        """Return the number of customers at each risk level."""
        total: Counter[str] = Counter()
        for tally in self.partitions.values():
            total.update(tally.level_counts)
        return +total

    def open_alert_counts(self) -> Counter[tuple[str, str]]:
        """Return the number of open alerts per ``(signal_kind, status)``."""
        total: Counter[tuple[str, str]] = Counter()
        for tally in self.partitions.values():
            total.update(tally.alert_counts)
        return +total

    def rows(self) -> dict[int, int]:
        """Return the number of customer states, one table row each, per partition."""
        return {
            partition: len(tally.levels)
            for partition, tally in sorted(self.partitions.items())
        }
