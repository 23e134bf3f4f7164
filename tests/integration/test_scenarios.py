"""The packaged drill scenarios through a worker on a real broker."""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson
import pytest

from riskstream.config import load_config
from riskstream.drill import Scenario, compare_alerts, load_scenario, packaged_scenarios
from riskstream.drivers.replay import replay
from riskstream.partitioning import partition_for

from .kafka_tools import read_topic, run_cli, wait_for_commits

pytestmark = pytest.mark.integration

PARTITIONS = 8
"""Enough partitions for each packaged scenario to have one of its own."""


def customer_in(base: str, partition: int) -> str:
    """Return a customer id derived from ``base`` that lands on ``partition``."""
    for number in itertools.count():
        candidate = f"{base}-{number}"
        if partition_for(candidate, PARTITIONS) == partition:
            return candidate
    raise AssertionError("unreachable")


def clock_event(partition: int, until: str) -> dict[str, Any]:
    """Build an event of a customer of its own that moves a partition's clock.

    A worker on event time fires a partition's crossings up to the time of its
    latest event, so this takes the place of the drill's ``until``.
    """
    return {
        "event_id": f"clock-{partition}",
        "type": "customer.updated",
        "customer_id": customer_in("clock", partition),
        "occurred_at": until,
        "name": "Clock",
        "credit_limit": "1000.00",
        "currency": "EUR",
        "payment_terms_days": 30,
    }


def isolated_input(
    scenarios: list[Scenario],
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Give each scenario a partition of its own, with its ``until`` as an event.

    Returns the events and, per scenario, the new customer id of each old one.
    """
    rows: list[dict[str, Any]] = []
    renames: list[dict[str, str]] = []
    for partition, scenario in enumerate(scenarios):
        names = {event["customer_id"] for event in scenario.events}
        rename = {name: customer_in(name, partition) for name in sorted(names)}
        renames.append(rename)
        rows.extend(
            {**event, "customer_id": rename[event["customer_id"]]}
            for event in scenario.events
        )
        if scenario.until is not None:
            until = scenario.until.isoformat().replace("+00:00", "Z")
            rows.append(clock_event(partition, until))
    return rows, renames


def test_scenarios_meet_expectations_on_worker(
    worker_factory, kafka_bootstrap, topic_prefix, tmp_path
):
    scenarios = [load_scenario(name) for name in packaged_scenarios()]
    assert len(scenarios) <= PARTITIONS
    rows, renames = isolated_input(scenarios)
    path = tmp_path / "scenarios.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    expected = replay(
        [orjson.dumps(row) for row in rows], load_config(), partitions=PARTITIONS
    )
    broker = f"kafka://{kafka_bootstrap}"
    prefix = ("--topic-prefix", topic_prefix)
    partitions = ("--partitions", str(PARTITIONS))
    run_cli("topics", "--broker", broker, *prefix, *partitions)
    run_cli("produce", str(path), "--broker", broker, *prefix, *partitions)

    worker = worker_factory(extra_args=list(partitions))
    wait_for_commits(worker)
    time.sleep(1.0)
    alerts = [
        orjson.loads(value)
        for _, value in read_topic(kafka_bootstrap, f"{topic_prefix}risk.alerts")
    ]
    letters = [
        orjson.loads(value)
        for _, value in read_topic(
            kafka_bootstrap, f"{topic_prefix}riskstream.deadletter"
        )
    ]

    published = {alert["update_id"]: alert for alert in alerts}
    assert sorted(published) == sorted(a["update_id"] for a in expected.alerts)
    for alert in expected.alerts:
        assert published[alert["update_id"]] == alert
    for scenario, rename in zip(scenarios, renames, strict=True):
        original = {new: old for old, new in rename.items()}
        own = [
            {**alert, "customer_id": original[alert["customer_id"]]}
            for alert in expected.alerts
            if alert["customer_id"] in original
        ]
        own_letters = [
            letter["rule"] for letter in letters if letter["source"]["key"] in original
        ]
        assert compare_alerts(own, scenario.expect or []) == [], scenario.name
        assert own_letters == scenario.expect_dead_letters, scenario.name
