"""Unit tests for playbook files and the owners and actions alerts carry."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from riskstream.config import load_config
from riskstream.engine import Engine
from riskstream.errors import ConfigError
from riskstream.playbook import RISK_LEVEL_KIND, load_playbook
from riskstream.state import CustomerState

PACKAGED = resources.files("riskstream").joinpath("config/playbook.yaml").read_text()


def write_variant(tmp_path, original, replacement):
    """Write the packaged playbook with one line replaced; return the path."""
    assert original in PACKAGED
    path = tmp_path / "playbook.yaml"
    path.write_text(PACKAGED.replace(original, replacement, 1))
    return path


def reported_line(error, path):
    match = re.search(rf"{re.escape(str(path))}:(\d+):", str(error))
    assert match is not None
    return int(match.group(1))


def overdue_alerts(engine, model, make_event, at):
    """Return the alerts of an invoice left unpaid 31 days past due."""
    state = CustomerState("c1")
    for event in (
        make_event("customer.updated", at(0)),
        make_event("invoice.issued", at(0), due_at=at(30)),
    ):
        engine.step(state, event, model)
    return engine.advance(state, int(at(61).timestamp()), model).alerts


def test_packaged_playbook_covers_rules():
    config = load_config()

    for rule in config.rules:
        play = config.playbook.play(rule.signal_kind, rule.severity)
        assert play.actions != []
    for level in ("medium", "high", "critical"):
        assert config.playbook.play(RISK_LEVEL_KIND, level).owner


@pytest.mark.parametrize(
    ("original", "replacement", "words"),
    [
        pytest.param(
            "      owner: legal",
            "      owner: marketing",
            "signal_kinds.overdue.critical.owner",
            id="unknown-owner",
        ),
        pytest.param(
            "      actions: [review payment terms]",
            "      actions: []",
            "signal_kinds.late_payments.medium.actions",
            id="no-actions",
        ),
        pytest.param(
            "    critical:\n      owner: legal",
            "    severe:\n      owner: legal",
            "signal_kinds.overdue.severe",
            id="unknown-severity",
        ),
        pytest.param(
            "  risk_level:\n    medium:",
            "  risk_level:\n    low:",
            "missing plays for ['medium']",
            id="risk-level-incomplete",
        ),
        pytest.param(
            "      actions: [check for a payment dispute]",
            "      actions: [check for a payment dispute]\n      due: soon",
            "signal_kinds.partial_payments.medium.due",
            id="extra-field",
        ),
    ],
)
def test_invalid_playbook_names_field(tmp_path, original, replacement, words):
    path = write_variant(tmp_path, original, replacement)

    with pytest.raises(ConfigError) as caught:
        load_playbook(path)

    assert words in str(caught.value)
    assert str(path) in str(caught.value)


def test_invalid_playbook_reports_line(tmp_path):
    path = write_variant(tmp_path, "      owner: legal", "      owner: marketing")
    expected = PACKAGED.splitlines().index("      owner: legal") + 1

    with pytest.raises(ConfigError) as caught:
        load_playbook(path)

    assert reported_line(caught.value, path) == expected


def test_missing_playbook_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(None, tmp_path / "absent.yaml")

    assert "cannot read the playbook file" in str(caught.value)


def test_playbook_sets_alert_owner(tmp_path, model, make_event, at):
    path = write_variant(
        tmp_path,
        "      owner: finance\n      actions: [start collection, call",
        "      owner: operations\n      actions: [stop shipping, call",
    )
    engine = Engine(load_config(None, path))

    alert = overdue_alerts(engine, model, make_event, at)[0]

    assert alert["rules_fired"] == ["overdue_30d"]
    assert alert["owner"] == "operations"
    assert alert["recommended_actions"][0] == "stop shipping"


def test_level_alert_uses_level_play(engine, model, make_event, at):
    level_play = engine.config.playbook.play(RISK_LEVEL_KIND, "medium")

    alerts = overdue_alerts(engine, model, make_event, at)

    assert [alert["signal_kind"] for alert in alerts] == ["overdue", RISK_LEVEL_KIND]
    assert alerts[1]["level"] == "medium"
    assert alerts[1]["recommended_actions"] == level_play.actions
    assert alerts[1]["owner"] == level_play.owner


def test_reasons_name_signal_kind(engine, model, make_event, at):

    alert = overdue_alerts(engine, model, make_event, at)[0]

    assert alert["reasons"][0]["signal_kind"] == "overdue"
    assert alert["reasons"][0]["severity"] == "high"
