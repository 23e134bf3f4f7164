"""The crossing schedule is complete: evaluating more often changes no alert.

Alerts depend only on which rules fire and on the level, so if every time
at which a rule's outcome can change is a crossing, extra evaluations in
between find nothing new. The check adds an evaluation at every midnight.
"""

from __future__ import annotations

import orjson
import pytest

from riskstream.config import load_config
from riskstream.drivers.replay import replay
from riskstream.engine import Engine
from riskstream.simulation import simulate, synthetic_orders
from riskstream.state import DAY_S


def alert_keys(alerts):
    """Return each alert's customer, time, rules and level, sorted.

    The order of alerts across customers may differ between schedules.
    """
    return sorted(
        (a["customer_id"], a["raised_at"], tuple(a["rules_fired"]), a["level"])
        for a in alerts
    )


@pytest.fixture(scope="module")
def lines():
    orders = synthetic_orders(80, days=400, seed=3)
    return [orjson.dumps(event) for event in simulate(orders, seed=3)]


def test_daily_evaluations_change_no_alert(lines, monkeypatch):
    config = load_config()
    scheduled = replay(lines, config)
    next_due = Engine.next_due

    def with_midnights(self, state):
        due = next_due(self, state)
        midnight = (state.clock_s // DAY_S + 1) * DAY_S
        return midnight if due is None else min(due, midnight)

    monkeypatch.setattr(Engine, "next_due", with_midnights)
    daily = replay(lines, config)

    assert len(scheduled.alerts) > 100
    assert alert_keys(daily.alerts) == alert_keys(scheduled.alerts)


def test_daily_evaluations_run_more_often(lines, monkeypatch):
    # Guards the check above: the patched schedule must really add evaluations.
    config = load_config()
    counts = {"evaluations": 0}
    evaluate = Engine.evaluate

    def counting(self, *args):
        counts["evaluations"] += 1
        return evaluate(self, *args)

    monkeypatch.setattr(Engine, "evaluate", counting)
    replay(lines, config)
    scheduled = counts["evaluations"]
    next_due = Engine.next_due
    monkeypatch.setattr(
        Engine,
        "next_due",
        lambda self, state: min(
            next_due(self, state) or 2**62, (state.clock_s // DAY_S + 1) * DAY_S
        ),
    )
    counts["evaluations"] = 0
    replay(lines, config)

    assert counts["evaluations"] > 2 * scheduled
