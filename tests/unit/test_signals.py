"""Unit tests for the ageing, trend, frequency, mix, complaint, credit,
financial and profile signals and the rules that read them."""

from __future__ import annotations

import orjson
import pytest
import yaml

from riskstream.config import load_config
from riskstream.drivers.replay import replay
from riskstream.engine import Engine
from riskstream.features import category_shift, compute_signals, model_inputs
from riskstream.simulation import simulate, synthetic_orders
from riskstream.state import DAY_S, CustomerState


def epoch(moment):
    return int(moment.timestamp())


def run(engine, state, model, events, until=None):
    alerts = []
    for event in events:
        outcome = engine.step(state, event, model)
        assert outcome.rejection is None, outcome.rejection
        alerts.extend(outcome.alerts)
    if until is not None:
        alerts.extend(engine.advance(state, epoch(until), model).alerts)
    return alerts


def fired(alerts):
    return [rule for alert in alerts for rule in alert["rules_fired"]]


def reason(engine, state, rule):
    """Return the reason entry of ``rule`` in the state's assessment."""
    reasons = engine.assessment(state)["reasons"]
    return next(entry for entry in reasons if entry["rule"] == rule)


def unpaid_6000(engine, model, make_event, at):
    """Return the state of a customer with 6,000.00 due on day 30, unpaid."""
    state = CustomerState("c1")
    run(
        engine,
        state,
        model,
        [
            make_event("customer.updated", at(0), credit_limit="100000.00"),
            make_event(
                "invoice.issued",
                at(0),
                invoice_id="i1",
                amount="6000.00",
                due_at=at(30),
            ),
        ],
    )
    return state


def test_ageing_buckets_move_with_time(engine, model, make_event, at):
    state = unpaid_6000(engine, model, make_event, at)
    buckets = ("overdue_1_30d", "overdue_31_60d", "overdue_61_90d", "overdue_over_90d")
    seen = {}

    for day in (30.5, 60, 61, 91, 121, 122):
        signals = compute_signals(state, epoch(at(day)))
        seen[day] = [signals[name] for name in buckets]

    assert seen[30.5] == [600000.0, 0.0, 0.0, 0.0]
    assert seen[60] == [600000.0, 0.0, 0.0, 0.0]
    assert seen[61] == [0.0, 600000.0, 0.0, 0.0]
    assert seen[91] == [0.0, 0.0, 600000.0, 0.0]
    assert seen[121] == [0.0, 0.0, 0.0, 600000.0]
    assert seen[122] == [0.0, 0.0, 0.0, 600000.0]


def test_aged_debt_fires_at_61_days(engine, model, make_event, at):
    state = unpaid_6000(engine, model, make_event, at)

    engine.advance(state, epoch(at(91)) - 1, model)
    before = list(state.firing)
    engine.advance(state, epoch(at(91)), model)

    assert "aged_debt_61_90d" not in before
    assert "aged_debt_61_90d" in state.firing
    assert state.clock_s == epoch(at(91))
    assert reason(engine, state, "aged_debt_61_90d")["value"] == 6000.0


def test_slower_payments_raise_trend(engine, model, make_event, at):
    events = [make_event("customer.updated", at(0), credit_limit="100000.00")]
    for number, (issued, paid) in enumerate(
        [(0, 10), (20, 30), (40, 50), (60, 70), (80, 125), (130, 175)]
    ):
        events.append(
            make_event(
                "invoice.issued",
                at(issued),
                invoice_id=f"i{number}",
                due_at=at(issued + 60),
            )
        )
        events.append(
            make_event(
                "payment.received",
                at(paid),
                payment_id=f"p{number}",
                invoice_id=f"i{number}",
            )
        )
    state = CustomerState("c1")

    alerts = run(engine, state, model, sorted(events, key=lambda e: e.occurred_at))
    trend = compute_signals(state, state.clock_s)["days_to_pay_trend"]

    assert trend >= 10
    assert "paying_slower" in fired(alerts)
    assert trend == pytest.approx(state.avg_days_to_pay - state.slow_days_to_pay)


def test_order_frequency_drop_fires(engine, model, make_event, at):
    # Weekly orders for 300 days, then one order a month.
    days = [*range(0, 300, 7), 310, 340]
    events = [make_event("customer.updated", at(0), credit_limit="100000.00")]
    events += [
        make_event("order.placed", at(day), order_id=f"o{day}", amount="50.00")
        for day in days
    ]
    state = CustomerState("c1")

    alerts = run(engine, state, model, events, until=at(360))
    drops = [a for a in alerts if "order_frequency_drop" in a["rules_fired"]]

    assert drops != []
    assert reason(engine, state, "order_frequency_drop")["value"] <= 0.5


def test_category_shift_distance():
    assert category_shift({}) is None
    assert category_shift({"a": [5.0, 5.0]}) == 0.0
    assert category_shift({"a": [0.0, 9.0], "b": [3.0, 0.0]}) == 1.0


def test_new_category_mix_fires(engine, model, make_event, at):
    def order(day, category):
        line = {"sku": "s1", "category": category, "quantity": 1, "amount": "100.00"}
        return make_event(
            "order.placed", at(day), order_id=f"o{day}", amount="100.00", lines=[line]
        )

    events = [make_event("customer.updated", at(0), credit_limit="100000.00")]
    events += [order(day, "tools") for day in range(0, 200, 10)]
    events += [order(day, "garden") for day in range(200, 230, 3)]
    state = CustomerState("c1")

    alerts = run(engine, state, model, events)
    shift = compute_signals(state, state.clock_s)["category_shift"]

    assert shift >= 0.5
    assert "category_mix_shift" in fired(alerts)
    assert set(state.categories) == {"tools", "garden"}


def test_complaints_count_and_expire(engine, model, make_event, at):
    events = [make_event("customer.updated", at(0))]
    events += [
        make_event("complaint.logged", at(day), severity=severity, category="delivery")
        for day, severity in ((1, "low"), (2, "medium"), (3, "high"))
    ]
    state = CustomerState("c1")

    alerts = run(engine, state, model, events, until=at(120))
    rules = fired(alerts)
    statuses = [a["status"] for a in alerts if a["signal_kind"] == "complaints"]

    assert "serious_complaint" in rules
    assert "complaints_90d" in rules
    assert statuses[0] == "opened"
    assert statuses[-1] == "resolved"
    assert compute_signals(state, epoch(at(120)))["complaints_90d"] == 0.0


def test_credit_report_score_and_drop(engine, model, make_event, at):
    events = [
        make_event("customer.updated", at(0)),
        make_event("credit_report.received", at(1), bureau="acme", score=70),
        make_event("credit_report.received", at(30), bureau="acme", score=50),
        make_event("credit_report.received", at(60), bureau="acme", score=25),
    ]
    state = CustomerState("c1")

    alerts = run(engine, state, model, events)
    signals = compute_signals(state, state.clock_s)

    assert signals["credit_score"] == 25.0
    assert signals["credit_score_change"] == -25.0
    assert "credit_score_drop" in fired(alerts)
    assert "credit_score_low" in fired(alerts)
    assert state.profile["credit_bureau"] == "acme"


def test_financial_ratios_fire(engine, model, make_event, at):
    report = make_event(
        "financials.reported",
        at(5),
        period_end="2025-12-31",
        total_assets="1000000",
        total_liabilities="900000",
        current_assets="200000",
        current_liabilities="400000",
        operating_cash_flow="-15000.50",
    )
    older = make_event(
        "financials.reported",
        at(6),
        period_end="2025-06-30",
        total_assets="1000000",
        total_liabilities="100000",
        current_assets="900000",
        current_liabilities="100000",
        operating_cash_flow="5000",
    )
    state = CustomerState("c1")

    alerts = run(engine, state, model, [make_event("customer.updated", at(0)), report])
    outcome = engine.step(state, older, model)
    signals = compute_signals(state, state.clock_s)

    assert signals["debt_ratio"] == 0.9
    assert signals["current_ratio"] == 0.5
    assert signals["negative_cash_flow"] == 1.0
    assert {"high_debt_ratio", "low_current_ratio", "negative_cash_flow"} <= set(
        fired(alerts)
    )
    assert outcome.duplicate


def test_profile_weight_from_table(model, make_event, at, tmp_path):
    rules = load_config().model_dump(mode="json", exclude={"playbook"})
    rules["profile_weights"] = {
        "industry": {"construction": 1.4},
        "region": {"XX": 1.2},
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    engine = Engine(load_config(path))
    state = CustomerState("c1")

    alerts = run(
        engine,
        state,
        model,
        [make_event("customer.updated", at(0), industry="construction", region="XX")],
    )

    assert engine.signals(state)["profile_weight"] == 1.68
    assert fired(alerts) == ["risky_profile"]


def test_unlisted_profile_weighs_one(engine, model, make_event, at):
    state = CustomerState("c1")
    run(
        engine, state, model, [make_event("customer.updated", at(0), industry="mining")]
    )

    assert engine.signals(state)["profile_weight"] == 1.0


def test_late_order_keeps_mix_time(engine, model, make_event, at):
    line = {"sku": "s1", "category": "tools", "quantity": 1, "amount": "10.00"}
    state = CustomerState("c1")
    run(
        engine,
        state,
        model,
        [
            make_event("customer.updated", at(0)),
            make_event("order.placed", at(10), order_id="o1", lines=[line]),
            make_event("order.placed", at(5), order_id="o2", lines=[line]),
        ],
    )

    assert state.categories_at_s == epoch(at(10))
    assert state.categories["tools"] == [2000.0, 2000.0]
    assert DAY_S == 86_400


def test_unusual_order_fires_then_expires(engine, model, make_event, at):
    # A steady weekly order of 100.00 teaches the partition's detector; an
    # order of 5,000.00 is then far in the tail of the amount deviations.
    events = [make_event("customer.updated", at(0), credit_limit="1000000.00")]
    events += [
        make_event("order.placed", at(day), order_id=f"o{day}", amount="100.00")
        for day in range(0, 7 * 70, 7)
    ]
    events.append(make_event("order.placed", at(490), order_id="big", amount="5000.00"))
    state = CustomerState("c1")

    alerts = run(engine, state, model, events, until=at(530))
    unusual = [a for a in alerts if a["signal_kind"] == "purchase_anomaly"]

    assert [a["status"] for a in unusual] == ["opened", "resolved"]
    assert unusual[0]["raised_at"] == "2027-05-06T00:00:00Z"
    values = {reason["rule"]: reason["value"] for reason in unusual[0]["reasons"]}
    assert values["unusual_order"] >= 0.999
    assert unusual[1]["raised_at"] == "2027-06-06T00:00:00Z"
    assert state.order_anomaly >= 0.999
    assert compute_signals(state, epoch(at(530)))["order_anomaly"] is None


def test_model_inputs_match_signals():
    orders = synthetic_orders(60, days=300, seed=4)
    lines = [orjson.dumps(event) for event in simulate(orders, seed=4)]
    states = replay(lines, load_config()).states.values()
    checked = 0

    for state in states:
        for offset_days in (0, 5, 40):
            now_s = state.clock_s + offset_days * DAY_S
            inputs = model_inputs(state, now_s)
            signals = compute_signals(state, now_s)
            assert inputs == {name: signals[name] for name in inputs}
            checked += 1

    assert checked == 180
