"""Unit tests for PartitionRunner and the replay driver."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from riskstream.config import load_config
from riskstream.drivers.replay import MemoryStore, read_lines, replay
from riskstream.engine import Engine
from riskstream.errors import InvalidEvent
from riskstream.events import TOPIC_ORDERS, TOPIC_PAYMENTS, route
from riskstream.model import LatePaymentModel
from riskstream.partitioning import partition_for
from riskstream.runner import Batch, PartitionRunner, Source, try_parse
from riskstream.scoring import to_iso

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "events.jsonl"


@pytest.fixture(scope="module")
def sample_lines():
    return list(read_lines(SAMPLE))


@pytest.fixture(scope="module")
def sample_replay(sample_lines):
    return replay(sample_lines, load_config())


def line_of(lines, event_id):
    """Return the Kafka offset and bytes of the sample line with ``event_id``.

    The offset is the one ``riskstream produce`` gives the line: its position
    among the earlier lines sent to the same topic partition.
    """
    marker = f'"event_id":"{event_id}"'.encode()
    numbers = [number for number, line in enumerate(lines) if marker in line]
    assert len(numbers) == 1

    def place(line):
        topic, key = route(line)
        return topic, 0 if key is None else partition_for(key.decode(), 4)

    target = place(lines[numbers[0]])
    offset = sum(1 for line in lines[: numbers[0]] if place(line) == target)
    return offset, lines[numbers[0]]


def test_replay_twice_identical(sample_lines):
    first = replay(sample_lines, load_config())
    second = replay(sample_lines, load_config())

    assert first.alerts != []
    assert orjson.dumps(first.alerts) == orjson.dumps(second.alerts)
    assert orjson.dumps(first.scores) == orjson.dumps(second.scores)


@pytest.mark.parametrize(
    ("event_id", "field", "rule", "keyed"),
    [
        pytest.param("bad-1", "occurred_at", "timezone_aware", True, id="naive-time"),
        pytest.param("bad-2", "type", "unknown_type", True, id="unknown-type"),
        pytest.param("bad-3", "currency", "customer_currency", True, id="usd-order"),
        pytest.param("bad-4", "amount", "too_many_decimals", True, id="three-decimals"),
        pytest.param("bad-5", "body", "invalid_json", False, id="truncated-json"),
    ],
)
def test_sample_dead_letter(sample_lines, sample_replay, event_id, field, rule, keyed):
    offset, line = line_of(sample_lines, event_id)

    letters = [
        letter
        for letter in sample_replay.dead_letters
        if base64.b64decode(letter["original_base64"]) == line
    ]

    assert len(letters) == 1
    letter = letters[0]
    assert letter["field"] == field
    assert letter["rule"] == rule
    assert letter["reason"].startswith(f"{field}:")
    assert letter["source"]["topic"] == TOPIC_ORDERS
    assert letter["source"]["offset"] == offset
    expected_partition = partition_for("ACME-001", 4) if keyed else 0
    assert letter["source"]["partition"] == expected_partition
    assert letter["source"]["key"] == ("ACME-001" if keyed else None)


def test_sample_dead_letters_counted(sample_replay):
    rules = sorted(letter["rule"] for letter in sample_replay.dead_letters)

    assert len(sample_replay.dead_letters) == 5
    assert sum(sample_replay.invalid.values()) == 5
    assert rules == sorted(sample_replay.invalid.elements())


def test_sample_duplicates_counted(sample_replay):
    assert sample_replay.duplicates == 1


def test_replay_counts_repeated_lines(sample_lines):
    lines = [sample_lines[0], sample_lines[0], sample_lines[0]]

    result = replay(lines, load_config())

    assert result.duplicates == 2


@pytest.mark.parametrize(
    "partitions",
    [pytest.param(1, id="one-partition"), pytest.param(4, id="four-partitions")],
)
def test_replay_processes_every_message(sample_lines, partitions):
    processed = []

    result = replay(
        sample_lines, load_config(), partitions=partitions, on_message=processed.append
    )

    parsed_invalid = sum(
        1 for line in sample_lines if isinstance(try_parse(line), InvalidEvent)
    )
    assert processed[-1] == len(sample_lines)
    assert len(processed) == len(sample_lines)
    assert sum(result.consumed.values()) + parsed_invalid == len(sample_lines)
    assert set(result.states) == {"ACME-001", "BOLT-002", "CRANE-003"}


def test_replay_counts_equal_across_partitions(sample_lines):
    single = replay(sample_lines, load_config(), partitions=1)
    split = replay(sample_lines, load_config(), partitions=4)

    assert single.consumed == split.consumed
    assert single.invalid == split.invalid
    assert single.duplicates == split.duplicates


@pytest.fixture
def runner(engine, model):
    """Return a partition-0 runner of an empty store that requires keys."""
    return PartitionRunner(0, engine, MemoryStore(), model)


def test_key_mismatch_rejected(runner, event_bytes):
    raw = event_bytes("order.placed")
    batch = Batch()

    runner.handle(raw, Source(TOPIC_ORDERS, 0, 7, key=b"c2"), batch)

    assert len(batch.dead_letters) == 1
    assert batch.dead_letters[0]["rule"] == "key_mismatch"
    assert batch.dead_letters[0]["field"] == "customer_id"
    assert batch.dead_letters[0]["event_id"] == "evt-1"
    assert batch.dead_letters[0]["source"]["key"] == "c2"
    assert runner.store == {}


def test_missing_key_rejected(runner, event_bytes):
    batch = Batch()

    runner.handle(event_bytes("order.placed"), Source(TOPIC_ORDERS, 0, 0), batch)

    assert [letter["rule"] for letter in batch.dead_letters] == ["key_mismatch"]


def test_key_optional_when_not_required(engine, model, event_bytes):
    runner = PartitionRunner(0, engine, MemoryStore(), model, require_key=False)
    batch = Batch()

    runner.handle(event_bytes("order.placed"), Source(TOPIC_ORDERS, 0, 0), batch)

    assert batch.dead_letters == []
    assert list(runner.store) == ["c1"]


def test_wrong_partition_rejected(engine, model, event_bytes):
    right = partition_for("c1", 4)
    wrong = (right + 1) % 4
    runner = PartitionRunner(wrong, engine, MemoryStore(), model, partitions=4)
    batch = Batch()

    runner.handle(
        event_bytes("order.placed"), Source(TOPIC_ORDERS, wrong, 0, b"c1"), batch
    )

    assert [letter["rule"] for letter in batch.dead_letters] == ["wrong_partition"]
    assert runner.store == {}


def test_right_partition_accepted(engine, model, event_bytes):
    right = partition_for("c1", 4)
    runner = PartitionRunner(right, engine, MemoryStore(), model, partitions=4)
    batch = Batch()

    runner.handle(
        event_bytes("order.placed"), Source(TOPIC_ORDERS, right, 0, b"c1"), batch
    )

    assert batch.dead_letters == []
    assert runner.store["c1"].partition == right


def test_invalid_message_dead_lettered(runner):
    raw = b'{"event_id": "e1", "type": "order.placed"'
    batch = Batch()

    runner.handle(raw, Source(TOPIC_PAYMENTS, 0, 3, b"c1"), batch)

    letter = batch.dead_letters[0]
    assert letter["rule"] == "invalid_json"
    assert letter["event_id"] is None
    assert letter["source"] == {
        "topic": TOPIC_PAYMENTS,
        "partition": 0,
        "offset": 3,
        "key": "c1",
        "key_bytes": 2,
    }
    assert base64.b64decode(letter["original_base64"]) == raw
    assert batch.invalid["invalid_json"] == 1


def test_long_key_cut_in_dead_letter(runner, event_bytes):
    key = b"k" * 500_000
    batch = Batch()

    runner.handle(event_bytes("order.placed"), Source(TOPIC_ORDERS, 0, 4, key), batch)

    letter = batch.dead_letters[0]
    assert letter["rule"] == "key_mismatch"
    assert letter["source"]["key"] == "k" * 1024
    assert letter["source"]["key_bytes"] == 500_000
    assert len(orjson.dumps(letter)) < 600_000


def test_other_customer_event_fires_crossing(runner, event_bytes, at):
    invoice = event_bytes("invoice.issued", at(0), due_at=at(30))
    other = event_bytes("order.placed", at(70), customer_id="c2")
    runner.handle(invoice, Source(TOPIC_PAYMENTS, 0, 0, b"c1"), Batch())
    batch = Batch()

    runner.handle(other, Source(TOPIC_ORDERS, 0, 1, b"c2"), batch)

    overdue = [a for a in batch.alerts if "overdue_30d" in a["rules_fired"]]
    assert [alert["customer_id"] for alert in overdue] == ["c1"]
    crossing = at(30) + timedelta(days=30)
    assert overdue[0]["raised_at"] == to_iso(int(crossing.timestamp()))


def test_huge_dead_letter_drops_original():
    raw = b'{"type": "order.placed", "pad": "' + b"x" * 700_000 + b'"}'
    batch = Batch()
    runner = PartitionRunner(
        0, Engine(load_config()), MemoryStore(), LatePaymentModel()
    )

    runner.handle(raw, Source("erp.orders", 0, 7, b"c1"), batch)

    letter = batch.dead_letters[0]
    assert letter["original_base64"] is None
    assert letter["original_dropped"] is True
    assert letter["original_bytes"] == len(raw)
    assert len(orjson.dumps(letter)) < 100_000


def test_event_on_other_topic_rejected(runner, event_bytes):
    batch = Batch()

    runner.handle(
        event_bytes("order.placed"), Source(TOPIC_PAYMENTS, 0, 0, b"c1"), batch
    )

    letter = batch.dead_letters[0]
    assert letter["rule"] == "wrong_topic"
    assert letter["field"] == "type"
    assert f"belong on topic {TOPIC_ORDERS}" in letter["reason"]
    assert batch.consumed[(TOPIC_PAYMENTS, "order.placed")] == 1
    assert runner.store.get("c1") is None


def test_future_event_rejected(engine, model, event_bytes, at):
    now = at(10).timestamp()
    runner = PartitionRunner(
        0, engine, MemoryStore(), model, max_future_s=86400, now=lambda: now
    )
    batch = Batch()

    runner.handle(
        event_bytes("order.placed", at(12)), Source(TOPIC_ORDERS, 0, 0, b"c1"), batch
    )
    runner.handle(
        event_bytes("order.placed", at(10, hours=23), order_id="o2"),
        Source(TOPIC_ORDERS, 0, 1, b"c1"),
        batch,
    )

    assert [letter["rule"] for letter in batch.dead_letters] == ["in_the_future"]
    assert "more than 24 hours ahead" in batch.dead_letters[0]["reason"]
    assert list(runner.store.get("c1").open_orders) == ["o2"]
    assert runner.watermark_s == int(at(10, hours=23).timestamp())
