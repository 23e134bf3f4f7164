"""The packaged drill scenarios through a worker on a real broker."""

from __future__ import annotations

import time

import orjson
import pytest

from riskstream.config import load_config
from riskstream.drill import load_scenario, packaged_scenarios
from riskstream.drivers.replay import replay

from .kafka_tools import read_topic, run_cli, wait_for_commits

pytestmark = pytest.mark.integration


def test_scenarios_match_replay(
    worker_factory, kafka_bootstrap, topic_prefix, tmp_path
):
    # Every scenario uses its own customer, so one worker runs them all. A
    # worker on event time fires crossings only up to the last event, so the
    # comparison is with a replay that does not move the clock on further.
    rows = [
        event for name in packaged_scenarios() for event in load_scenario(name).events
    ]
    path = tmp_path / "scenarios.jsonl"
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    expected = replay([orjson.dumps(row) for row in rows], load_config(), partitions=4)
    broker = f"kafka://{kafka_bootstrap}"
    run_cli("topics", "--broker", broker, "--topic-prefix", topic_prefix)
    run_cli("produce", str(path), "--broker", broker, "--topic-prefix", topic_prefix)

    worker = worker_factory()
    wait_for_commits(worker)
    time.sleep(1.0)
    alerts = [
        orjson.loads(value)
        for _, value in read_topic(kafka_bootstrap, f"{topic_prefix}risk.alerts")
    ]
    published = {alert["update_id"]: alert for alert in alerts}
    rules = {rule for alert in alerts for rule in alert["rules_fired"]}
    letters = read_topic(kafka_bootstrap, f"{topic_prefix}riskstream.deadletter")

    assert sorted(published) == sorted(a["update_id"] for a in expected.alerts)
    for alert in expected.alerts:
        assert published[alert["update_id"]] == alert
    assert {
        "category_mix_shift",
        "credit_score_drop",
        "high_debt_ratio",
        "low_current_ratio",
        "negative_cash_flow",
        "serious_complaint",
        "exposure_over_limit",
        "failed_payments_90d",
    } <= rules
    assert [orjson.loads(value)["rule"] for _, value in letters] == [
        letter["rule"] for letter in expected.dead_letters
    ]
