"""Replay: the worker's processing in-process, on a JSONL file, no broker.

Events are routed to the topic and partition ``riskstream produce`` would
send them to, and each partition keeps its own runner and model, so a replay
makes the same decisions as a worker reading the same events from topics with
that many partitions (with ``clock = event``).
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from riskstream.config import ScoringConfig
from riskstream.engine import Engine
from riskstream.errors import InvalidEvent
from riskstream.events import TOPIC_FOR_TYPE, route
from riskstream.model import LatePaymentModel
from riskstream.ordering import INPUT_TOPICS_IN_ORDER, EventTimeMerger
from riskstream.partitioning import partition_for
from riskstream.runner import Batch, PartitionRunner, Source, sort_time, try_parse
from riskstream.state import CustomerState


class MemoryStore(dict[str, CustomerState]):
    """A dict of customer states, standing in for a Faust table."""

    def put(self, state: CustomerState) -> None:
        """Store ``state`` under its customer id."""
        self[state.customer_id] = state


@dataclass
class ReplayResult:
    """Everything a replay produced."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    rescored: dict[str, CustomerState] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Latest assessment of every customer, as last published to risk.scores."""
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    consumed: Counter[tuple[str, str]] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    messages: int = 0
    states: dict[str, CustomerState] = field(default_factory=dict)
    models: dict[int, LatePaymentModel] = field(default_factory=dict)

    def absorb(self, batch: Batch) -> None:
        """Add one batch of outputs."""
        self.alerts.extend(batch.alerts)
        self.rescored.update(batch.rescored)
        self.dead_letters.extend(batch.dead_letters)
        self.consumed.update(batch.consumed)
        self.invalid.update(batch.invalid)
        self.duplicates += batch.duplicates

    def summary(self) -> dict[str, Any]:
        """Counts for people: messages, alert updates by status and kind, levels."""
        return {
            "messages": self.messages,
            "events_by_type": dict(
                sorted(Counter(kind for (_, kind) in self.consumed.elements()).items())
            ),
            "invalid_by_rule": dict(sorted(self.invalid.items())),
            "duplicates": self.duplicates,
            "customers": len(self.states),
            "alert_updates": len(self.alerts),
            "alerts_opened": sum(
                1 for alert in self.alerts if alert["status"] == "opened"
            ),
            "alert_updates_by_status": _count(self.alerts, "status"),
            "alert_updates_by_signal_kind": _count(self.alerts, "signal_kind"),
            "alert_updates_by_severity": _count(self.alerts, "severity"),
            "alert_updates_by_rule": dict(
                sorted(
                    Counter(
                        rule for alert in self.alerts for rule in alert["rules_fired"]
                    ).items()
                )
            ),
            "customers_by_level": dict(
                sorted(Counter(s.level for s in self.states.values()).items())
            ),
            "models": {
                str(partition): model.describe()
                for partition, model in sorted(self.models.items())
            },
        }


def _count(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    return dict(sorted(Counter(str(row[key]) for row in rows).items()))


FREEZE_EVERY = 20_000
"""Messages loaded between two calls of ``gc.freeze`` while loading."""


def read_lines(path: Path) -> Iterator[bytes]:
    """Yield the non-blank lines of a JSONL file as bytes."""
    with path.open("rb") as handle:
        for line in handle:
            line = line.strip()
            if line:
                yield line


def replay(
    lines: Iterable[bytes],
    config: ScoringConfig,
    *,
    partitions: int = 4,
    on_message: Callable[[int], None] | None = None,
    until_s: int | None = None,
    max_future_s: float | None = None,
) -> ReplayResult:
    """Process ``lines`` as a worker with ``partitions`` partitions would.

    Each line goes to the topic and partition ``riskstream produce`` would send
    it to; each partition's topics are then merged by event time exactly as
    the worker merges them once all input is in Kafka. ``on_message`` is
    called with the running count of processed messages, for progress bars.
    With ``until_s``, every partition's clock then moves on to that time, so
    the crossings up to it fire as if the worker's wall clock had reached it.
    ``max_future_s`` rejects events dated that far ahead of the wall clock, as
    the worker does.
    """
    engine = Engine(config)
    store = MemoryStore()
    result = ReplayResult(states=store)
    mergers: dict[int, EventTimeMerger[tuple[bytes, Source, Any]]] = {}
    offsets: dict[tuple[str, int], int] = {}
    partition_of: dict[bytes, int] = {}
    for number, raw in enumerate(lines):
        parsed = try_parse(raw)
        if isinstance(parsed, InvalidEvent):
            topic, key = route(raw)
        else:
            topic, key = TOPIC_FOR_TYPE[parsed.type], parsed.customer_id.encode()
        if key is None:
            partition = 0
        else:
            partition = partition_of.get(key, -1)
            if partition < 0:
                partition = partition_of[key] = partition_for(key.decode(), partitions)
        merger = mergers.get(partition)
        if merger is None:
            merger = mergers[partition] = EventTimeMerger(INPUT_TOPICS_IN_ORDER)
        # The offset Kafka gives the message when ``riskstream produce`` sends
        # the file: per topic partition, in file order.
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        source = Source(topic, partition, offset, key)
        merger.push(topic, (raw, source, parsed), sort_time(parsed))
        result.messages = number + 1
        if number % FREEZE_EVERY == 0:
            # The queued messages live until the end; moving them out of the
            # collector's reach saves it from walking them again and again.
            gc.freeze()

    # Frozen objects are still freed when nothing refers to them any more;
    # only reference cycles among them would outlive the replay.
    gc.freeze()
    _run_partitions(result, engine, store, mergers, on_message, until_s, max_future_s)
    result.scores = {
        customer: engine.assessment(state)
        for customer, state in sorted(result.rescored.items())
    }
    return result


def _run_partitions(
    result: ReplayResult,
    engine: Engine,
    store: MemoryStore,
    mergers: dict[int, EventTimeMerger[tuple[bytes, Source, Any]]],
    on_message: Callable[[int], None] | None,
    until_s: int | None,
    max_future_s: float | None,
) -> None:
    done = 0
    for partition in sorted(mergers):
        model = result.models[partition] = LatePaymentModel()
        runner = PartitionRunner(
            partition, engine, store, model, max_future_s=max_future_s
        )
        batch = Batch()
        for raw, source, parsed in mergers[partition].drain():
            runner.handle(raw, source, batch, parsed)
            done += 1
            if on_message is not None:
                on_message(done)
        if until_s is not None:
            runner.advance_to(until_s, batch)
        result.absorb(batch)


def write_outputs(result: ReplayResult, out_dir: Path) -> dict[str, Path]:
    """Write alerts, scores and dead letters as JSONL plus ``summary.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "alerts": out_dir / "alerts.jsonl",
        "scores": out_dir / "scores.jsonl",
        "dead_letters": out_dir / "deadletter.jsonl",
        "summary": out_dir / "summary.json",
    }
    _write_jsonl(paths["alerts"], result.alerts)
    _write_jsonl(paths["scores"], [result.scores[k] for k in sorted(result.scores)])
    _write_jsonl(paths["dead_letters"], result.dead_letters)
    paths["summary"].write_bytes(
        orjson.dumps(result.summary(), option=orjson.OPT_INDENT_2) + b"\n"
    )
    return paths


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("wb") as handle:
        for row in rows:
            handle.write(orjson.dumps(row) + b"\n")
