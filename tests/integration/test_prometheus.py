"""A real Prometheus server scraping real workers while events flow."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from riskstream.config import load_config
from riskstream.drivers.replay import ReplayResult, read_lines, replay
from riskstream.simulation import simulate, synthetic_orders

from ..promql import (
    DASHBOARD_FILE,
    SYNTHETIC_NAMES,
    dashboard_expressions,
    exported_names,
    grafana_to_promql,
    metric_names,
    rule_expressions,
)
from .kafka_tools import free_port, run_cli, wait_for_commits

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).parents[2] / "examples" / "events.jsonl"
LEVELS = ("low", "medium", "high", "critical")
OPEN_STATUSES = ("open", "acknowledged", "snoozed")
INPUT_PARTITIONS = 4 * 4
"""Four input topics of four partitions each."""


def create_topics(bootstrap: str, prefix: str) -> None:
    run_cli("topics", "--broker", f"kafka://{bootstrap}", "--topic-prefix", prefix)


def produce(path: Path, bootstrap: str, prefix: str) -> None:
    broker = f"kafka://{bootstrap}"
    run_cli("produce", str(path), "--broker", broker, "--topic-prefix", prefix)


def open_alerts(result: ReplayResult) -> dict[tuple[str, ...], float]:
    counts = Counter(
        (kind, alert.status)
        for state in result.states.values()
        for kind, alert in state.open_alerts.items()
        if alert.status in OPEN_STATUSES
    )
    return {key: float(count) for key, count in counts.items()}


def levels(result: ReplayResult) -> dict[tuple[str, ...], float]:
    counts = Counter(state.level for state in result.states.values())
    return {(level,): float(counts[level]) for level in LEVELS}


def lag_bounds(result: ReplayResult, start_s: float, end_s: float):
    """Return the least and greatest possible sum of the alerts' event-time lags."""
    raised = [
        datetime.fromisoformat(alert["raised_at"]).timestamp()
        for alert in result.alerts
    ]
    return (
        sum(max(0.0, start_s - at) for at in raised),
        sum(max(0.0, end_s - at) for at in raised),
    )


def metrics_page(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def assert_shows(prometheus, expression, expected, *labels, timeout_s=60):
    """Wait until Prometheus returns ``expected`` for a query, then assert it.

    Counters change at the end of each batch, gauges up to 5 s later, and
    Prometheus scrapes every second, so every check waits a little.
    """
    result = prometheus.wait_equal(expression, expected, *labels, timeout_s=timeout_s)
    assert result == expected, expression


def test_metrics_follow_sample_events(
    worker_factory, prometheus_factory, kafka_bootstrap, topic_prefix, tmp_path
):
    create_topics(kafka_bootstrap, topic_prefix)
    worker = worker_factory()
    prometheus = prometheus_factory(worker.metrics_port)
    assert_shows(prometheus, 'up{job="riskstream-worker"}', {(): 1.0})
    assert_shows(prometheus, 'riskstream_worker_info{clock="event"}', {(): 1.0})
    assert prometheus.query("sum(riskstream_events_consumed_total)") == {}

    expected = replay(read_lines(SAMPLE), load_config(), partitions=4)
    messages = sum(1 for _ in read_lines(SAMPLE))
    decoded = Counter(kind for (_, kind) in expected.consumed.elements())
    started_s = time.time()
    produce(SAMPLE, kafka_bootstrap, topic_prefix)
    wait_for_commits(worker)
    finished_s = time.time()

    assert_shows(prometheus, "sum(riskstream_events_consumed_total)", {(): messages})
    assert_shows(
        prometheus,
        "sum by (type) (riskstream_events_consumed_total)",
        {(kind,): count for kind, count in decoded.items()}
        | {("unknown",): messages - decoded.total()},
        "type",
    )
    assert_shows(
        prometheus,
        "sum by (rule) (riskstream_events_invalid_total)",
        {(rule,): count for rule, count in expected.invalid.items()},
        "rule",
    )
    assert_shows(
        prometheus, "riskstream_events_duplicate_total", {(): expected.duplicates}
    )
    assert_shows(
        prometheus, "riskstream_event_processing_seconds_count", {(): messages}
    )

    alerts = Counter(
        (alert["signal_kind"], alert["status"], alert["severity"])
        for alert in expected.alerts
    )
    assert_shows(
        prometheus,
        "sum by (signal_kind, status, severity) (riskstream_alerts_total)",
        dict(alerts),
        "signal_kind",
        "status",
        "severity",
    )
    assert_shows(
        prometheus,
        "riskstream_alert_event_time_lag_seconds_count",
        {(): len(expected.alerts)},
    )
    least, greatest = lag_bounds(expected, started_s, finished_s)
    lag_sum = prometheus.query("riskstream_alert_event_time_lag_seconds_sum")[()]
    assert least - 1 <= lag_sum <= greatest + 1

    expected_open = open_alerts(expected)
    assert expected_open, "the sample leaves alerts open"
    assert_shows(
        prometheus,
        "sum by (signal_kind, status) (riskstream_open_alerts) > 0",
        expected_open,
        "signal_kind",
        "status",
    )
    assert_shows(
        prometheus, "sum by (level) (riskstream_customers)", levels(expected), "level"
    )
    assert_shows(
        prometheus,
        'sum(riskstream_table_rows{table="customers"})',
        {(): len(expected.states)},
    )
    assert_shows(
        prometheus,
        "count by (table) (riskstream_table_rows)",
        {("customers",): 4, ("models",): 4},
        "table",
    )
    assert_shows(prometheus, "sum(riskstream_consumer_lag_messages)", {(): 0})
    assert_shows(
        prometheus, "count(riskstream_consumer_lag_messages)", {(): INPUT_PARTITIONS}
    )

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"{this is not json\n")
    produce(bad, kafka_bootstrap, topic_prefix)
    wait_for_commits(worker)

    assert_shows(
        prometheus,
        'riskstream_events_invalid_total{rule="invalid_json"}',
        {(): expected.invalid["invalid_json"] + 1},
    )
    assert_shows(
        prometheus,
        'sum(riskstream_events_consumed_total{type="unknown"})',
        {(): messages - decoded.total() + 1},
    )
    assert_shows(prometheus, "sum(riskstream_consumer_lag_messages)", {(): 0})


def test_gauges_follow_rebalance(
    worker_factory, prometheus_factory, kafka_bootstrap, topic_prefix, tmp_path
):
    path = tmp_path / "events.jsonl"
    events = simulate(synthetic_orders(16, days=150, seed=5), seed=5)
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))
    expected = replay(read_lines(path), load_config(), partitions=4)
    partitions_with_customers = {state.partition for state in expected.states.values()}
    assert partitions_with_customers == {0, 1, 2, 3}
    expected_open = open_alerts(expected)
    assert expected_open, "the simulation leaves alerts open"
    create_topics(kafka_bootstrap, topic_prefix)
    produce(path, kafka_bootstrap, topic_prefix)
    second_port = free_port()

    first = worker_factory(data_dir="first", log_name="first.log")
    prometheus = prometheus_factory(first.metrics_port, second_port)
    wait_for_commits(first)
    open_by_kind = "sum by (signal_kind, status) (riskstream_open_alerts) > 0"
    assert_shows(prometheus, open_by_kind, expected_open, "signal_kind", "status")
    assert_shows(
        prometheus,
        'count by (instance) (riskstream_table_rows{table="customers"})',
        {(f"127.0.0.1:{first.metrics_port}",): 4},
        "instance",
    )

    second = worker_factory(
        data_dir="second", log_name="second.log", metrics_port=second_port
    )
    owners = prometheus.wait_for(
        'count by (instance) (riskstream_table_rows{table="customers"})',
        "instance",
        until=lambda got: len(got) == 2 and sum(got.values()) == 4,
        timeout_s=120,
    )
    second.assert_running()
    assert len(owners) == 2, owners
    assert sum(owners.values()) == 4, owners

    assert_shows(
        prometheus,
        'count by (partition) (riskstream_table_rows{table="customers"})',
        {(str(partition),): 1 for partition in range(4)},
        "partition",
    )
    assert_shows(
        prometheus,
        'sum(riskstream_table_rows{table="customers"})',
        {(): len(expected.states)},
    )
    assert_shows(prometheus, open_by_kind, expected_open, "signal_kind", "status")
    assert_shows(
        prometheus, "sum by (level) (riskstream_customers)", levels(expected), "level"
    )
    assert_shows(
        prometheus,
        "count by (topic, partition) (riskstream_consumer_lag_messages) > 1",
        {},
    )
    assert_shows(
        prometheus, "count(riskstream_consumer_lag_messages)", {(): INPUT_PARTITIONS}
    )


def test_dashboard_and_rules_use_exported_metrics(
    worker_factory, prometheus_factory, kafka_bootstrap, topic_prefix
):
    create_topics(kafka_bootstrap, topic_prefix)
    worker = worker_factory()
    prometheus = prometheus_factory(worker.metrics_port)
    assert_shows(prometheus, 'up{job="riskstream-worker"}', {(): 1.0})
    exported = exported_names(metrics_page(worker.metrics_port))
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    panels = [
        ("panel", title, grafana_to_promql(expression))
        for title, expression in dashboard_expressions(dashboard)
    ]
    rules = [("rule", name, expression) for name, expression in rule_expressions()]
    expressions = panels + rules

    for kind, name, expression in expressions:
        unknown = metric_names(expression) - exported - SYNTHETIC_NAMES
        assert not unknown, f"{kind} {name!r} uses unexported {sorted(unknown)}"
        # Prometheus rejects an expression it cannot parse with status "error".
        prometheus.query(expression)

    groups = prometheus.wait_for_rules(
        until=lambda rules: rules and all(r["health"] == "ok" for r in rules)
    )
    assert {rule["name"] for rule in groups} == {name for name, _ in rule_expressions()}
    for rule in groups:
        assert rule["health"] == "ok", rule
