"""Prometheus metrics of a worker, served by prometheus-client on their own port.

Labels are bounded: topic, event type, rule, severity, level and partition,
never a customer id.
"""

from __future__ import annotations

from collections import Counter as TallyCounter
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram

from riskstream.runner import Batch

if TYPE_CHECKING:
    from riskstream_agents.app import Worker

EVENTS = Counter(
    "riskstream_events_consumed_total",
    "Decoded events consumed, including those rejected by a rule later",
    ["topic", "type"],
)
INVALID = Counter(
    "riskstream_events_invalid_total", "Events sent to the dead-letter topic", ["rule"]
)
DUPLICATES = Counter(
    "riskstream_events_duplicate_total", "Events dropped as already seen"
)
REDELIVERED = Counter(
    "riskstream_events_redelivered_total",
    "Messages read again after a restart or rebalance and skipped as applied",
)
DROPPED = Counter(
    "riskstream_deliveries_dropped_total",
    "Deliveries dropped before the merge: fetched during a rebalance or above "
    "the expected offset (both read again), or seen already",
    ["reason"],
)
BATCH_SECONDS = Histogram(
    "riskstream_batch_processing_seconds",
    "Time to process and write one batch",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENT_SECONDS = Histogram(
    "riskstream_event_processing_seconds",
    "Mean processing time per message within a batch",
    buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.01),
)
ALERTS = Counter(
    "riskstream_alerts_total",
    "Alert updates published",
    ["signal_kind", "status", "severity"],
)
CUSTOMERS = Gauge(
    "riskstream_customers", "Customers in this worker's partitions by level", ["level"]
)
MODEL_UPDATES = Gauge(
    "riskstream_model_updates", "Labels learned by the partition's model", ["partition"]
)
MODEL_ROC_AUC = Gauge(
    "riskstream_model_roc_auc",
    "Progressive ROC AUC of the partition's model",
    ["partition"],
)
MODEL_LOG_LOSS = Gauge(
    "riskstream_model_log_loss",
    "Progressive log loss of the partition's model",
    ["partition"],
)
MODEL_MEAN_ERROR = Gauge(
    "riskstream_model_mean_error",
    "Mean absolute error of the partition model's recent predictions (ADWIN)",
    ["partition"],
)
MODEL_DRIFTS = Gauge(
    "riskstream_model_error_drifts",
    "Changes in the partition model's error that ADWIN detected",
    ["partition"],
)


def observe_batch(batch: Batch, messages: int, seconds: float) -> None:
    """Count one processed batch."""
    for (topic, kind), count in batch.consumed.items():
        EVENTS.labels(topic, kind).inc(count)
    for rule, count in batch.invalid.items():
        INVALID.labels(rule).inc(count)
    if batch.duplicates:
        DUPLICATES.inc(batch.duplicates)
    if batch.redelivered:
        REDELIVERED.inc(batch.redelivered)
    BATCH_SECONDS.observe(seconds)
    if messages:
        EVENT_SECONDS.observe(seconds / messages)


def observe_alert(alert: dict[str, Any]) -> None:
    """Count one published alert."""
    ALERTS.labels(alert["signal_kind"], alert["status"], alert["severity"]).inc()


def register_gauges(worker: Worker) -> None:
    """Refresh the level and model gauges from the worker's runners every 15 s."""

    @worker.app.timer(15.0)
    async def refresh() -> None:
        levels = TallyCounter(worker.levels.values())
        for level in ("low", "medium", "high", "critical"):
            CUSTOMERS.labels(level).set(levels[level])
        for partition, runner in worker.runners.items():
            described = runner.model.describe()
            MODEL_UPDATES.labels(str(partition)).set(described["updates"])
            MODEL_ROC_AUC.labels(str(partition)).set(described["roc_auc"])
            MODEL_LOG_LOSS.labels(str(partition)).set(described["log_loss"])
            MODEL_MEAN_ERROR.labels(str(partition)).set(described["mean_error"])
            MODEL_DRIFTS.labels(str(partition)).set(described["error_drifts"])
