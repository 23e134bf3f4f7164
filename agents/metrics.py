"""Prometheus metrics of a worker, served by prometheus-client on their own port.

Labels are bounded: topic, event type, rule, signal kind, status, severity,
level, table and partition, never a customer id or an event id. Counters and
histograms change as the agent processes batches, and
:mod:`riskstream_agents.gauges` sets the gauges.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Info

from riskstream.playbook import RISK_LEVELS
from riskstream.runner import Batch

LEVELS = ("low", *RISK_LEVELS)
UNKNOWN_TYPE = "unknown"
"""The ``type`` label of a message that does not parse as a valid event."""

MINUTE_S, HOUR_S, DAY_S = 60, 3600, 86400
ALERT_LAG_BUCKETS_S = (
    1, 5, 15, 30, MINUTE_S, 5 * MINUTE_S, 15 * MINUTE_S, 30 * MINUTE_S,
    HOUR_S, 3 * HOUR_S, 6 * HOUR_S, 12 * HOUR_S,
    DAY_S, 2 * DAY_S, 4 * DAY_S, 7 * DAY_S, 14 * DAY_S, 30 * DAY_S,
)  # fmt: skip

EVENTS = Counter(
    "riskstream_events_consumed_total",
    "Input messages the worker processed, by topic and event type, with type "
    "'unknown' for a message that does not parse as a valid event",
    ["topic", "type"],
)
INVALID = Counter(
    "riskstream_events_invalid_total",
    "Messages sent to the dead-letter topic, by the rule they broke",
    ["rule"],
)
DUPLICATES = Counter(
    "riskstream_events_duplicate_total",
    "Events dropped because the customer's state has seen their event id or "
    "business id",
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
PROCESSING_FAILURES = Counter(
    "riskstream_processing_failures_total",
    "Batches whose processing raised: scope message when one message raised and "
    "was set aside for the dead-letter topic, batch when the failure belongs to "
    "no message and the batch is retried",
    ["scope"],
)
BATCH_SECONDS = Histogram(
    "riskstream_batch_processing_seconds",
    "Time to process one batch and write its outputs, table rows and offsets",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENT_SECONDS = Histogram(
    "riskstream_event_processing_seconds",
    "Time the scoring core spent on one message, including the time-driven "
    "checks it fired first. JSON parsing, sends and table writes are not "
    "included",
    buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.01, 0.1, 1),
)
ALERT_LAG_SECONDS = Histogram(
    "riskstream_alert_event_time_lag_seconds",
    "Wall-clock time an alert update was published minus its raised_at, the "
    "event time of the event or time-driven check that raised it. A replay of "
    "old data with --clock event gives lags of days or years, and lags over 30 "
    "days fall only in the +Inf bucket",
    buckets=ALERT_LAG_BUCKETS_S,
)
ALERTS = Counter(
    "riskstream_alerts_total",
    "Alert updates published, by signal kind, status and severity",
    ["signal_kind", "status", "severity"],
)
CUSTOMERS = Gauge(
    "riskstream_customers",
    "Customers in the partitions this worker owns, by risk level",
    ["level"],
)
OPEN_ALERTS = Gauge(
    "riskstream_open_alerts",
    "Open alerts of the customers in the partitions this worker owns, by signal "
    "kind and status (open, acknowledged, snoozed)",
    ["signal_kind", "status"],
)
TABLE_ROWS = Gauge(
    "riskstream_table_rows",
    "Rows of a table partition this worker owns",
    ["table", "partition"],
)
CONSUMER_LAG = Gauge(
    "riskstream_consumer_lag_messages",
    "Messages of an assigned input partition after the worker's committed "
    "offset: the high watermark minus the committed offset",
    ["topic", "partition"],
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
WORKER = Info("riskstream_worker", "Version and clock mode of the worker")

_published: dict[Gauge, set[tuple[str, ...]]] = {}
"""Label values each gauge was last given by :func:`publish`."""


def observe_batch(batch: Batch, seconds: float) -> None:
    """Count the events of one processed batch and record its duration."""
    for (topic, kind), count in batch.consumed.items():
        EVENTS.labels(topic, kind).inc(count)
    for rule, count in batch.invalid.items():
        INVALID.labels(rule).inc(count)
    if batch.duplicates:
        DUPLICATES.inc(batch.duplicates)
    if batch.redelivered:
        REDELIVERED.inc(batch.redelivered)
    BATCH_SECONDS.observe(seconds)


def observe_message(topic: str, decoded: bool, seconds: float) -> None:
    """Record the core's time on one message, and count it if it did not parse.

    The runner counts decoded events in :attr:`Batch.consumed` by type.
    """
    EVENT_SECONDS.observe(seconds)
    if not decoded:
        EVENTS.labels(topic, UNKNOWN_TYPE).inc()


def alert_lag_s(alert: Mapping[str, Any], published_s: float) -> float:
    """Return the seconds from an alert's ``raised_at`` to ``published_s``.

    A ``raised_at`` ahead of the wall clock, from an event dated in the future,
    counts as no lag.
    """
    raised_s = datetime.fromisoformat(alert["raised_at"]).timestamp()
    return max(0.0, published_s - raised_s)


def observe_alerts(alerts: Iterable[Mapping[str, Any]], published_s: float) -> None:
    """Count published alert updates and record their event-time lag."""
    for alert in alerts:
        ALERTS.labels(alert["signal_kind"], alert["status"], alert["severity"]).inc()
        ALERT_LAG_SECONDS.observe(alert_lag_s(alert, published_s))


def publish(
    gauge: Gauge,
    values: Mapping[tuple[str, ...], float],
    *,
    zero_absent: bool = False,
) -> None:
    """Set a labelled gauge to ``values`` and deal with label values left out.

    Label values published before and missing now are removed, or set to 0
    with ``zero_absent``. A scrape that runs during this call reads the old or
    the new value of each series that stays, and never misses one.
    """
    previous = _published.get(gauge, set())
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
    current = set(values)
    for labels in previous - current:
        if zero_absent:
            gauge.labels(*labels).set(0)
            current.add(labels)
        else:
            gauge.remove(*labels)
    _published[gauge] = current
