"""Per-partition processing shared by the Faust worker and replay.

A :class:`PartitionRunner` owns one input partition's customers. It decodes
raw messages, sends bad ones to dead letters and drops duplicates. As event
time moves on, it fires the time-driven crossings of every customer in the
partition, then applies each event through the
:class:`~riskstream.engine.Engine`.
Both drivers call it with the same messages in the same per-partition order,
which is why they publish the same alerts.
"""

from __future__ import annotations

import base64
import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from riskstream.engine import Engine, Outcome, Rejection
from riskstream.errors import InvalidEvent
from riskstream.events import TOPIC_FOR_TYPE, Event, parse_event
from riskstream.model import LatePaymentModel
from riskstream.ordering import INPUT_TOPICS_IN_ORDER
from riskstream.partitioning import partition_for
from riskstream.state import CustomerState

MAX_ORIGINAL_BYTES = 512 * 1024
PARTITION_CACHE = 100_000
"""Customer ids whose partition a runner remembers before starting afresh."""
MAX_REASON_CHARS = 1000
MAX_KEY_CHARS = 1024
"""Maximum length of the message key a dead letter repeats; ``key_bytes``
keeps the full size."""
MAX_EVENT_ID_CHARS = 128
"""Longest ``event_id`` the contract allows, and so the longest one a dead
letter repeats."""


class StateStore(Protocol):
    """Storage of customer states: a Faust table in the worker, a dict in replay."""

    def get(self, customer_id: str) -> CustomerState | None:
        """Return the state of ``customer_id``, or None for a new customer."""

    def put(self, state: CustomerState) -> None:
        """Store ``state`` under its customer id."""


@dataclass(slots=True, frozen=True)
class Source:
    """Origin of a raw message: topic, partition, offset and key."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None


@dataclass(slots=True)
class Batch:
    """Outputs of a run of messages, gathered so a driver writes them once."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    rescored: dict[str, CustomerState] = field(default_factory=dict)
    """Customers whose assessment is to be published."""
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    dirty: dict[str, CustomerState] = field(default_factory=dict)
    consumed: Counter[tuple[str, str]] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    redelivered: int = 0
    """Messages skipped because the customer's state already applied them."""

    def take(self, state: CustomerState, outcome: Outcome) -> None:
        """Record what applying one event or crossing to ``state`` produced."""
        self.alerts.extend(outcome.alerts)
        if outcome.rescored:
            self.rescored[state.customer_id] = state
        self.dirty[state.customer_id] = state


def dead_letter(
    raw: bytes | None,
    source: Source,
    error: InvalidEvent | Rejection,
    event_id: str | None,
) -> dict[str, Any]:
    """Build the dead-letter record for a message that cannot be used.

    A message over :data:`MAX_ORIGINAL_BYTES` keeps its size but not its bytes,
    because its base64 copy would exceed Kafka's default 1 MiB message limit.
    Its source offset still points at it. A key is cut to
    :data:`MAX_KEY_CHARS` for the same reason: the record repeats it as its
    own Kafka key.
    """
    message = error.message[:MAX_REASON_CHARS]
    original = b"" if raw is None else raw
    kept = len(original) <= MAX_ORIGINAL_BYTES
    key = None if source.key is None else source.key.decode("utf-8", "replace")
    return {
        "reason": message,
        "field": error.field,
        "rule": error.rule,
        "event_id": event_id,
        "source": {
            "topic": source.topic,
            "partition": source.partition,
            "offset": source.offset,
            "key": None if key is None else key[:MAX_KEY_CHARS],
            "key_bytes": None if source.key is None else len(source.key),
        },
        "original_base64": base64.b64encode(original).decode("ascii") if kept else None,
        "original_bytes": len(original),
        "original_dropped": not kept,
    }


def claimed_event_id(raw: bytes | None) -> str | None:
    """Return the ``event_id`` an invalid message gives, if it is a short string.

    The dead letter then names the event the producer meant, so an operator
    can find it in the ERP. None when the message is not a JSON object or its
    ``event_id`` is missing or invalid.
    """
    if raw is None or len(raw) > MAX_ORIGINAL_BYTES:
        return None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    event_id = document.get("event_id")
    if isinstance(event_id, str) and 0 < len(event_id) <= MAX_EVENT_ID_CHARS:
        return event_id
    return None


def try_parse(raw: bytes | None) -> Event | InvalidEvent:
    """Parse one message, returning the error instead of raising it."""
    try:
        return parse_event(raw)
    except InvalidEvent as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - bad input must never stop a worker
        return InvalidEvent("body", "unparsable", f"body: cannot be read ({exc!r})")


def sort_time(parsed: Event | InvalidEvent) -> float | None:
    """Return the event time used by the merge; None for an invalid message."""
    if isinstance(parsed, InvalidEvent):
        return None
    return parsed.occurred_at.timestamp()


class PartitionRunner:
    """Processes the messages of one input partition in offset order.

    Args:
        partition: the input partition number.
        engine: the scoring core.
        store: customer states of this partition.
        model: the partition's late-payment model.
        partitions: partition count of the input topics. When it is given, a
            message outside the partition that Kafka's default partitioner
            picks for its customer is rejected, because that customer's
            state would be restored to the wrong worker.
        require_key: reject messages whose key is not the ``customer_id``.
        topics: names of the customers, orders, payments and alert-actions
            topics, in that order; a message at or below the offset a
            customer's state last applied from its topic is a redelivery and
            is skipped, and an event on another type's topic is rejected.
        max_future_s: reject an event dated more than this many seconds
            ahead of ``now()``; None accepts any time the contract allows.
        now: the wall clock, in epoch seconds.
    """

    def __init__(
        self,
        partition: int,
        engine: Engine,
        store: StateStore,
        model: LatePaymentModel,
        *,
        partitions: int | None = None,
        require_key: bool = True,
        topics: Sequence[str] = INPUT_TOPICS_IN_ORDER,
        max_future_s: float | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.partition = partition
        self.engine = engine
        self.store = store
        self.model = model
        self.partitions = partitions
        self.require_key = require_key
        self._topic_index = {name: index for index, name in enumerate(topics)}
        self._topic_of_type = {
            kind: topics[INPUT_TOPICS_IN_ORDER.index(base)]
            for kind, base in TOPIC_FOR_TYPE.items()
        }
        self.max_future_s = max_future_s
        self.now = now
        self.watermark_s = 0
        self._heap: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}
        self._partition_of: dict[str, int] = {}
        """Kafka's partition of each customer id seen, to check keys cheaply."""

    def rebuild(self, states: Iterable[CustomerState]) -> int:
        """Index the crossing times of restored states; return how many are due."""
        self._heap.clear()
        self._due.clear()
        for state in states:
            self.watermark_s = max(self.watermark_s, state.clock_s)
            self._schedule(state)
        return len(self._due)

    def handle(
        self,
        raw: bytes | None,
        source: Source,
        batch: Batch,
        parsed: Event | InvalidEvent | None = None,
    ) -> None:
        """Check and apply one message, adding its outputs to ``batch``.

        ``parsed`` is the result of :func:`try_parse` when the caller already
        decoded the message.
        """
        if parsed is None:
            parsed = try_parse(raw)
        if isinstance(parsed, InvalidEvent):
            batch.invalid[parsed.rule] += 1
            batch.dead_letters.append(
                dead_letter(raw, source, parsed, claimed_event_id(raw))
            )
            return
        self.handle_event(parsed, raw, source, batch)

    def handle_event(
        self, event: Event, raw: bytes | None, source: Source, batch: Batch
    ) -> None:
        """Check and apply one decoded message."""
        batch.consumed[(source.topic, event.type)] += 1
        at_s = int(event.occurred_at.timestamp())
        rejection = self._check_key(event, source)
        if rejection is None:
            rejection = self._check_place(event, source, at_s)
        if rejection is not None:
            batch.invalid[rejection.rule] += 1
            batch.dead_letters.append(
                dead_letter(raw, source, rejection, event.event_id)
            )
            return

        self.advance_to(at_s, batch)
        state = self.store.get(event.customer_id)
        if state is None:
            state = CustomerState(event.customer_id, partition=self.partition)
        index = self._topic_index.get(source.topic)
        if index is not None:
            if source.offset <= state.offsets[index]:
                batch.redelivered += 1
                return
            state.offsets[index] = source.offset
        outcome = self.engine.apply(state, event, self.model, at_s)
        if outcome.duplicate:
            batch.duplicates += 1
        if outcome.rejection is not None:
            batch.invalid[outcome.rejection.rule] += 1
            batch.dead_letters.append(
                dead_letter(raw, source, outcome.rejection, event.event_id)
            )
        batch.take(state, outcome)
        self.store.put(state)
        self._schedule(state)

    def advance_to(self, now_s: int, batch: Batch) -> None:
        """Fire the crossings of every customer of the partition up to ``now_s``."""
        self.watermark_s = max(self.watermark_s, now_s)
        while self._heap and self._heap[0][0] <= now_s:
            due_s, customer_id = heapq.heappop(self._heap)
            if self._due.get(customer_id) != due_s:
                continue
            del self._due[customer_id]
            state = self.store.get(customer_id)
            if state is None:
                continue
            outcome = self.engine.advance(state, now_s, self.model, due_s)
            batch.take(state, outcome)
            self.store.put(state)
            self._schedule(state, outcome.next_due_s)

    def _schedule(self, state: CustomerState, due_s: int | None = None) -> None:
        """Index the state's next crossing; ``due_s`` when it is already known."""
        if due_s is None:
            due_s = self.engine.next_due(state)
        if due_s is None:
            self._due.pop(state.customer_id, None)
            return
        if self._due.get(state.customer_id) != due_s:
            self._due[state.customer_id] = due_s
            heapq.heappush(self._heap, (due_s, state.customer_id))

    def _check_place(self, event: Event, source: Source, at_s: int) -> Rejection | None:
        """Reject an event on another type's topic, or one dated in the future."""
        expected = self._topic_of_type[event.type]
        if source.topic in self._topic_index and source.topic != expected:
            return Rejection(
                "type",
                "wrong_topic",
                f"type: {event.type} events belong on topic {expected}, not "
                f"{source.topic}; publish them there, so they are merged in "
                "order with the customer's other events",
            )
        if self.max_future_s is not None and at_s > self.now() + self.max_future_s:
            return Rejection(
                "occurred_at",
                "in_the_future",
                f"occurred_at: {event.occurred_at.isoformat()} is more than "
                f"{self.max_future_s / 3600:g} hours ahead of this worker's clock; "
                "one such event would move its partition's event clock forward "
                "and fire every customer's overdue checks, so fix the ERP's "
                "clock or the time zone of the event",
            )
        return None

    def _check_key(self, event: Event, source: Source) -> Rejection | None:
        if self.require_key and source.key != event.customer_id.encode():
            shown = (
                None if source.key is None else source.key.decode("utf-8", "replace")
            )
            return Rejection(
                "customer_id",
                "key_mismatch",
                f"customer_id: the message key {shown!r} must equal the "
                f"customer_id {event.customer_id!r}; key every message by customer",
            )
        if self.partitions is not None:
            expected = self._partition_of.get(event.customer_id)
            if expected is None:
                if len(self._partition_of) >= PARTITION_CACHE:
                    self._partition_of.clear()
                expected = partition_for(event.customer_id, self.partitions)
                self._partition_of[event.customer_id] = expected
            if expected != source.partition:
                return Rejection(
                    "customer_id",
                    "wrong_partition",
                    f"customer_id: {event.customer_id!r} arrived on partition "
                    f"{source.partition} but Kafka's default (murmur2) "
                    f"partitioner puts it on {expected}; produce with that "
                    "partitioner so each customer's events share a partition",
                )
        return None
