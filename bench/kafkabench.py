"""Kafka pieces of the worker benchmark: broker, input, outputs, offsets, worker.

Everything talks to one broker on 127.0.0.1, and every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    NotCoordinatorForGroupError,
)
from aiokafka.structs import TopicPartition
from benchlib import cpu_seconds, free_port, log, update_customer

from riskstream.config import load_config
from riskstream.drivers.replay import MemoryStore
from riskstream.engine import Engine
from riskstream.events import route
from riskstream.kafka_io import INPUT_TOPICS, Rows, ensure_topics, send_batches
from riskstream.model import LatePaymentModel
from riskstream.ordering import INPUT_TOPICS_IN_ORDER, EventTimeMerger
from riskstream.runner import Batch, PartitionRunner, Source, sort_time, try_parse
from riskstream.settings import Settings

LOCAL_HOSTS = ("127.0.0.1", "localhost")
COORDINATOR_NOT_READY = (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    NotCoordinatorForGroupError,
)
OUTPUT_TOPICS = ("risk.scores", "risk.alerts", "riskstream.deadletter")
POLL_INTERVAL_S = 0.5
"""Seconds between committed-offset polls, which bounds how late a run's end is seen."""
STOP_TIMEOUT_S = 30.0
"""Seconds a worker gets between SIGTERM and SIGKILL."""


def check_local(bootstrap: str) -> str:
    """Reject a bootstrap list that names any host other than 127.0.0.1."""
    for server in bootstrap.split(","):
        host = server.rsplit(":", 1)[0]
        if host not in LOCAL_HOSTS:
            raise SystemExit(
                f"--bootstrap: {server!r} is not on 127.0.0.1; the benchmark "
                "only talks to a broker on this machine"
            )
    return bootstrap


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[tuple[str, int | None]]:
    """Yield a bootstrap address and the broker's pid (None when external).

    Without ``bootstrap`` this starts a :class:`riskstream.devbroker.KafkaBroker`
    and stops it on exit.
    """
    if bootstrap is not None:
        yield check_local(bootstrap), None
        return
    from riskstream.devbroker import KafkaBroker

    log("starting a Kafka broker on 127.0.0.1")
    with KafkaBroker() as running:
        log(f"broker {running.bootstrap}, pid {running.pid}")
        yield running.bootstrap, running.pid


def settings_for(bootstrap: str, prefix: str, partitions: int) -> Settings:
    return Settings(
        broker=f"kafka://{bootstrap}", topic_prefix=prefix, partitions=partitions
    )


def input_partitions(prefix: str, partitions: int) -> list[TopicPartition]:
    return [
        TopicPartition(f"{prefix}{topic}", number)
        for topic in INPUT_TOPICS
        for number in range(partitions)
    ]


async def create_topics(settings: Settings, extra: Sequence[str] = ()) -> None:
    """Create riskstream's topics plus ``extra`` topics, then wait for leaders."""
    await ensure_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(settings))
    await admin.start()
    try:
        if extra:
            await admin.create_topics(
                [
                    NewTopic(name, settings.partitions, settings.replication_factor)
                    for name in extra
                ]
            )
        names = [settings.topic(t) for t in INPUT_TOPICS] + list(extra)
        async with asyncio.timeout(60):
            while True:
                described = await admin.describe_topics(names)
                leaders = [
                    part["leader"]
                    for topic in described
                    for part in topic.get("partitions", [])
                ]
                expected = len(names) * settings.partitions
                if len(leaders) == expected and all(x >= 0 for x in leaders):
                    break
                await asyncio.sleep(0.2)
        # A new partition can still reject produce requests with
        # NotLeaderForPartition for a moment after it has a leader.
        await asyncio.sleep(1.0)
    finally:
        await admin.close()


def bootstrap_of(settings: Settings) -> str:
    return settings.broker.removeprefix("kafka://")


async def produce(settings: Settings, lines: list[bytes]) -> dict[str, Any]:
    """Publish ``lines`` as ``riskstream produce`` would; return counts and rate.

    Uses the producer settings of :func:`riskstream.kafka_io.produce_lines`
    (acks=all, idempotent, linger 5 ms), with progress lines.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_of(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
    await producer.start()
    started = time.perf_counter()
    step = max(1, len(lines) // 5)
    try:
        for number, raw in enumerate(lines, 1):
            topic, key = route(raw)
            await producer.send(settings.topic(topic), value=raw, key=key)
            if number % step == 0:
                log(f"  produced {number}/{len(lines)}")
        await producer.flush()
    finally:
        await producer.stop()
    seconds = time.perf_counter() - started
    return {"events": len(lines), "seconds": seconds, "rate": len(lines) / seconds}


async def end_offsets(
    bootstrap: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


class OffsetWatch:
    """Polls a consumer group's committed offsets against the input end offsets."""

    def __init__(self, bootstrap: str, group: str, ends: dict[TopicPartition, int]):
        self.group = group
        self.ends = ends
        self.total = sum(ends.values())
        self.not_ready = 0
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)

    async def __aenter__(self) -> OffsetWatch:
        await self.admin.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.admin.close()

    async def committed(self) -> int:
        """Return how many input messages the group has committed.

        Returns 0 while the broker has no coordinator for the group yet, as
        on a new broker before the first group commits.
        """
        try:
            offsets = await self.admin.list_consumer_group_offsets(
                self.group, partitions=list(self.ends)
            )
        except COORDINATOR_NOT_READY as exc:
            self.not_ready += 1
            if self.not_ready in (1, 10, 100):
                log(f"  committed offsets of {self.group} not available yet: {exc}")
            return 0
        done = 0
        for tp, end in self.ends.items():
            meta = offsets.get(tp)
            if meta is not None and meta.offset > 0:
                done += min(meta.offset, end)
        return done


@dataclass
class Output:
    """One message of an output topic, as the collector saw it."""

    topic: str
    key: bytes | None
    value: bytes
    kafka_ms: int
    """The record's Kafka timestamp (CreateTime, set by the worker's producer)."""
    received_s: float


@dataclass
class OutputCollector:
    """Reads the worker's output topics from the start, in a background task."""

    bootstrap: str
    prefix: str
    partitions: int
    outputs: list[Output] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> OutputCollector:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self.consumer.start()
        self.consumer.assign(
            [
                TopicPartition(f"{self.prefix}{topic}", number)
                for topic in OUTPUT_TOPICS
                for number in range(self.partitions)
            ]
        )
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout=30)
        await self.consumer.stop()

    async def _run(self) -> None:
        strip = len(self.prefix)
        while not self._stop.is_set():
            batches = await self.consumer.getmany(timeout_ms=200)
            now = time.time()
            for tp, records in batches.items():
                topic = tp.topic[strip:]
                self.outputs.extend(
                    Output(topic, r.key, r.value, r.timestamp, now) for r in records
                )

    def count(self, topic: str) -> int:
        return sum(1 for output in self.outputs if output.topic == topic)

    def first_ms(self) -> int | None:
        return min((o.kafka_ms for o in self.outputs), default=None)

    def last_ms(self) -> int | None:
        return max((o.kafka_ms for o in self.outputs), default=None)


RAW_COMMIT_INTERVAL_S = 2.8
"""Commit period of the raw loop, the default ``broker_commit_interval`` of Faust."""


async def raw_loop(
    bootstrap: str, prefix: str, total: int, timeout_s: float
) -> dict[str, Any]:
    """Consume the input topics, update a dict per customer, produce one output each.

    It approximates the least a Python worker on aiokafka pays per message: one
    aiokafka consumer, ``orjson.loads``, a dict update, ``orjson.dumps`` and
    one ``send`` per input, with Faust's producer defaults (acks=all, no
    linger) and Faust's commit period. The clock runs from the first record
    received to the final flush and commit.
    """
    topics = [f"{prefix}{topic}" for topic in INPUT_TOPICS]
    out_topic = f"{prefix}raw.out"
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}raw",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    await consumer.start()
    states: dict[str, dict[str, Any]] = {}
    seen = 0
    first: float | None = None
    cpu_before = time.process_time()
    next_commit = time.monotonic() + RAW_COMMIT_INTERVAL_S
    next_report = time.monotonic() + 5
    try:
        async with asyncio.timeout(timeout_s):
            while seen < total:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    if first is None and records:
                        first = time.perf_counter()
                    for record in records:
                        value = update_customer(states, record.value)
                        await producer.send(out_topic, value, key=record.key)
                        seen += 1
                now = time.monotonic()
                if now >= next_commit:
                    await consumer.commit()
                    next_commit = now + RAW_COMMIT_INTERVAL_S
                if now >= next_report:
                    log(f"  raw loop {seen}/{total}")
                    next_report = now + 5
            await producer.flush()
            await consumer.commit()
    except TimeoutError:
        raise RunFailed(
            f"raw loop consumed {seen}/{total} events in {timeout_s:.0f} s "
            "(--run-timeout)"
        ) from None
    finally:
        finished = time.perf_counter()
        await consumer.stop()
        await producer.stop()
    return {
        **_loop_rate(seen, first, finished, cpu_before),
        "customers": len(states),
    }


async def core_loop(
    bootstrap: str,
    prefix: str,
    total: int,
    timeout_s: float,
    batch_size: int,
) -> dict[str, Any]:
    """Run the worker's work on a plain aiokafka loop, without Faust.

    It takes the same steps as the worker, on the same input, and writes to
    topics of its own (``core.*``), so the worker's outputs stay apart. Each partition
    has the event-time merge and a :class:`PartitionRunner` on in-memory
    states. Each batch of up to ``batch_size`` messages sends the alerts, one
    score per rescored customer and the dead letters. It then sends one
    changelog-style message with ``CustomerState.to_bytes`` per changed
    customer, flushes, and commits the released offsets. This is what the
    work costs on aiokafka alone, so the worker's rate against it is the
    cost of Faust.
    """
    topics = [f"{prefix}{topic}" for topic in INPUT_TOPICS_IN_ORDER]
    changelog = f"{prefix}core.changelog"
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}core",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=batch_size,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    await consumer.start()
    engine = Engine(load_config())
    store = MemoryStore()
    runners: dict[int, PartitionRunner] = {}
    mergers: dict[int, EventTimeMerger[tuple[Any, Any]]] = {}
    next_offset: dict[TopicPartition, int] = {}
    released_to: dict[TopicPartition, int] = {}
    seen = alerts = scores = 0
    first: float | None = None
    cpu_before = time.process_time()
    next_report = time.monotonic() + 5

    def caught_up_for(partition: int) -> Any:
        def caught_up(topic: str) -> bool:
            tp = TopicPartition(topic, partition)
            highwater = consumer.highwater(tp)
            return highwater is not None and next_offset.get(tp, 0) >= highwater

        return caught_up

    try:
        async with asyncio.timeout(timeout_s):
            while seen < total:
                fetched = await consumer.getmany(timeout_ms=200, max_records=batch_size)
                for tp, records in fetched.items():
                    if first is None and records:
                        first = time.perf_counter()
                    merger = mergers.get(tp.partition)
                    if merger is None:
                        merger = mergers[tp.partition] = EventTimeMerger(topics)
                        runners[tp.partition] = PartitionRunner(
                            tp.partition,
                            engine,
                            store,
                            LatePaymentModel(),
                            topics=topics,
                        )
                    for record in records:
                        parsed = try_parse(record.value)
                        merger.push(tp.topic, (record, parsed), sort_time(parsed))
                        next_offset[tp] = record.offset + 1
                batch = Batch()
                for partition, merger in mergers.items():
                    runner = runners[partition]
                    for record, parsed in merger.pop_ready(caught_up_for(partition)):
                        source = Source(
                            record.topic, record.partition, record.offset, record.key
                        )
                        runner.handle(record.value, source, batch, parsed)
                        released_to[TopicPartition(record.topic, partition)] = (
                            record.offset + 1
                        )
                        seen += 1
                alert_rows: Rows = {}
                for alert in batch.alerts:
                    state = batch.dirty[alert["customer_id"]]
                    alert_rows.setdefault(state.partition, []).append(
                        (alert["customer_id"].encode(), orjson.dumps(alert))
                    )
                await send_batches(producer, f"{prefix}core.alerts", alert_rows)
                score_rows: Rows = {}
                for customer_id, state in batch.rescored.items():
                    score_rows.setdefault(state.partition, []).append(
                        (customer_id.encode(), orjson.dumps(engine.assessment(state)))
                    )
                await send_batches(producer, f"{prefix}core.scores", score_rows)
                for record in batch.dead_letters:
                    await producer.send(
                        f"{prefix}core.deadletter", orjson.dumps(record)
                    )
                for customer_id, state in batch.dirty.items():
                    await producer.send(
                        changelog, state.to_bytes(), key=customer_id.encode()
                    )
                alerts += len(batch.alerts)
                scores += len(batch.rescored)
                if released_to:
                    await producer.flush()
                    await consumer.commit(dict(released_to))
                now = time.monotonic()
                if now >= next_report:
                    log(f"  core loop {seen}/{total}")
                    next_report = now + 5
    except TimeoutError:
        raise RunFailed(
            f"core loop processed {seen}/{total} events in {timeout_s:.0f} s "
            "(--run-timeout)"
        ) from None
    finally:
        finished = time.perf_counter()
        await consumer.stop()
        await producer.stop()
    return {
        **_loop_rate(seen, first, finished, cpu_before),
        "customers": len(store),
        "alerts": alerts,
        "scores": scores,
    }


def _loop_rate(
    events: int, first: float | None, finished: float, cpu_before: float
) -> dict[str, Any]:
    """Return a loop's events, seconds from its first record, rate and CPU time."""
    assert first is not None, "the loop received no record"
    seconds = finished - first
    return {
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
        "cpu_seconds": time.process_time() - cpu_before,
    }


class ChildProcess:
    """A benchmark subprocess whose output goes to a log file.

    ``name`` labels the process in messages, such as "worker".
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        log_path: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.started_s = 0.0

    def start(self) -> int:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RISKSTREAM_")}
        env.update(self.extra_env)
        self.log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.command,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        self.started_s = time.time()
        return self.process.pid

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check_alive(self) -> None:
        assert self.process is not None
        code = self.process.poll()
        if code is not None:
            raise RunFailed(
                f"{self.name} pid {self.pid} exited with status {code}; last lines "
                f"of {self.log_path}:\n{tail(self.log_path)}",
                self.log_path,
            )

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid)

    def stop(self) -> dict[str, Any]:
        """Send SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`; return how."""
        assert self.process is not None
        started = time.monotonic()
        killed = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log(f"{self.name} pid {self.pid} ignored SIGTERM, sending SIGKILL")
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
                killed = True
        self.log_file.close()
        return {
            "exit_status": self.process.returncode,
            "stop_seconds": time.monotonic() - started,
            "killed": killed,
        }


class WorkerProcess(ChildProcess):
    """``riskstream worker`` in a subprocess with its own ports and folder."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        app_id: str,
        data_dir: Path,
        store: str,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.web_port = free_port()
        self.metrics_port = free_port()
        while self.metrics_port == self.web_port:
            self.metrics_port = free_port()
        self.data_dir = data_dir
        command = [
            *riskstream_command(),
            "worker",
            "--broker",
            f"kafka://{bootstrap}",
            "--topic-prefix",
            prefix,
            "--app-id",
            app_id,
            "--clock",
            "event",
            "--store",
            store,
            "--data-dir",
            str(data_dir),
            "--web-port",
            str(self.web_port),
            "--metrics-port",
            str(self.metrics_port),
        ]
        log_path = data_dir.parent / f"{data_dir.name}.log"
        super().__init__("worker", command, log_path, extra_env)


def riskstream_command() -> list[str]:
    """Return the ``riskstream`` console script of this interpreter's venv."""
    script = Path(sys.executable).parent / "riskstream"
    if script.exists():
        return [str(script)]
    return [
        sys.executable,
        "-c",
        "import sys; from riskstream.cli import main; sys.exit(main())",
    ]


class RunFailed(Exception):
    """A loop, floor, worker or latency run that crashed, stalled or timed out."""

    def __init__(self, reason: str, log_path: Path | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_path = log_path


class StallWatch:
    """Raises :class:`RunFailed` when a progress value stops changing."""

    def __init__(self, timeout_s: float, subject: str, log_path: Path) -> None:
        self.timeout_s = timeout_s
        self.subject = subject
        self.log_path = log_path
        self.value: object = None
        self.changed = time.monotonic()

    def check(self, value: object) -> None:
        now = time.monotonic()
        if value != self.value:
            self.value = value
            self.changed = now
        elif now - self.changed > self.timeout_s:
            raise RunFailed(
                f"{self.subject} made no progress for {self.timeout_s:.0f} s "
                f"(--stall-timeout) at {value}; see {self.log_path}",
                self.log_path,
            )


def worker_errors(path: Path, limit: int = 5) -> list[str]:
    """Return the first distinct error-level messages of a worker's JSON log."""
    found: list[str] = []
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return found
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(record, dict) or record.get("level") != "error":
            continue
        message = str(record.get("event", ""))[:300]
        if message not in found:
            found.append(message)
        if len(found) >= limit:
            break
    return found


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
