"""Unit tests of the worker's tally of levels and open alerts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from riskstream_agents.tally import OPEN_STATUSES, StateTally

from riskstream.config import load_config
from riskstream.drivers.replay import read_lines, replay
from riskstream.state import CustomerState, OpenAlert

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "events.jsonl"


@pytest.fixture(scope="module")
def sample_states() -> list[CustomerState]:
    return list(replay(read_lines(SAMPLE), load_config()).states.values())


def state_with(customer_id, partition, level, alerts):
    state = CustomerState(customer_id, partition=partition, level=level)
    for kind, status in alerts.items():
        state.open_alerts[kind] = OpenAlert(f"{customer_id}-{kind}", "high", 0, status)
    return state


def test_tally_matches_replay_states(sample_states):
    tally = StateTally()

    tally.rebuild(range(4), sample_states)

    expected_alerts = Counter(
        (kind, alert.status)
        for state in sample_states
        for kind, alert in state.open_alerts.items()
        if alert.status in OPEN_STATUSES
    )
    assert expected_alerts, "the sample leaves alerts open"
    assert tally.open_alert_counts() == expected_alerts
    assert tally.level_counts() == Counter(state.level for state in sample_states)
    assert sum(tally.rows().values()) == len(sample_states)


def test_rebuild_skips_other_partitions():
    states = [
        state_with("a", 0, "high", {"overdue": "open"}),
        state_with("b", 1, "low", {}),
    ]
    tally = StateTally()

    tally.rebuild([1], states)

    assert tally.rows() == {1: 1}
    assert tally.level_counts() == Counter({"low": 1})
    assert tally.open_alert_counts() == Counter()


def test_record_replaces_customer_counts():
    tally = StateTally()
    tally.rebuild([0], [state_with("a", 0, "medium", {"overdue": "open"})])

    tally.record([state_with("a", 0, "high", {"overdue": "acknowledged"})])

    assert tally.level_counts() == Counter({"high": 1})
    assert tally.open_alert_counts() == Counter({("overdue", "acknowledged"): 1})
    assert tally.rows() == {0: 1}


def test_record_counts_new_customer():
    tally = StateTally()
    tally.rebuild([0], [state_with("a", 0, "low", {})])

    tally.record([state_with("b", 0, "critical", {"exposure": "snoozed"})])

    assert tally.rows() == {0: 2}
    assert tally.level_counts() == Counter({"low": 1, "critical": 1})
    assert tally.open_alert_counts() == Counter({("exposure", "snoozed"): 1})


def test_closed_alert_not_counted():
    tally = StateTally()

    tally.rebuild([0], [state_with("a", 0, "high", {"overdue": "closed"})])

    assert tally.open_alert_counts() == Counter()


def test_resolved_alert_leaves_counts():
    tally = StateTally()
    tally.rebuild([0], [state_with("a", 0, "high", {"overdue": "open"})])

    tally.record([state_with("a", 0, "low", {})])

    assert tally.open_alert_counts() == Counter()
    assert tally.level_counts() == Counter({"low": 1})


def test_record_ignores_uncounted_partition():
    tally = StateTally()
    tally.rebuild([0], [])

    tally.record([state_with("a", 3, "high", {"overdue": "open"})])

    assert 3 not in tally.partitions
    assert tally.open_alert_counts() == Counter()


def test_drop_removes_partition_counts():
    tally = StateTally()
    tally.rebuild(
        [0, 1],
        [
            state_with("a", 0, "high", {"overdue": "open"}),
            state_with("b", 1, "medium", {"late_payments": "open"}),
        ],
    )

    tally.drop({0})

    assert tally.rows() == {1: 1}
    assert tally.level_counts() == Counter({"medium": 1})
    assert tally.open_alert_counts() == Counter({("late_payments", "open"): 1})
