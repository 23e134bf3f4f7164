"""Unit tests for the alert lifecycle: open, escalate, resolve and operator actions."""

from __future__ import annotations

import pytest
import yaml

from riskstream.config import load_config
from riskstream.engine import Engine
from riskstream.errors import InvalidEvent
from riskstream.events import parse_event
from riskstream.state import CustomerState


def run(engine, state, model, events, until=None):
    """Step ``events`` into ``state``, then advance to ``until``; return alerts."""
    alerts = []
    for event in events:
        outcome = engine.step(state, event, model)
        assert outcome.rejection is None, outcome.rejection
        alerts.extend(outcome.alerts)
    if until is not None:
        alerts.extend(engine.advance(state, int(until.timestamp()), model).alerts)
    return alerts


def of_kind(alerts, kind):
    return [alert for alert in alerts if alert["signal_kind"] == kind]


@pytest.fixture
def overdue_customer(make_event, at):
    """Events of a customer with one invoice due on day 30, never paid."""
    return [
        make_event("customer.updated", at(0)),
        make_event("invoice.issued", at(0), invoice_id="i1", due_at=at(30)),
    ]


def test_repeat_keeps_one_alert(engine, model, make_event, at, overdue_customer):
    second = make_event("invoice.issued", at(5), invoice_id="i2", due_at=at(35))
    state = CustomerState("c1")

    alerts = run(engine, state, model, [*overdue_customer, second], until=at(80))
    overdue = of_kind(alerts, "overdue")

    assert [alert["status"] for alert in overdue] == ["opened"]
    assert list(state.open_alerts) == ["overdue", "risk_level"]


def test_escalation_keeps_alert_id(engine, model, at, overdue_customer):
    state = CustomerState("c1")

    alerts = run(engine, state, model, overdue_customer, until=at(125))
    overdue = of_kind(alerts, "overdue")

    assert [alert["status"] for alert in overdue] == ["opened", "escalated"]
    assert overdue[0]["alert_id"] == overdue[1]["alert_id"]
    assert overdue[0]["update_id"] != overdue[1]["update_id"]
    assert [alert["severity"] for alert in overdue] == ["high", "critical"]
    assert [alert["sequence"] for alert in overdue] == [1, 2]
    assert overdue[1]["opened_at"] == overdue[0]["raised_at"]


def test_paid_alert_resolves_after_clear_time(
    engine, model, make_event, at, overdue_customer
):
    payment = make_event("payment.received", at(70), invoice_id="i1")
    state = CustomerState("c1")

    alerts = run(engine, state, model, [*overdue_customer, payment], until=at(90))
    overdue = of_kind(alerts, "overdue")

    assert [alert["status"] for alert in overdue] == ["opened", "resolved"]
    assert overdue[1]["raised_at"] == "2026-03-13T00:00:00Z"
    assert overdue[1]["recommended_actions"] == []
    assert state.open_alerts == {}


def test_refire_within_clear_time_reopens_nothing(engine, model, make_event, at):
    # Utilisation flaps around the limit: over, under, over within hours.
    events = [
        make_event("customer.updated", at(0)),
        make_event("order.placed", at(1), order_id="o1", amount="1200.00"),
        make_event("order.cancelled", at(1, hours=3), order_id="o1"),
        make_event("order.placed", at(1, hours=6), order_id="o2", amount="1100.00"),
    ]
    state = CustomerState("c1")

    alerts = run(engine, state, model, events, until=at(3))
    exposure = of_kind(alerts, "exposure")

    assert [alert["status"] for alert in exposure] == ["opened"]
    assert state.open_alerts["exposure"].cleared_s is None


def test_clear_time_zero_resolves_at_once(model, make_event, at, tmp_path):
    rules = tmp_path / "rules.yaml"
    packaged = load_config().model_dump(mode="json", exclude={"playbook"})
    packaged["alerts"] = {"clear_for_hours": 0}
    rules.write_text(yaml.safe_dump(packaged))
    engine = Engine(load_config(rules))
    events = [
        make_event("customer.updated", at(0)),
        make_event("order.placed", at(1), order_id="o1", amount="1200.00"),
        make_event("order.cancelled", at(2), order_id="o1"),
    ]
    state = CustomerState("c1")

    alerts = run(engine, state, model, events)
    exposure = of_kind(alerts, "exposure")

    assert [alert["status"] for alert in exposure] == ["opened", "resolved"]
    assert exposure[1]["raised_at"] == "2026-01-03T00:00:00Z"


def open_overdue(engine, model, at, overdue_customer):
    """Return a state whose overdue alert opened on day 60, and that alert."""
    state = CustomerState("c1")
    alerts = run(engine, state, model, overdue_customer, until=at(61))
    return state, of_kind(alerts, "overdue")[0]


def test_acknowledge_publishes_update(engine, model, make_event, at, overdue_customer):
    state, opened = open_overdue(engine, model, at, overdue_customer)
    action = make_event(
        "alert.action", at(62), alert_id=opened["alert_id"], action="acknowledge"
    )

    alerts = run(engine, state, model, [action], until=at(125))
    overdue = of_kind(alerts, "overdue")

    assert [alert["status"] for alert in overdue] == ["acknowledged", "escalated"]
    assert overdue[0]["acted_by"] == "ops.jane"
    assert overdue[0]["alert_id"] == opened["alert_id"]
    assert overdue[0]["event_ids"] == [action.event_id]
    assert state.open_alerts["overdue"].status == "open"


def test_snooze_holds_escalation(engine, model, make_event, at, overdue_customer):
    state, opened = open_overdue(engine, model, at, overdue_customer)
    snooze = make_event(
        "alert.action",
        at(62),
        alert_id=opened["alert_id"],
        action="snooze",
        snooze_for="P90D",
    )

    alerts = run(engine, state, model, [snooze], until=at(160))
    overdue = of_kind(alerts, "overdue")

    assert [alert["status"] for alert in overdue] == ["snoozed", "snooze_ended"]
    assert overdue[1]["raised_at"] == "2026-06-02T00:00:00Z"
    assert overdue[1]["severity"] == "critical"
    assert overdue[1]["recommended_actions"][0] == "legal review"


def test_snooze_over_limit_invalid(event_bytes, at):
    raw = event_bytes("alert.action", at(1), action="snooze", snooze_for="P91D")

    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)

    assert caught.value.field == "snooze_for"
    assert caught.value.rule == "snooze_duration"


def test_operator_resolve_closes_until_escalation(
    engine, model, make_event, at, overdue_customer
):
    state, opened = open_overdue(engine, model, at, overdue_customer)
    resolve = make_event(
        "alert.action", at(62), alert_id=opened["alert_id"], action="resolve"
    )

    alerts = run(engine, state, model, [resolve], until=at(125))
    overdue = of_kind(alerts, "overdue")

    assert [alert["status"] for alert in overdue] == ["resolved", "opened"]
    assert overdue[0]["alert_id"] == opened["alert_id"]
    assert overdue[1]["alert_id"] != opened["alert_id"]
    assert overdue[1]["severity"] == "critical"


@pytest.mark.parametrize(
    ("alert_id", "rule"),
    [
        pytest.param("f" * 32, "unknown_alert", id="unknown"),
        pytest.param(None, "alert_resolved", id="already-resolved"),
    ],
)
def test_action_rejected_with_rule(
    engine, model, make_event, at, overdue_customer, alert_id, rule
):
    state, opened = open_overdue(engine, model, at, overdue_customer)
    target = alert_id or opened["alert_id"]
    if alert_id is None:
        run(
            engine,
            state,
            model,
            [make_event("alert.action", at(62), alert_id=target, action="resolve")],
        )
    action = make_event("alert.action", at(63), alert_id=target)

    outcome = engine.step(state, action, model)

    assert outcome.rejection is not None
    assert outcome.rejection.field == "alert_id"
    assert outcome.rejection.rule == rule
    assert target in outcome.rejection.message
    assert outcome.alerts == []


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        pytest.param(
            {"action": "snooze"}, "snooze_for", "snooze_duration", id="no-for"
        ),
        pytest.param(
            {"snooze_for": "PT1H"}, "snooze_for", "snooze_duration", id="for-on-ack"
        ),
        pytest.param({"action": "escalate"}, "action", "literal_error", id="action"),
        pytest.param(
            {"alert_id": "A1"}, "alert_id", "string_pattern_mismatch", id="id"
        ),
        pytest.param({"by": ""}, "by", "string_too_short", id="no-operator"),
    ],
)
def test_invalid_action_names_field(event_bytes, at, overrides, field, rule):
    raw = event_bytes("alert.action", at(1), **overrides)

    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)

    assert caught.value.field == field
    assert caught.value.rule == rule


def test_action_before_alert_rejected(engine, model, make_event, at, overdue_customer):
    state, opened = open_overdue(engine, model, at, overdue_customer)
    action = make_event("alert.action", at(59), alert_id=opened["alert_id"])

    outcome = engine.step(state, action, model)

    assert outcome.rejection is not None
    assert outcome.rejection.field == "occurred_at"
    assert outcome.rejection.rule == "action_before_alert"
    assert "which opened at 2026-03-02T00:00:00+00:00" in outcome.rejection.message
    assert state.open_alerts["overdue"].status == "open"
