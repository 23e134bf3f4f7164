"""The Faust app: topics, tables and the agent that feeds the core.

The agent consumes the three ERP topics in batches, plus the tick topic when
the wall clock drives overdue checks. The event-time merge releases each
message to the :class:`~riskstream.runner.PartitionRunner` of its partition.
At the end of a batch the agent sends the alerts, scores and dead letters.
It then writes every changed customer to the ``customers`` table once, and
each changed model and the partition checkpoint to the ``models`` table.

Faust picks a table row's changelog partition, and its RocksDB partition, from
the event being processed. In a batch that is the last event taken, so every
write here runs with an event of the row's own partition set as current.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import faust
import orjson
import structlog
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from faust.streams import _current_event
from faust.types import TP, EventT
from riskstream_agents import metrics

from riskstream.config import load_config
from riskstream.engine import Engine
from riskstream.errors import InvalidEvent
from riskstream.events import TOPIC_CUSTOMERS, TOPIC_ORDERS, TOPIC_PAYMENTS, Event
from riskstream.kafka_io import bootstrap_of
from riskstream.model import LatePaymentModel
from riskstream.ordering import INPUT_TOPICS_IN_ORDER, EventTimeMerger
from riskstream.runner import Batch, PartitionRunner, Source, sort_time, try_parse
from riskstream.settings import Settings
from riskstream.state import CustomerState

TOPIC_ALERTS = "risk.alerts"
TOPIC_SCORES = "risk.scores"
TOPIC_DEADLETTER = "riskstream.deadletter"
TOPIC_TICKS = "riskstream.ticks"
SEED_TIMEOUT_S = 30.0
"""Maximum wait for Faust's recovery and a new partition's start offsets."""
WAITING_LOG_INTERVAL_S = 30.0
RESEEK_S = 2.0
"""Shortest interval between two seeks of one rewound topic partition."""

log = structlog.get_logger("riskstream.worker")


@contextmanager
def current(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event, so table access uses its partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class TableStore:
    """The runner's view of the ``customers`` table, with decoded states cached.

    A cached state is the live object the runner mutates during a batch. The
    agent writes it back at batch end and then clears the cache, so memory
    keeps only the customers of one batch.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.cache: dict[str, CustomerState] = {}

    def get(self, customer_id: str) -> CustomerState | None:
        """Return the state of ``customer_id``, or None for a new customer."""
        state = self.cache.get(customer_id)
        if state is None:
            raw = self.table.get(customer_id)
            if raw is None:
                return None
            state = self.cache[customer_id] = CustomerState.from_bytes(raw)
        return state

    def put(self, state: CustomerState) -> None:
        """Keep ``state`` cached; the agent writes it to the table at batch end."""
        self.cache[state.customer_id] = state


@dataclass
class Worker:
    """The app with its topics, tables and per-partition runners."""

    settings: Settings
    app: faust.App
    engine: Engine
    input_topic: Any
    ticks_topic: Any
    alerts_topic: Any
    scores_topic: Any
    deadletter_topic: Any
    customers: Any
    models: Any

    def __post_init__(self) -> None:
        self.runners: dict[int, PartitionRunner] = {}
        self.stores: dict[int, TableStore] = {}
        self.levels: dict[str, str] = {}
        """Latest level of each customer this worker scored, for the gauges."""
        self.mergers: dict[int, EventTimeMerger[tuple[EventT, float, Any]]] = {}
        self.next_offset: dict[TP, int] = {}
        self.ticks: dict[int, tuple[EventT, dict[str, Any]]] = {}
        self.lock = asyncio.Lock()
        self.skipped = 0
        self.rewound: dict[TP, tuple[int, int]] = {}
        """Per rewound topic partition: the seek target, and the offset from
        which deliveries are stale until a message below it arrives."""
        self.reseek: set[TP] = set()
        self.sought_at: dict[TP, float] = {}
        self.released_to: dict[TP, int] = {}
        """Per input topic partition, the offset after the last released message."""
        self.waiting: dict[int, tuple[str, int | None, int | None, float]] = {}
        """Per partition, the topic the merge waits for, as of the last release."""
        self._waiting_logged_at = 0.0
        """Messages delivered again within this process and skipped."""
        self.input_names = [self.settings.topic(name) for name in INPUT_TOPICS_IN_ORDER]

    def runner_for(self, event: EventT) -> PartitionRunner:
        """Return the runner of the event's partition, building it after a rebalance."""
        partition = event.message.partition
        runner = self.runners.get(partition)
        if runner is not None:
            return runner
        store = self.stores[partition] = TableStore(self.customers)
        with current(event):
            checkpoint = self.models.get(model_key(partition))
        model = (
            LatePaymentModel.from_bytes(checkpoint)
            if checkpoint
            else LatePaymentModel()
        )
        runner = PartitionRunner(
            partition,
            self.engine,
            store,
            model,
            partitions=self.settings.partitions,
            topics=self.input_names,
        )
        restored = [
            state
            for state in (
                CustomerState.from_bytes(raw) for raw in self.customers.values()
            )
            if state.partition == partition
        ]
        due = runner.rebuild(restored)
        log.info(
            "partition_started",
            partition=partition,
            customers=len(restored),
            customers_with_crossings=due,
            model_updates=model.updates,
        )
        self.runners[partition] = runner
        return runner

    def forget(self, partitions: set[int]) -> None:
        """Drop runners and held messages of revoked partitions.

        The next owner of a partition reads its held messages again from
        the partition checkpoint.
        """
        for partition in partitions:
            self.runners.pop(partition, None)
            self.stores.pop(partition, None)
            merger = self.mergers.pop(partition, None)
            if merger is not None:
                merger.clear()
            for name in self.input_names:
                self.next_offset.pop(TP(name, partition), None)
                self.rewound.pop(TP(name, partition), None)
                self.sought_at.pop(TP(name, partition), None)
                self.released_to.pop(TP(name, partition), None)
            self.ticks.pop(partition, None)

    async def process(self, events: list[EventT]) -> Batch:
        """Queue one batch from Faust, then run what the merge releases.

        Faust acknowledges every message as usual, so its committed offsets
        may pass messages the merge still holds. The partition checkpoint
        records where the released messages end instead, and a partition
        that starts again reads from there (see :meth:`_start_partition`).
        """
        async with self.lock:
            for event in events:
                message = event.message
                if message.topic == self.ticks_topic.get_topic_name():
                    self.ticks[message.partition] = (event, orjson.loads(message.value))
                    continue
                if message.partition not in self.mergers:
                    await self._start_partition(message.partition)
                if not self._accept(message.tp, message.offset):
                    continue
                parsed = try_parse(message.value)
                self.mergers[message.partition].push(
                    message.topic, (event, time.monotonic(), parsed), sort_time(parsed)
                )
            await self._repeat_rewinds()
            return await self._release()

    async def _repeat_rewinds(self) -> None:
        """Seek again the rewound partitions that still deliver stale messages."""
        now = time.monotonic()
        for tp in sorted(self.reseek):
            if tp in self.rewound and now - self.sought_at.get(tp, 0.0) >= RESEEK_S:
                await self.app.consumer.seek(tp, self.rewound[tp][0])
                self.sought_at[tp] = now
        self.reseek.clear()

    def _accept(self, tp: TP, offset: int) -> bool:
        """Tell whether a delivered message is new to the merge."""
        rewind = self.rewound.get(tp)
        if rewind is not None:
            target, stale_from = rewind
            if offset >= stale_from:
                # Delivered before the rewind took effect. Faust's own seek to
                # the committed offset can also land after ours, so the seek is
                # repeated until a message from the target arrives.
                self.reseek.add(tp)
                return False
            del self.rewound[tp]
        expected = self.next_offset.get(tp)
        if expected is not None and offset < expected:
            self.skipped += 1
            return False
        self.next_offset[tp] = offset + 1
        return True

    async def _start_assigned(self) -> None:
        """Start every assigned input partition that has not started yet.

        A partition whose held messages were all committed by the previous
        owner receives nothing new, so it must not wait for a first message
        to be rewound to its checkpoint.
        """
        if self.app.rebalancing or not self.app.tables.recovery.completed.is_set():
            return
        names = set(self.input_names)
        for tp in sorted(self.app.consumer.assignment()):
            if tp.topic in names and tp.partition not in self.mergers:
                await self._start_partition(tp.partition)

    async def _start_partition(self, partition: int) -> None:
        """Set where reading of a newly assigned partition starts.

        The partition checkpoint gives, per input topic, the offset after the
        last message the merge released. Faust resumes at the group's
        committed offset, which may be later: the messages between were held
        when the previous owner stopped. Those topics are rewound to the
        checkpoint, and messages already applied to a customer are skipped
        by the runner. Topics without a checkpoint start at the committed or
        earliest offset.
        """
        self.mergers[partition] = EventTimeMerger(self.input_names)
        tps = [TP(name, partition) for name in self.input_names]
        try:
            async with asyncio.timeout(SEED_TIMEOUT_S):
                # Faust resumes fetching before its own seek to the committed
                # offsets and before the tables are complete, so the
                # checkpoint is read, and a rewind issued, only after both.
                await self.app.tables.recovery.completed.wait()
                committed = await committed_offsets(self.settings, tps)
                earliest = await self.app.consumer.earliest_offsets(*tps)
        except (TimeoutError, KafkaError) as exc:
            # NOTE: without its checkpoint the partition is not rewound, so
            # messages the previous owner held and committed are skipped, and
            # the merge waits merge_hold_s for topics without a known position.
            log.error(
                "partition_start_failed",
                partition=partition,
                error=repr(exc),
                timeout_s=SEED_TIMEOUT_S,
            )
            return
        released = self.checkpoint_positions(partition)
        for tp in tps:
            start = committed.get(tp, earliest[tp])
            resume = released.get(tp.topic)
            if resume is not None and resume < start:
                await self.app.consumer.seek(tp, resume)
                self.rewound[tp] = (resume, start)
                self.sought_at[tp] = time.monotonic()
                log.info(
                    "partition_rewound",
                    topic=tp.topic,
                    partition=partition,
                    committed=start,
                    offset=resume,
                )
                start = resume
            self.next_offset[tp] = start
            self.released_to[tp] = start

    def checkpoint_positions(self, partition: int) -> dict[str, int]:
        """Read the released positions from the partition's checkpoint.

        Without a current event, Faust's RocksDB store looks the key up in
        every partition it holds; the key names its partition.
        """
        raw = self.models.get(position_key(partition))
        return {} if raw is None else dict(orjson.loads(raw))

    async def release_held(self) -> None:
        """Release what the hold time allows now; the flush timer calls this."""
        async with self.lock:
            # A rewind whose seek was undone delivers nothing at all when the
            # committed offset is already at the end, so the timer repeats it too.
            await self._start_assigned()
            self.reseek.update(self.rewound)
            await self._repeat_rewinds()
            if any(len(merger) for merger in self.mergers.values()) or self.ticks:
                self.waiting.clear()
                await self._release()
            self._report_waiting()

    def _report_waiting(self) -> None:
        """Log, at most every 30 s, a merge that has waited long for a topic."""
        now = time.monotonic()
        if now - self._waiting_logged_at < WAITING_LOG_INTERVAL_S:
            return
        for partition, (topic, received, highwater, held_s) in self.waiting.items():
            if held_s >= WAITING_LOG_INTERVAL_S:
                self._waiting_logged_at = now
                log.warning(
                    "merge_waiting",
                    partition=partition,
                    topic=topic,
                    next_offset=received,
                    highwater=highwater,
                    held_s=round(held_s, 1),
                    held_messages=len(self.mergers[partition]),
                )

    async def _release(self) -> Batch:
        started = time.perf_counter()
        batch = Batch()
        last_event: dict[int, EventT] = {}
        models_changed: set[int] = set()
        released: list[EventT] = []
        now = time.monotonic()
        for partition, merger in self.mergers.items():
            ready = merger.pop_ready(self._caught_up_for(partition, merger, now))
            for event, _queued_at, parsed in ready:
                released.append(event)
                last_event[partition] = event
                self._run(event, parsed, batch, models_changed)
                self.released_to[event.message.tp] = event.message.offset + 1
        for partition, (event, tick) in self.ticks.items():
            merger = self.mergers.get(partition)
            held = merger.oldest() if merger is not None else None
            until_s = int(tick["now_s"])
            if held is not None:
                held_time = sort_time(held[2])
                if held_time is not None:
                    until_s = min(until_s, int(held_time) - 1)
            last_event[partition] = event
            with current(event):
                runner = self.runner_for(event)
                before = runner.model.updates
                runner.advance_to(until_s, batch)
                if runner.model.updates != before:
                    models_changed.add(partition)
        self.ticks.clear()

        await self._publish(batch)
        for customer_id, state in batch.dirty.items():
            with current(last_event[state.partition]):
                self.customers[customer_id] = state.to_bytes()
        for partition in models_changed:
            with current(last_event[partition]):
                self.models[model_key(partition)] = self.runners[
                    partition
                ].model.to_bytes()
        for store in self.stores.values():
            store.cache.clear()
        if released:
            # The positions may only move on once the states they cover are
            # in Kafka, or a crash could skip messages no state applied.
            await self.app.producer.flush()
            for partition, event in last_event.items():
                positions = {
                    name: self.released_to[TP(name, partition)]
                    for name in self.input_names
                    if TP(name, partition) in self.released_to
                }
                with current(event):
                    self.models[position_key(partition)] = orjson.dumps(positions)
            # Commit what was released, so the group's lag is the true backlog.
            await self.app.consumer._commit(
                {tp: offset for tp, offset in self.released_to.items()}
            )
        metrics.observe_batch(batch, len(released), time.perf_counter() - started)
        return batch

    def _run(
        self,
        event: EventT,
        parsed: Event | InvalidEvent,
        batch: Batch,
        models_changed: set[int],
    ) -> None:
        message = event.message
        with current(event):
            runner = self.runner_for(event)
            before = runner.model.updates
            source = Source(
                message.topic, message.partition, message.offset, message.key
            )
            runner.handle(message.value, source, batch, parsed)
            if runner.model.updates != before:
                models_changed.add(message.partition)

    def _caught_up_for(
        self, partition: int, merger: EventTimeMerger[Any], now: float
    ) -> Callable[[str], bool]:
        """Tell, per topic, whether the merge may stop waiting for it.

        A topic is caught up when every message below its high watermark has
        reached the merge. Until the consumer has fetched the topic once, its
        high watermark is unknown, and the merge waits for it at most
        ``merge_hold_s``.
        """
        head = merger.oldest()
        held_s = 0.0 if head is None else now - head[1]

        def caught_up(topic: str) -> bool:
            tp = TP(topic, partition)
            try:
                highwater = self.app.consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - aiokafka raises IllegalStateError
                highwater = None
            received = self.next_offset.get(tp)
            if received is not None and highwater is not None and highwater >= 0:
                done = received >= highwater
            else:
                done = held_s >= self.settings.merge_hold_s
            if not done:
                self.waiting[partition] = (topic, received, highwater, held_s)
            return done

        return caught_up

    async def _publish(self, batch: Batch) -> None:
        for alert in batch.alerts:
            await self.alerts_topic.send(
                key=alert["customer_id"].encode(), value=orjson.dumps(alert)
            )
            metrics.observe_alert(alert)
        for customer_id, state in batch.rescored.items():
            score = self.engine.assessment(state)
            self.levels[customer_id] = score["level"]
            await self.scores_topic.send(
                key=customer_id.encode(), value=orjson.dumps(score)
            )
        for record in batch.dead_letters:
            key = record["source"]["key"]
            await self.deadletter_topic.send(
                key=None if key is None else key.encode(), value=orjson.dumps(record)
            )
            log.error(
                "event_dead_lettered",
                topic=record["source"]["topic"],
                partition=record["source"]["partition"],
                offset=record["source"]["offset"],
                event_id=record["event_id"],
                field=record["field"],
                rule=record["rule"],
                reason=record["reason"],
            )


async def committed_offsets(settings: Settings, tps: list[TP]) -> dict[TP, int]:
    """Return the worker group's committed offsets of ``tps``; absent if none."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_of(settings.broker))
    await admin.start()
    try:
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        found = await admin.list_consumer_group_offsets(
            settings.app_id, partitions=partitions
        )
    finally:
        await admin.close()
    return {
        TP(tp.topic, tp.partition): meta.offset
        for tp, meta in found.items()
        if meta.offset >= 0
    }


def position_key(partition: int) -> str:
    """Return the ``models`` table key of a partition's released positions."""
    return f"released_positions/{partition}"


def model_key(partition: int) -> str:
    """Return the ``models`` table key of a partition's model."""
    return f"late_payment_30d/{partition}"


def create_worker(settings: Settings) -> Worker:
    """Build the Faust app, its topics and tables, and register the agent."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 5),
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        # Revoked partitions drop the messages their merge holds, and the next
        # owner reads them again from the partition checkpoint.
        stream_wait_empty=False,
        # The agent commits the offsets the merge has released after each
        # batch; Faust's own commits would also cover messages still held.
        # Faust still commits what it acknowledged when partitions are revoked
        # or the worker stops, and the partition checkpoint covers that.
        broker_commit_interval=24 * 3600.0,
        broker_commit_every=10**12,
        table_cleanup_interval=3600.0,
        key_serializer="raw",
        value_serializer="raw",
    )
    raw = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    names = [settings.topic(t) for t in (TOPIC_ORDERS, TOPIC_PAYMENTS, TOPIC_CUSTOMERS)]
    ticks_topic = app.topic(
        settings.topic(TOPIC_TICKS), partitions=settings.partitions, **raw
    )
    if settings.clock == "wall":
        names.append(ticks_topic.get_topic_name())
    input_topic = app.topic(*names, partitions=settings.partitions, **raw)
    worker = Worker(
        settings=settings,
        app=app,
        engine=Engine(load_config(settings.rules_file)),
        input_topic=input_topic,
        ticks_topic=ticks_topic,
        alerts_topic=app.topic(
            settings.topic(TOPIC_ALERTS), partitions=settings.partitions, **raw
        ),
        scores_topic=app.topic(
            settings.topic(TOPIC_SCORES),
            partitions=settings.partitions,
            compacting=True,
            **raw,
        ),
        deadletter_topic=app.topic(
            settings.topic(TOPIC_DEADLETTER), partitions=settings.partitions, **raw
        ),
        customers=app.Table(
            "customers",
            partitions=settings.partitions,
            key_type=str,
            value_type=bytes,
        ),
        models=app.Table(
            "models",
            partitions=settings.partitions,
            key_type=str,
            value_type=bytes,
        ),
    )
    _register(worker)
    return worker


def _register(worker: Worker) -> None:
    app, settings = worker.app, worker.settings

    @app.agent(worker.input_topic, name="score")
    async def score(stream: Any) -> AsyncIterator[None]:
        async for events in stream.take_events(
            settings.batch_size, settings.batch_timeout_s
        ):
            await worker.process(list(events))
            yield None

    @app.timer(settings.merge_hold_s / 2)
    async def release_held() -> None:
        await worker.release_held()

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: Any, **_: Any) -> None:
        worker.forget({tp.partition for tp in revoked})

    if settings.clock == "wall":

        @app.timer(settings.tick_interval_s)
        async def tick() -> None:
            topic_name = worker.ticks_topic.get_topic_name()
            now_s = int(time.time())
            for tp in app.consumer.assignment():
                if tp.topic == topic_name:
                    await worker.ticks_topic.send(
                        key=b"tick",
                        value=orjson.dumps({"now_s": now_s}),
                        partition=tp.partition,
                    )

    metrics.register_gauges(worker)
