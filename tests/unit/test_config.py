"""Unit tests for loading rules files in riskstream.config."""

from __future__ import annotations

import re
from importlib import resources

import pytest
from pydantic import ValidationError

from riskstream.config import SIGNALS, ScoringConfig, load_config
from riskstream.errors import ConfigError

RULES = """\
# Minimal valid rules file; tests replace one line.
levels:
  medium: 25
  high: 50
  critical: 75

model:
  points: 20
  min_updates: 20
  threshold: 0.5

rules:
  - name: overdue_30d
    signal: days_past_due
    op: ">="
    threshold: 30
    points: 25
    severity: high
    signal_kind: overdue
  - name: volume_drop
    signal: volume_ratio_90d
    op: "<="
    threshold: 0.5
    points: 15
    severity: medium
    signal_kind: purchase_volume
"""
LINES = RULES.splitlines()


def line_number(text):
    """Return the 1-based number of the line of ``RULES`` that equals ``text``."""
    return LINES.index(text) + 1


def with_line(text, replacement):
    """Return ``RULES`` with the line equal to ``text`` replaced."""
    lines = list(LINES)
    lines[line_number(text) - 1] = replacement
    return "\n".join(lines) + "\n"


def reported_line(error, path):
    match = re.search(rf"{re.escape(str(path))}:(\d+):", str(error))
    assert match is not None
    return int(match.group(1))


def test_packaged_rules_load():
    config = load_config()

    assert isinstance(config, ScoringConfig)
    assert config.rules != []
    assert all(rule.signal in SIGNALS for rule in config.rules)


def test_packaged_rules_match_file(tmp_path):
    text = resources.files("riskstream").joinpath("config/rules.yaml").read_text()
    copy = tmp_path / "rules.yaml"
    copy.write_text(text)

    assert load_config(copy) == load_config()


def test_minimal_rules_load(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)

    config = load_config(path)

    assert [rule.name for rule in config.rules] == ["overdue_30d", "volume_drop"]
    assert config.thresholds_for("days_past_due") == [30.0]


@pytest.mark.parametrize(
    ("original", "replacement", "first_line", "last_line"),
    [
        pytest.param(
            '    op: "<="',
            '    op: "<"',
            line_number('    op: "<="'),
            line_number('    op: "<="'),
            id="bad-op",
        ),
        pytest.param(
            "    signal: volume_ratio_90d",
            "    signal: volume_ratio_60d",
            line_number("    signal: volume_ratio_90d"),
            line_number("    signal: volume_ratio_90d"),
            id="unknown-signal",
        ),
        pytest.param(
            "  - name: volume_drop",
            "  - name: overdue_30d",
            line_number("  - name: volume_drop"),
            line_number("  - name: volume_drop"),
            id="duplicate-name",
        ),
        pytest.param(
            "  high: 50",
            "  high: 80",
            line_number("levels:"),
            line_number("  critical: 75"),
            id="levels-out-of-order",
        ),
        pytest.param(
            "    signal_kind: purchase_volume",
            "    signal_kind: volume_trend",
            line_number("    signal_kind: purchase_volume"),
            line_number("    signal_kind: purchase_volume"),
            id="kind-not-in-playbook",
        ),
        pytest.param(
            "    signal_kind: overdue",
            "    owner: finance",
            line_number("    signal_kind: overdue"),
            line_number("    signal_kind: overdue"),
            id="owner-in-rule",
        ),
    ],
)
def test_invalid_rules_report_line(
    tmp_path, original, replacement, first_line, last_line
):
    path = tmp_path / "broken-rules.yaml"
    path.write_text(with_line(original, replacement))

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(path) in str(caught.value)
    assert first_line <= reported_line(caught.value, path) <= last_line


@pytest.mark.parametrize(
    ("original", "replacement", "words"),
    [
        pytest.param(
            '    op: "<="', '    op: "<"', "rules.1.op (of volume_drop)", id="bad-op"
        ),
        pytest.param(
            "    signal: volume_ratio_90d",
            "    signal: volume_ratio_60d",
            "rules.1.signal (of volume_drop)",
            id="unknown-signal",
        ),
        pytest.param(
            "  - name: volume_drop",
            "  - name: overdue_30d",
            "'overdue_30d'",
            id="duplicate-name",
        ),
        pytest.param(
            "  high: 50", "  high: 80", "medium < high < critical", id="levels"
        ),
        pytest.param(
            "    signal_kind: purchase_volume",
            "    signal_kind: volume_trend",
            "rules.1.signal_kind (of volume_drop): 'volume_trend' has no entry in",
            id="kind-not-in-playbook",
        ),
        pytest.param(
            "    severity: medium",
            "    severity: critical",
            "add signal_kinds.purchase_volume.critical",
            id="severity-without-play",
        ),
        pytest.param(
            "    signal_kind: overdue",
            "    owner: finance",
            "rules.0.owner (of overdue_30d): owners and actions are set",
            id="owner-in-rule",
        ),
    ],
)
def test_invalid_rules_name_the_rule(tmp_path, original, replacement, words):
    path = tmp_path / "broken-rules.yaml"
    path.write_text(with_line(original, replacement))

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert words in str(caught.value)


def test_missing_rules_file(tmp_path):
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value).startswith(f"{path}:")


def test_invalid_yaml_rejected(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("levels: [medium: 25\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert "invalid YAML" in str(caught.value)
    assert str(path) in str(caught.value)


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("levels:\n  medium: 25\n   high: 50\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert str(caught.value).startswith(f"{path}:3: invalid YAML:")


def test_playbook_inside_rules_rejected(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES + "playbook: {}\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert "--playbook-file" in str(caught.value)
    assert reported_line(caught.value, path) == len(LINES) + 1


def test_config_without_play_invalid():
    config = load_config()
    rule = config.rules[0].model_copy(update={"signal_kind": "unknown_kind"})
    data = config.model_dump() | {"rules": [rule.model_dump()]}

    with pytest.raises(ValidationError) as caught:
        ScoringConfig.model_validate(data)

    assert "'unknown_kind' has no entry in the playbook" in str(caught.value)
