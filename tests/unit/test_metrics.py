"""Unit tests of the worker's metric helpers, on prometheus-client's registry."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from riskstream_agents import metrics

from riskstream.runner import Batch


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def gauge_values(registry):
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
    }


def test_alert_lag_seconds():
    alert = {"raised_at": "2026-01-01T00:00:00Z"}

    lag = metrics.alert_lag_s(alert, 1767225600.0 + 3 * 86400)

    assert lag == 3 * 86400


def test_alert_lag_future_event_is_zero():
    alert = {"raised_at": "2030-01-01T00:00:00Z"}

    assert metrics.alert_lag_s(alert, 1767225600.0) == 0.0


def test_observe_alerts_counts_and_lags():
    alert = {
        "signal_kind": "overdue",
        "status": "opened",
        "severity": "high",
        "raised_at": "2026-01-01T00:00:00Z",
    }
    labels = {"signal_kind": "overdue", "status": "opened", "severity": "high"}
    before = sample("riskstream_alerts_total", **labels)
    count_before = sample("riskstream_alert_event_time_lag_seconds_count")
    day_bucket_before = sample(
        "riskstream_alert_event_time_lag_seconds_bucket", le="86400.0"
    )

    metrics.observe_alerts([alert, alert], 1767225600.0 + 7200)

    assert sample("riskstream_alerts_total", **labels) == before + 2
    assert sample("riskstream_alert_event_time_lag_seconds_count") == count_before + 2
    assert (
        sample("riskstream_alert_event_time_lag_seconds_bucket", le="86400.0")
        == day_bucket_before + 2
    )


def test_observe_batch_counts_events():
    batch = Batch()
    batch.consumed[("erp.orders", "order.placed")] += 3
    batch.invalid["invalid_json"] += 1
    batch.duplicates = 2
    consumed = {"topic": "erp.orders", "type": "order.placed"}
    before = sample("riskstream_events_consumed_total", **consumed)
    invalid_before = sample("riskstream_events_invalid_total", rule="invalid_json")
    duplicates_before = sample("riskstream_events_duplicate_total")
    batches_before = sample("riskstream_batch_processing_seconds_count")

    metrics.observe_batch(batch, 0.02)

    assert sample("riskstream_events_consumed_total", **consumed) == before + 3
    assert (
        sample("riskstream_events_invalid_total", rule="invalid_json")
        == invalid_before + 1
    )
    assert sample("riskstream_events_duplicate_total") == duplicates_before + 2
    assert sample("riskstream_batch_processing_seconds_count") == batches_before + 1


def test_observe_message_counts_undecodable():
    labels = {"topic": "erp.payments", "type": metrics.UNKNOWN_TYPE}
    before = sample("riskstream_events_consumed_total", **labels)
    timed_before = sample("riskstream_event_processing_seconds_count")

    metrics.observe_message("erp.payments", False, 0.0001)
    metrics.observe_message("erp.payments", True, 0.0001)

    assert sample("riskstream_events_consumed_total", **labels) == before + 1
    assert sample("riskstream_event_processing_seconds_count") == timed_before + 2


def test_publish_removes_missing_labels():
    registry = CollectorRegistry()
    gauge = Gauge("lag", "test gauge", ["partition"], registry=registry)
    metrics.publish(gauge, {("0",): 5, ("1",): 7})

    metrics.publish(gauge, {("0",): 0})

    assert gauge_values(registry) == {(("partition", "0"),): 0.0}


def test_publish_zero_absent_keeps_labels():
    registry = CollectorRegistry()
    gauge = Gauge("open", "test gauge", ["kind"], registry=registry)
    metrics.publish(gauge, {("overdue",): 2, ("exposure",): 1}, zero_absent=True)

    metrics.publish(gauge, {("overdue",): 1}, zero_absent=True)
    metrics.publish(gauge, {}, zero_absent=True)

    assert gauge_values(registry) == {
        (("kind", "exposure"),): 0.0,
        (("kind", "overdue"),): 0.0,
    }
