"""The Faust app: topics, tables and the agent that feeds the core.

The agent consumes the three ERP topics and the operators' alert-actions
topic in batches, plus the tick topic when the wall clock drives overdue
checks. The event-time merge releases each
message to the :class:`~riskstream.runner.PartitionRunner` of its partition.
At the end of a batch the agent sends the alerts, scores and dead letters.
It then writes every changed customer to the ``customers`` table once, and
each changed model and the partition checkpoint to the ``models`` table.

Faust picks a table row's changelog partition, and its RocksDB partition, from
the event being processed. In a batch that is the last event taken, so every
write here runs with an event of the row's own partition set as current.

The agent commits offsets itself, and Faust commits none: messages are never
acknowledged to Faust. After each batch, once the outputs and table rows are
in Kafka, the agent commits the offset after the last message the merge
released from each partition. A restarted or newly assigned worker therefore
reads every held or unfinished message again, and the per-customer offsets in
the state skip what was already applied.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import faust
import orjson
import structlog
from faust.streams import _current_event
from faust.types import TP, EventT
from riskstream_agents import gauges, metrics
from riskstream_agents.tally import StateTally
from riskstream_agents.web import register_pages

from riskstream.config import load_config
from riskstream.engine import Engine, Rejection
from riskstream.errors import InvalidEvent, RiskstreamError
from riskstream.events import Event
from riskstream.explain import explain
from riskstream.kafka_io import Rows, send_batches
from riskstream.model import LatePaymentModel
from riskstream.ordering import INPUT_TOPICS_IN_ORDER, EventTimeMerger
from riskstream.partitioning import partition_for
from riskstream.runner import (
    Batch,
    PartitionRunner,
    Source,
    claimed_event_id,
    dead_letter,
    sort_time,
    try_parse,
)
from riskstream.settings import Settings
from riskstream.state import CustomerState

TOPIC_ALERTS = "risk.alerts"
TOPIC_SCORES = "risk.scores"
TOPIC_DEADLETTER = "riskstream.deadletter"
TOPIC_TICKS = "riskstream.ticks"
WAITING_LOG_INTERVAL_S = 30.0
DEAD_LETTER_LOG_LIMIT = 20
"""Maximum dead letters per batch logged one by one. The rest are logged as a count."""
RESEEK_S = 1.0
"""Shortest interval between two seeks of one topic partition."""
STALL_SEEK_S = 5.0
"""How long a partition behind its end may go without a delivery before a seek."""
GAP_ACCEPT_S = 10.0
"""How long a gap in offsets must persist across seeks to count as real."""
FAILED_BATCH_PAUSE_S = 5.0
"""Wait after a batch failed for a reason no single message explains."""
# NOTE: a transactional producer leaves a control record after each
# transaction, so each such gap stalls its partition for GAP_ACCEPT_S.

log = structlog.get_logger("riskstream.worker")


class MessageFailed(RiskstreamError):
    """Processing one message raised an error that validation did not foresee."""

    def __init__(self, tp: TP, offset: int, error: Exception) -> None:
        super().__init__(f"{tp.topic}[{tp.partition}]@{offset}: {error!r}")
        self.tp = tp
        self.offset = offset
        self.reason = repr(error)[:500]


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

    A cached state is the live object the runner mutates. The agent writes
    changed states to the table at batch end and keeps them decoded, up to
    ``capacity`` states per partition, least recently used out first, so the
    next batch does not decode them again. Only the partition's owner writes
    its rows, so a cached state is never older than its row.
    """

    def __init__(self, table: Any, capacity: int) -> None:
        self.table = table
        self.capacity = capacity
        self.cache: OrderedDict[str, CustomerState] = OrderedDict()

    def get(self, customer_id: str) -> CustomerState | None:
        """Return the state of ``customer_id``, or None for a new customer."""
        state = self.cache.get(customer_id)
        if state is not None:
            self.cache.move_to_end(customer_id)
            return state
        raw = self.table.get(customer_id)
        if raw is None:
            return None
        state = self.cache[customer_id] = CustomerState.from_bytes(raw)
        return state

    def put(self, state: CustomerState) -> None:
        """Keep ``state`` cached; the agent writes it to the table at batch end."""
        self.cache[state.customer_id] = state
        self.cache.move_to_end(state.customer_id)

    def trim(self) -> None:
        """Drop the least recently used states beyond the capacity."""
        while len(self.cache) > self.capacity:
            self.cache.popitem(last=False)


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
        self.tally = StateTally()
        """Levels and open alerts of the owned partitions' customers, for gauges."""
        self.mergers: dict[int, EventTimeMerger[tuple[EventT, float, Any]]] = {}
        self.next_offset: dict[TP, int] = {}
        self.ticks: dict[int, list[tuple[EventT, dict[str, Any]]]] = {}
        self.lock = asyncio.Lock()
        self.released_to: dict[TP, int] = {}
        """Per input topic partition, the offset after the last released message."""
        self.committed_to: dict[TP, int] = {}
        self.skipped = 0
        """Messages delivered twice within this process and skipped."""
        self.stale = 0
        """Messages of an earlier consumer generation or fetched during a
        rebalance, dropped uncommitted."""
        self.gap_drops = 0
        """Messages above the expected offset, dropped uncommitted."""
        self.set_aside: dict[tuple[TP, int], str] = {}
        """Messages whose processing raised, with the error: the next delivery
        of each goes to the dead-letter topic instead of the core."""
        self.gaps: dict[TP, tuple[int, float]] = {}
        """Per topic partition with a gap: the expected offset, and since when."""
        self.reseek: dict[TP, int] = {}
        """Per topic partition, the offset to seek back to."""
        self.sought_at: dict[TP, float] = {}
        self.stalled: dict[TP, tuple[int, float]] = {}
        """Per topic partition behind its end: the next offset, and since when."""
        self.waiting: dict[int, tuple[str, int | None, int | None, float]] = {}
        """Per partition, the topic the merge waits for, as of the last release."""
        self._waiting_logged_at = 0.0
        self.input_names = [self.settings.topic(name) for name in INPUT_TOPICS_IN_ORDER]

    def runner_for(self, event: EventT) -> PartitionRunner:
        """Return the runner of the event's partition, building it after a rebalance."""
        partition = event.message.partition
        runner = self.runners.get(partition)
        if runner is not None:
            return runner
        store = self.stores[partition] = TableStore(
            self.customers, self.settings.state_cache_size
        )
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
            max_future_s=self.settings.max_future_s or None,
        )
        restored = [
            state
            for state in (
                CustomerState.from_bytes(raw) for raw in self.customers.values()
            )
            if state.partition == partition
        ]
        due = runner.rebuild(restored)
        self.tally.rebuild([partition], restored)
        log.info(
            "partition_started",
            partition=partition,
            customers=len(restored),
            customers_with_crossings=due,
            model_updates=model.updates,
        )
        self.runners[partition] = runner
        return runner

    async def explain_customer(self, customer_id: str) -> tuple[dict[str, Any], int]:
        """Explain a customer whose partition this worker owns.

        Returns the explanation and HTTP status 200, or an error document
        with 404: the customer has no state, or another worker owns its
        partition (``owner_url`` names that worker's web server when the
        assignment lists it).
        """
        partition = partition_for(customer_id, self.settings.partitions)
        changelog = self.customers.changelog_topic.get_topic_name()
        if TP(changelog, partition) not in self.app.assignor.assigned_actives():
            owner = None
            for url, topics in self.app.router.table_metadata("customers").items():
                if partition in topics.get(changelog, ()):
                    owner = f"{url}/customers/{customer_id}/"
            return {
                "error": f"partition {partition} of customer {customer_id!r} is "
                "owned by another worker; ask it instead",
                "owner_url": owner,
            }, 404
        async with self.lock:
            raw = self.customers.get(customer_id)
            if raw is None:
                return {
                    "error": f"customer {customer_id!r} has no state; no valid "
                    "event of theirs was processed",
                    "owner_url": None,
                }, 404
            runner = self.runners.get(partition)
            state = CustomerState.from_bytes(raw)
            return explain(self.engine, state, runner.model if runner else None), 200

    async def forget(self, partitions: set[int]) -> None:
        """Drop runners and held messages of revoked partitions.

        Held messages were never committed, so the next owner of the
        partition reads them again from the committed offset.
        """
        async with self.lock:
            for partition in partitions:
                self.runners.pop(partition, None)
                self.stores.pop(partition, None)
                merger = self.mergers.pop(partition, None)
                if merger is not None:
                    merger.clear()
                for name in self.input_names:
                    tp = TP(name, partition)
                    for offsets in (
                        self.next_offset,
                        self.gaps,
                        self.reseek,
                        self.released_to,
                        self.committed_to,
                        self.stalled,
                    ):
                        offsets.pop(tp, None)
                self.ticks.pop(partition, None)
            self.tally.drop(partitions)

    async def process(self, events: list[EventT]) -> Batch:
        """Queue one batch from Faust, then run what the merge releases.

        If anything fails, the partitions start again from the last commit:
        their cached states may hold changes that were never written. The
        error does not reach Faust, because a crashed agent's stream acks and
        commits the messages it delivers next, unprocessed.
        """
        async with self.lock:
            try:
                return await self._process(events)
            except asyncio.CancelledError as exc:
                self._restart_from_commit(exc)
                raise
            except Exception as exc:  # noqa: BLE001 - see the docstring
                await self._contain(exc)
                return Batch()

    async def _contain(self, error: Exception) -> None:
        """Restart from the last commit after a failed batch, and log why.

        A message whose processing raised is set aside: when it comes again,
        it goes to the dead-letter topic and the partition goes on. Any other
        failure is retried after :data:`FAILED_BATCH_PAUSE_S`.
        """
        self._restart_from_commit(error)
        if isinstance(error, MessageFailed):
            self.set_aside[(error.tp, error.offset)] = error.reason
            metrics.PROCESSING_FAILURES.labels("message").inc()
            log.error(
                "message_set_aside",
                topic=error.tp.topic,
                partition=error.tp.partition,
                offset=error.offset,
                error=error.reason,
            )
            return
        metrics.PROCESSING_FAILURES.labels("batch").inc()
        log.error("batch_failed", error=repr(error)[:500])
        await asyncio.sleep(FAILED_BATCH_PAUSE_S)

    def _restart_from_commit(self, error: BaseException) -> None:
        """Drop everything since the last commit, so it is read again.

        A batch cancelled because the worker stops is routine, so only other
        errors log a warning. The caller re-raises the error, and Faust logs
        it with its traceback, so this line names only its type.
        """
        stopping = isinstance(error, asyncio.CancelledError)
        (log.info if stopping else log.warning)(
            "partitions_restarted_from_commit",
            partitions=sorted(self.mergers),
            cause=type(error).__name__,
        )
        for partition in list(self.mergers):
            self.runners.pop(partition, None)
            self.stores.pop(partition, None)
            self.mergers.pop(partition).clear()
        self.ticks.clear()
        self.next_offset = dict(self.committed_to)
        self.released_to = dict(self.committed_to)

    async def _process(self, events: list[EventT]) -> Batch:
        ticks_name = self.ticks_topic.get_topic_name()
        generation = self.app.consumer_generation_id
        ready = self.app.tables.recovery.completed.is_set() and not self.app.rebalancing
        for event in events:
            message = event.message
            if not ready or message.generation_id != generation:
                # Fetched before a rebalance, or before Faust's seek to the
                # committed offsets and the end of table recovery. Nothing
                # past the committed offset is done, so the partition's
                # owner reads the message again.
                self.stale += 1
                metrics.DROPPED.labels("rebalance").inc()
                continue
            if message.topic == ticks_name:
                self.ticks.setdefault(message.partition, []).append(
                    (event, orjson.loads(message.value))
                )
                continue
            merger = self.mergers.get(message.partition)
            if merger is None:
                merger = self.mergers[message.partition] = EventTimeMerger(
                    self.input_names
                )
            if not self._accept(message.tp, message.offset):
                continue
            parsed = try_parse(message.value)
            merger.push(
                message.topic, (event, time.monotonic(), parsed), sort_time(parsed)
            )
        await self._seek_back()
        return await self._release()

    def _accept(self, tp: TP, offset: int) -> bool:
        """Tell whether a delivered message is the next one of its partition.

        Every message must reach the merge once and in offset order, or a
        customer's state would skip it for good. The first expected offset is
        Faust's committed offset. A message below the expected offset was seen
        already. A message above it means Faust delivered records fetched
        before its seek to the committed offset: it is dropped uncommitted,
        and the partition is sought back to the expected offset. A gap that
        persists across seeks for :data:`GAP_ACCEPT_S` is real (transaction
        markers, or records deleted by retention) and is accepted.
        """
        expected = self.next_offset.get(tp)
        if expected is None:
            expected = self.app.consumer._committed_offset.get(tp)
        # NOTE: a partition without a committed offset starts at whatever
        # arrives first, so a stale delivery there would go unnoticed.
        if expected is not None and offset < expected:
            self.skipped += 1
            metrics.DROPPED.labels("seen").inc()
            return False
        if expected is not None and offset > expected:
            now = time.monotonic()
            first_seen = self.gaps.setdefault(tp, (expected, now))[1]
            if self.gaps[tp][0] != expected:
                self.gaps[tp] = (expected, now)
                first_seen = now
            if now - first_seen < GAP_ACCEPT_S:
                self.reseek[tp] = expected
                self.gap_drops += 1
                metrics.DROPPED.labels("gap").inc()
                return False
            log.warning(
                "offset_gap_accepted",
                topic=tp.topic,
                partition=tp.partition,
                expected=expected,
                offset=offset,
            )
        self.gaps.pop(tp, None)
        self.next_offset[tp] = offset + 1
        return True

    async def _seek_back(self) -> None:
        """Seek partitions back to the offset the merge expects next.

        Seeks wait while a rebalance is under way, because Faust seeks every
        partition to its committed offset at the end of one anyway.
        """
        if self.app.rebalancing or not self.app.tables.recovery.completed.is_set():
            return
        assigned = self.app.consumer.assignment()
        now = time.monotonic()
        for tp, offset in sorted(self.reseek.items()):
            if tp not in assigned:
                del self.reseek[tp]
                continue
            if now - self.sought_at.get(tp, 0.0) < RESEEK_S:
                continue
            del self.reseek[tp]
            self.sought_at[tp] = now
            log.info(
                "partition_sought_back",
                topic=tp.topic,
                partition=tp.partition,
                offset=offset,
            )
            await self.app.consumer.seek(tp, offset)

    def _find_stalled(self) -> None:
        """Mark for a seek each input partition that stopped short of its end.

        A message dropped during a rebalance after Faust's own seek, with
        nothing after it to reveal the gap, would otherwise never come again.
        A partition whose next offset has not moved for :data:`STALL_SEEK_S`
        while its high watermark is ahead is sought to that offset.
        """
        now = time.monotonic()
        names = set(self.input_names)
        for tp in self.app.consumer.assignment():
            if tp.topic not in names:
                continue
            received = self.next_offset.get(tp, self.committed_to.get(tp))
            if received is None:
                # Nothing arrived yet since the assignment, for example when a
                # delivery came during recovery and was dropped.
                received = self.app.consumer._committed_offset.get(tp)
            try:
                highwater = self.app.consumer.highwater(tp)
            except Exception:  # noqa: BLE001 - aiokafka raises IllegalStateError
                highwater = None
            if received is None or highwater is None or received >= highwater:
                self.stalled.pop(tp, None)
                continue
            last = self.stalled.get(tp)
            if last is None or last[0] != received:
                self.stalled[tp] = (received, now)
            elif now - last[1] >= STALL_SEEK_S:
                self.reseek[tp] = min(received, self.reseek.get(tp, received))
                self.stalled[tp] = (received, now)

    async def release_held(self) -> None:
        """Release what the hold time allows now; the flush timer calls this."""
        async with self.lock:
            try:
                self._find_stalled()
                await self._seek_back()
                if any(len(merger) for merger in self.mergers.values()) or self.ticks:
                    self.waiting.clear()
                    await self._release()
            except asyncio.CancelledError as exc:
                self._restart_from_commit(exc)
                raise
            except Exception as exc:  # noqa: BLE001 - as in process
                await self._contain(exc)
            self._report_waiting()

    def _report_waiting(self) -> None:
        """Log, at most every 30 s, a merge that has waited long for a topic."""
        now = time.monotonic()
        if now - self._waiting_logged_at < WAITING_LOG_INTERVAL_S:
            return
        for partition, (topic, received, highwater, held_s) in self.waiting.items():
            if held_s >= WAITING_LOG_INTERVAL_S and partition in self.mergers:
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
        for partition, ticks in self.ticks.items():
            merger = self.mergers.get(partition)
            held = merger.oldest() if merger is not None else None
            event, tick = ticks[-1]
            released.extend(tick_event for tick_event, _ in ticks)
            for tick_event, _ in ticks:
                self.released_to[tick_event.message.tp] = tick_event.message.offset + 1
            until_s = int(tick["now_s"])
            if held is not None:
                held_time = sort_time(held[2])
                if held_time is not None:
                    until_s = min(until_s, int(held_time) - 1)
            last_event[partition] = event
            with current(event):
                runner = self.runner_for(event)
                before = runner.model.learned
                runner.advance_to(until_s, batch)
                if runner.model.learned != before:
                    models_changed.add(partition)
        self.ticks.clear()

        # Outputs first, then state: a crash between the two sends the
        # outputs again after the restart, never state without its outputs.
        await self._publish(batch)
        if batch.dirty or models_changed:
            await self.app.producer.flush()
        for customer_id, state in batch.dirty.items():
            with current(last_event[state.partition]):
                self.customers[customer_id] = state.to_bytes()
        self.tally.record(batch.dirty.values())
        for partition in models_changed:
            with current(last_event[partition]):
                self.models[model_key(partition)] = self.runners[
                    partition
                ].model.to_bytes()
        for store in self.stores.values():
            store.trim()
        if released:
            await self._flush_changelogs()
            await self._commit()
        metrics.observe_batch(batch, time.perf_counter() - started)
        return batch

    async def _commit(self) -> None:
        """Commit the released positions that moved since the last commit."""
        moved = {
            tp: offset
            for tp, offset in self.released_to.items()
            if self.committed_to.get(tp) != offset
        }
        if moved:
            await self.app.consumer._commit(moved)
            self.committed_to.update(moved)

    async def _flush_changelogs(self) -> None:
        """Wait until every table write so far has reached Kafka.

        Table writes wait in Faust's producer buffer, and ``Producer.flush``
        gives up on that buffer after 0.1 s without progress, so the buffer
        is drained here until empty before offsets are committed.
        """
        producer = self.app.producer
        while producer.buffer.size:
            await producer.buffer.flush()
        await producer.flush()

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
            before = runner.model.learned
            source = Source(
                message.topic, message.partition, message.offset, message.key
            )
            failure = self.set_aside.pop((message.tp, message.offset), None)
            if failure is not None:
                batch.invalid["processing_failed"] += 1
                batch.dead_letters.append(set_aside_letter(message, source, failure))
                return
            started = time.perf_counter()
            try:
                runner.handle(message.value, source, batch, parsed)
            except Exception as exc:
                raise MessageFailed(message.tp, message.offset, exc) from exc
            metrics.observe_message(
                message.topic,
                not isinstance(parsed, InvalidEvent),
                time.perf_counter() - started,
            )
            if runner.model.learned != before:
                models_changed.add(message.partition)

    def _caught_up_for(
        self, partition: int, merger: EventTimeMerger[Any], now: float
    ) -> Callable[[str], bool]:
        """Tell, per topic, whether the merge may stop waiting for it.

        A topic is caught up when every message below its high watermark has
        reached the merge. A partition that never held a message (high
        watermark 0) is caught up at once, which matters for the operators'
        alert-actions topic: it is often empty, and the merge held every event
        for ``merge_hold_s`` while waiting for it. Until the consumer has
        fetched the topic once, its high watermark is unknown, and so is the
        start of a partition without committed offsets; the merge then waits
        for the topic at most ``merge_hold_s``.
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
            if received is None:
                # Nothing read yet: Faust resumes at the committed offset.
                received = self.committed_to.get(tp)
            if received is None:
                received = self.app.consumer._committed_offset.get(tp)
            if highwater == 0:
                done = True
            elif received is not None and highwater is not None and highwater >= 0:
                done = received >= highwater
            else:
                # NOTE: a partition whose messages were all deleted by retention
                # and that has no committed offset waits here on every release.
                done = held_s >= self.settings.merge_hold_s
            if not done:
                self.waiting[partition] = (topic, received, highwater, held_s)
            return done

        return caught_up

    async def _publish(self, batch: Batch) -> None:
        # Alerts and scores are keyed by customer, and each customer's rows go
        # to the partition of its input, so they are sent in one record batch
        # per partition. The flush before the commit covers these sends too.
        alerts: Rows = {}
        for alert in batch.alerts:
            state = batch.dirty[alert["customer_id"]]
            alerts.setdefault(state.partition, []).append(
                (alert["customer_id"].encode(), orjson.dumps(alert))
            )
        producer = self.app.producer._ensure_producer()
        await send_batches(producer, self.alerts_topic.get_topic_name(), alerts)
        metrics.observe_alerts(batch.alerts, time.time())
        scores: Rows = {}
        for customer_id, state in batch.rescored.items():
            score = self.engine.assessment(state)
            scores.setdefault(state.partition, []).append(
                (customer_id.encode(), orjson.dumps(score))
            )
        await send_batches(producer, self.scores_topic.get_topic_name(), scores)
        send = self.app.producer.send
        dead_letters = self.deadletter_topic.get_topic_name()
        for record in batch.dead_letters:
            source = record["source"]
            key = None if source["key"] is None else source["key"].encode()
            await send(dead_letters, key, orjson.dumps(record), None, None, None)
        log_dead_letters(batch.dead_letters)


def log_dead_letters(records: list[dict[str, Any]]) -> None:
    """Log the first dead letters of a batch one by one, and count the rest.

    The cap keeps a producer that sends only bad messages from flooding the
    log. The metric ``riskstream_events_invalid_total`` counts every one.
    """
    for record in records[:DEAD_LETTER_LOG_LIMIT]:
        source = record["source"]
        log.error(
            "event_dead_lettered",
            topic=source["topic"],
            partition=source["partition"],
            offset=source["offset"],
            key=source["key"],
            event_id=record["event_id"],
            field=record["field"],
            rule=record["rule"],
            reason=record["reason"],
        )
    if len(records) > DEAD_LETTER_LOG_LIMIT:
        log.error(
            "events_dead_lettered_unlogged",
            count=len(records) - DEAD_LETTER_LOG_LIMIT,
            rules=sorted({record["rule"] for record in records}),
        )


def partitions_by_topic(tps: Any) -> dict[str, Any]:
    """Group topic partitions for a log line: ``{"topics": {name: [0, 1]}}``."""
    topics: dict[str, list[int]] = {}
    for tp in tps:
        topics.setdefault(tp.topic, []).append(tp.partition)
    return {"topics": {name: sorted(parts) for name, parts in sorted(topics.items())}}


def assigned_inputs(worker: Worker) -> set[int]:
    """Return the input partitions assigned to this worker."""
    names = set(worker.input_names)
    return {
        tp.partition for tp in worker.app.consumer.assignment() if tp.topic in names
    }


def set_aside_letter(message: Any, source: Source, failure: str) -> dict[str, Any]:
    """Build the dead letter of a message whose processing raised before."""
    rejection = Rejection(
        "body",
        "processing_failed",
        f"body: processing this message raised {failure}; it was set aside so "
        "its partition goes on, and the error is a bug to report",
    )
    return dead_letter(
        message.value, source, rejection, claimed_event_id(message.value)
    )


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
        canonical_url=settings.web_url_or_default(),
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 5),
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        # Messages are never acknowledged to Faust, so waiting for the stream
        # to empty at a rebalance would never end, and Faust commits nothing.
        # The agent commits what the merge released (see Worker._commit).
        stream_wait_empty=False,
        broker_commit_livelock_soft_timeout=24 * 3600.0,
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
    names = [settings.topic(t) for t in INPUT_TOPICS_IN_ORDER]
    ticks_topic = app.topic(
        settings.topic(TOPIC_TICKS), partitions=settings.partitions, **raw
    )
    if settings.clock == "wall":
        names.append(ticks_topic.get_topic_name())
    input_topic = app.topic(*names, partitions=settings.partitions, **raw)
    worker = Worker(
        settings=settings,
        app=app,
        engine=Engine(load_config(settings.rules_file, settings.playbook_file)),
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
    # Faust's consumer pauses, and logs a warning, whenever more than 100
    # table writes wait in its producer buffer, its default limit. A batch
    # writes up to one row per changed customer, and the agent drains the
    # buffer itself before each commit.
    app.producer.buffer.max_messages = settings.batch_size
    _register(worker)
    return worker


def _register(worker: Worker) -> None:
    app, settings = worker.app, worker.settings

    @app.agent(worker.input_topic, name="score")
    async def score(stream: Any) -> AsyncIterator[None]:
        async for events in stream.noack_take(
            settings.batch_size, settings.batch_timeout_s
        ):
            await worker.process(list(events))
            yield None

    register_pages(worker)

    @app.timer(settings.merge_hold_s / 2)
    async def release_held() -> None:
        await worker.release_held()

    @app.on_partitions_revoked.connect
    async def on_revoked(app: faust.App, revoked: Any, **_: Any) -> None:
        log.info("partitions_revoked", **partitions_by_topic(revoked))
        await worker.forget({tp.partition for tp in revoked})

    @app.on_partitions_assigned.connect
    async def on_assigned(app: faust.App, assigned: Any, **_: Any) -> None:
        log.info("partitions_assigned", **partitions_by_topic(assigned))

    @app.on_rebalance_complete.connect
    async def on_rebalance_complete(app: faust.App, **_: Any) -> None:
        log.info("rebalance_completed", partitions=sorted(assigned_inputs(worker)))

    @app.task
    async def started() -> None:
        # Faust runs app tasks once, after the first table recovery.
        log.info("worker_started", partitions=sorted(assigned_inputs(worker)))

    @app.on_before_shutdown.connect
    async def on_shutdown(app: faust.App, **_: Any) -> None:
        log.info("worker_stopping")

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

    gauges.register(worker)
