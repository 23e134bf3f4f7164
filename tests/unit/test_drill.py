"""Unit tests for drills: packaged scenarios, expectations and scenario errors."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from riskstream.cli import main
from riskstream.config import load_config
from riskstream.drill import load_scenario, packaged_scenarios, run_drill
from riskstream.errors import ConfigError

PLAYBOOK = resources.files("riskstream").joinpath("config/playbook.yaml").read_text()


def scenario_text(name):
    return resources.files("riskstream").joinpath(f"scenarios/{name}.yaml").read_text()


def test_packaged_scenarios_listed():
    assert "overdue-escalation" in packaged_scenarios()
    assert len(packaged_scenarios()) >= 4


@pytest.mark.parametrize("name", packaged_scenarios())
def test_packaged_scenario_passes(name):
    drill = run_drill(load_scenario(name), load_config())

    assert drill.checked
    assert drill.mismatches == []
    assert drill.result.alerts != []


def test_playbook_change_fails_drill(tmp_path):
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(
        PLAYBOOK.replace("      owner: legal", "      owner: finance", 1)
    )
    config = load_config(None, playbook)

    drill = run_drill(load_scenario("overdue-escalation"), config)

    assert not drill.passed
    assert drill.mismatches == ["alert 3: owner is 'finance', expected 'legal'"]


def test_threshold_change_fails_drill(tmp_path):
    rules_text = resources.files("riskstream").joinpath("config/rules.yaml")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        rules_text.read_text().replace("threshold: 30\n", "threshold: 45\n")
    )

    drill = run_drill(load_scenario("overdue-escalation"), load_config(rules))

    assert (
        "alert 1: raised_at is '2026-03-21T09:00:00Z', expected "
        in (drill.mismatches[0])
    )


def test_missing_and_extra_alerts_listed(tmp_path):
    document = yaml.safe_load(scenario_text("overdue-escalation"))
    document["expect"] = document["expect"][:1]
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump(document))
    document["expect"] = document["expect"] * 5
    missing = tmp_path / "missing.yaml"
    missing.write_text(yaml.safe_dump(document))

    extra_drill = run_drill(load_scenario(str(extra)), load_config())
    missing_drill = run_drill(load_scenario(str(missing)), load_config())

    assert extra_drill.mismatches[0] == "got 4 alerts, expected 1"
    assert extra_drill.mismatches[1].startswith("alert 2: not expected (risk_level")
    assert "alert 5: expected but not raised" in missing_drill.mismatches


def test_unexpected_dead_letter_fails(tmp_path):
    document = yaml.safe_load(scenario_text("exposure-over-limit"))
    del document["expect_dead_letters"]
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(document))

    drill = run_drill(load_scenario(str(path)), load_config())

    assert drill.mismatches == [
        "dead letters: got rules ['customer_currency'], expected []"
    ]


def test_invalid_scenario_names_line(tmp_path):
    text = scenario_text("failed-payment").replace(
        "    severity: high", "    severity: urgent"
    )
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    line = text.splitlines().index("    severity: urgent") + 1

    with pytest.raises(ConfigError) as caught:
        load_scenario(str(path))

    assert f"{path}:{line}: expect.0.severity:" in str(caught.value)


def test_unknown_scenario_lists_packaged():
    with pytest.raises(ConfigError) as caught:
        load_scenario("no-such-drill")

    assert "overdue-escalation" in str(caught.value)


def test_drill_command_exit_status(tmp_path, capsys):
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(
        PLAYBOOK.replace("      owner: legal", "      owner: finance", 1)
    )

    passed = main(["drill", "overdue-escalation"])
    passed_output = capsys.readouterr().out
    failed = main(["drill", "overdue-escalation", "--playbook-file", str(playbook)])
    failed_output = capsys.readouterr().out
    unchecked = main(
        ["drill", "overdue-escalation", "--playbook-file", str(playbook), "--no-check"]
    )

    assert passed == 0
    assert "passed: 4 alerts as expected" in passed_output
    assert failed == 1
    assert "alert 3: owner is 'finance', expected 'legal'" in failed_output
    assert unchecked == 0


def test_drill_command_without_scenario(capsys):
    status = main(["drill"])

    assert status == 2
    assert "riskstream drill --list" in capsys.readouterr().err
