"""Event-time merge of the input topics of one partition.

A customer's orders, payments, master data and alert actions arrive on four
topics, and a consumer reads their partitions at independent speeds, so a payment can
reach the worker before the invoice it pays. :class:`EventTimeMerger` keeps
one FIFO queue per topic and releases the head with the earliest
``occurred_at`` once every other topic either has a queued message or has no
more to read (it is caught up). That is a k-way merge with a watermark. With
all input already in Kafka, the order equals what replay computes from the
file. A message that arrives after the merge moved past its time is applied
as a late event.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from riskstream.events import (
    TOPIC_ALERT_ACTIONS,
    TOPIC_CUSTOMERS,
    TOPIC_ORDERS,
    TOPIC_PAYMENTS,
)

T = TypeVar("T")

INPUT_TOPICS_IN_ORDER = (
    TOPIC_CUSTOMERS,
    TOPIC_ORDERS,
    TOPIC_PAYMENTS,
    TOPIC_ALERT_ACTIONS,
)
"""Tie-break between topics at the same instant: master data, orders, payments,
then operators' alert actions."""
UNTIMED = float("-inf")
"""Sort time of a message without a valid ``occurred_at``; it goes out at once."""


@dataclass(slots=True)
class Pending(Generic[T]):
    """One queued message with its sort time."""

    time_s: float
    item: T


class EventTimeMerger(Generic[T]):
    """Merge per-topic FIFO queues by event time.

    Args:
        topics: the input topic names, in tie-break order.
    """

    def __init__(self, topics: Sequence[str]) -> None:
        self.topics = list(topics)
        self._queues: dict[str, deque[Pending[T]]] = {t: deque() for t in self.topics}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def push(self, topic: str, item: T, time_s: float | None) -> None:
        """Queue ``item`` read from ``topic``; None time means untimed."""
        queue = self._queues.get(topic)
        if queue is None:
            queue = self._queues[topic] = deque()
            self.topics.append(topic)
        queue.append(Pending(UNTIMED if time_s is None else time_s, item))

    def pop_ready(self, caught_up: Callable[[str], bool]) -> Iterator[T]:
        """Yield messages in merge order while the watermark allows.

        ``caught_up(topic)`` returns whether the consumer has read everything
        currently in that topic's partition.
        """
        while True:
            best: str | None = None
            for topic in self.topics:
                queue = self._queues[topic]
                if not queue:
                    if not caught_up(topic):
                        return
                    continue
                if best is None or queue[0].time_s < self._queues[best][0].time_s:
                    best = topic
            if best is None:
                return
            yield self._queues[best].popleft().item

    def drain(self) -> Iterator[T]:
        """Yield every queued message in merge order, as if all topics were read."""
        return self.pop_ready(lambda _topic: True)

    def oldest(self) -> T | None:
        """Return the head that would go next if the watermark allowed, or None."""
        heads = [queue[0] for queue in self._queues.values() if queue]
        return min(heads, key=lambda pending: pending.time_s).item if heads else None

    def clear(self) -> list[T]:
        """Remove and return every queued message."""
        items = [pending.item for queue in self._queues.values() for pending in queue]
        for queue in self._queues.values():
            queue.clear()
        return items
