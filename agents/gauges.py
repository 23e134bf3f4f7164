"""The worker's gauges, set every :data:`REFRESH_S` seconds from its state.

Customers by level and open alerts come from the worker's
:class:`~riskstream_agents.tally.StateTally`, table rows from the tally and
the ``models`` table, consumer lag from the Kafka consumer, and model quality
from the partitions' runners. After a rebalance, the series of partitions the
worker no longer owns are removed at the next refresh, so the sum over all
workers counts each partition once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from faust.types import TP
from riskstream_agents import metrics
from riskstream_agents.metrics import publish

from riskstream import __version__
from riskstream.state import CustomerState

if TYPE_CHECKING:
    from riskstream_agents.app import Worker

REFRESH_S = 5.0

log = structlog.get_logger("riskstream.worker")

MODEL_GAUGES = (
    (metrics.MODEL_UPDATES, "updates"),
    (metrics.MODEL_ROC_AUC, "roc_auc"),
    (metrics.MODEL_LOG_LOSS, "log_loss"),
    (metrics.MODEL_MEAN_ERROR, "mean_error"),
    (metrics.MODEL_DRIFTS, "error_drifts"),
)
"""Each model gauge with the key of its value in ``LatePaymentModel.describe``."""


def register(worker: Worker) -> None:
    """Describe the worker, then refresh its gauges every :data:`REFRESH_S`."""
    metrics.WORKER.info({"version": __version__, "clock": worker.settings.clock})

    drifts_seen: dict[str, int] = {}

    @worker.app.timer(REFRESH_S)
    async def refresh_gauges() -> None:
        await tally_owned_partitions(worker)
        refresh(worker)
        report_drifts(worker, drifts_seen)


def report_drifts(worker: Worker, seen: dict[str, int]) -> None:
    """Log a warning when a partition model's error drifted since the last look.

    ``seen`` keeps each partition's drift count from the previous call. The
    first look at a partition only records it, because its count may come
    from a checkpoint written before this worker started.
    """
    for partition, runner in worker.runners.items():
        described = runner.model.describe()
        drifts = described["error_drifts"]
        previous = seen.get(str(partition))
        seen[str(partition)] = drifts
        if previous is not None and drifts > previous:
            log.warning(
                "model_error_drift",
                partition=partition,
                error_drifts=drifts,
                mean_error=described["mean_error"],
                roc_auc=described["roc_auc"],
                updates=described["updates"],
            )


def refresh(worker: Worker) -> None:
    """Set every gauge from the worker's tally, runners, tables and consumer."""
    tally = worker.tally
    levels = tally.level_counts()
    publish(metrics.CUSTOMERS, {(level,): levels[level] for level in metrics.LEVELS})
    publish(metrics.OPEN_ALERTS, dict(tally.open_alert_counts()), zero_absent=True)

    rows = {
        ("customers", str(partition)): count
        for partition, count in tally.rows().items()
    }
    for partition, count in model_rows(worker).items():
        rows[("models", str(partition))] = count
    publish(metrics.TABLE_ROWS, rows)

    lag = consumer_lag(worker)
    publish(
        metrics.CONSUMER_LAG,
        {(tp.topic, str(tp.partition)): count for tp, count in lag.items()},
    )

    described = {
        str(partition): runner.model.describe()
        for partition, runner in worker.runners.items()
    }
    for gauge, key in MODEL_GAUGES:
        publish(
            gauge,
            {
                (partition,): d[key]
                for partition, d in described.items()
                if d[key] is not None
            },
        )


async def tally_owned_partitions(worker: Worker) -> None:
    """Count the states of owned partitions that the tally lacks.

    A partition that no message has reached since its assignment has no
    runner yet, so its states are read from the table here. Partitions the
    worker no longer owns leave the tally, in case a revocation was missed.
    """
    app = worker.app
    async with worker.lock:
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            return
        changelog = worker.customers.changelog_topic.get_topic_name()
        owned = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == changelog
        }
        worker.tally.drop(set(worker.tally.partitions) - owned)
        missing = sorted(owned - set(worker.tally.partitions))
        if not missing:
            return
        states = (CustomerState.from_bytes(raw) for raw in worker.customers.values())
        worker.tally.rebuild(missing, states)
        rows = worker.tally.rows()
        log.info(
            "partitions_counted",
            partitions=missing,
            customers=sum(rows[partition] for partition in missing),
        )


def consumer_lag(worker: Worker) -> dict[TP, int]:
    """Return, per assigned input partition, the messages after the commit.

    The lag is the high watermark of the consumer's last fetch minus the
    offset the worker committed, or, before its first commit, the offset the
    group had committed when the partition was assigned. A partition without
    a high watermark yet is left out.
    """
    consumer = worker.app.consumer
    names = set(worker.input_names)
    lag: dict[TP, int] = {}
    for tp in consumer.assignment():
        if tp.topic not in names:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - aiokafka raises IllegalStateError
            continue
        if highwater is None or highwater < 0:
            continue
        committed = worker.committed_to.get(tp)
        if committed is None:
            committed = consumer._committed_offset.get(tp)
        # NOTE: a partition without a committed offset counts from offset 0,
        # so records that retention deleted count as lag.
        lag[tp] = max(0, highwater - (committed or 0))
    return lag


def model_rows(worker: Worker) -> dict[int, int]:
    """Return the ``models`` table rows of each partition in the tally.

    The table's keys end in ``/PARTITION`` (see ``app.model_key``), and the
    table is one row per partition, so reading its keys is cheap.
    """
    rows = dict.fromkeys(worker.tally.partitions, 0)
    for key in worker.models.keys():
        partition = int(key.rsplit("/", 1)[1])
        if partition in rows:
            rows[partition] += 1
    return rows
