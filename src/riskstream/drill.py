"""Drills: rehearse a rules or playbook change on a small scenario of events.

A scenario file (YAML) lists events as an ERP would publish them and,
optionally, the alerts they must raise. :func:`run_drill` replays the events
in process, exactly as ``riskstream replay`` does, moves the clock on to the
scenario's ``until`` time so that timer-driven signals fire, and compares the
alerts with the expected ones. Scenarios packaged with riskstream live in
``riskstream/scenarios``; ``riskstream drill NAME`` runs one by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from riskstream.config import ScoringConfig
from riskstream.drivers.replay import ReplayResult, replay
from riskstream.errors import ConfigError
from riskstream.lifecycle import STATUSES
from riskstream.playbook import Owner, Severity
from riskstream.yamlfile import read_yaml, validation_error

SCENARIO_FOLDER = "scenarios"


class ExpectedAlert(BaseModel):
    """Fields one alert must have; a field left out is not compared."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_id: str | None = None
    signal_kind: str | None = None
    status: Literal[STATUSES] | None = None  # type: ignore[valid-type]
    raised_at: AwareDatetime | None = None
    kind: Literal["rule_fired", "level_raised"] | None = None
    rules_fired: list[str] | None = None
    severity: Severity | None = None
    level: Severity | None = None
    risk_score: float | None = None
    owner: Owner | None = None
    recommended_actions: list[str] | None = None
    acted_by: str | None = None


class Scenario(BaseModel):
    """A drill: events in, the alerts they must raise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    until: AwareDatetime | None = None
    """Time the clock moves on to after the last event, firing the crossings
    (overdue invoices, orders that do not come) up to it."""
    partitions: int = Field(1, ge=1)
    events: list[dict[str, Any]] = Field(min_length=1)
    expect: list[ExpectedAlert] | None = None
    """The alerts in the order they are raised; None only prints them."""
    expect_dead_letters: list[str] = Field(default_factory=list)
    """The rule of every event that must be dead-lettered, in order."""


@dataclass
class DrillResult:
    """The outputs of a drill and their differences from the expected alerts."""

    scenario: Scenario
    result: ReplayResult
    mismatches: list[str] = field(default_factory=list)

    @property
    def checked(self) -> bool:
        """Whether the scenario states the alerts it expects."""
        return self.scenario.expect is not None

    @property
    def passed(self) -> bool:
        """Whether every expectation held."""
        return not self.mismatches


def packaged_scenarios() -> list[str]:
    """Return the names of the scenarios packaged with riskstream."""
    folder = resources.files("riskstream").joinpath(SCENARIO_FOLDER)
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def scenario_path(value: str) -> Path | str:
    """Resolve a scenario argument: a file path, or a packaged scenario's name.

    Returns the path, or the packaged file's name relative to the package.

    Raises:
        ConfigError: ``value`` is neither a file nor a packaged scenario.
    """
    path = Path(value)
    if path.is_file():
        return path
    if value in packaged_scenarios():
        return f"{SCENARIO_FOLDER}/{value}.yaml"
    names = ", ".join(packaged_scenarios())
    raise ConfigError(
        f"{value}: no such scenario file, and no packaged scenario has that "
        f"name; pass a YAML file or one of: {names}"
    )


def load_scenario(value: str) -> Scenario:
    """Load and validate a scenario file or packaged scenario.

    Raises:
        ConfigError: the file is missing, not YAML, or breaks a rule; the
            message names the file, the line and the field.
    """
    where = scenario_path(value)
    if isinstance(where, Path):
        name, document, data = read_yaml(where, "", "scenario file")
    else:
        name, document, data = read_yaml(None, where, "scenario file")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise validation_error(name, document, exc) from None


def run_drill(scenario: Scenario, config: ScoringConfig) -> DrillResult:
    """Replay the scenario's events and compare the alerts with its expectations."""
    lines = [orjson.dumps(event) for event in scenario.events]
    until_s = None if scenario.until is None else int(scenario.until.timestamp())
    result = replay(lines, config, partitions=scenario.partitions, until_s=until_s)
    drill = DrillResult(scenario, result)
    if scenario.expect is not None:
        drill.mismatches.extend(compare_alerts(result.alerts, scenario.expect))
    rules = [letter["rule"] for letter in result.dead_letters]
    if scenario.expect is not None and rules != scenario.expect_dead_letters:
        drill.mismatches.append(
            f"dead letters: got rules {rules}, expected {scenario.expect_dead_letters}"
        )
    return drill


def compare_alerts(
    alerts: list[dict[str, Any]], expected: list[ExpectedAlert]
) -> list[str]:
    """Describe every difference between raised and expected alerts."""
    mismatches = []
    if len(alerts) != len(expected):
        mismatches.append(f"got {len(alerts)} alerts, expected {len(expected)}")
    for number, alert in enumerate(alerts[len(expected) :], start=len(expected) + 1):
        mismatches.append(
            f"alert {number}: not expected ({alert['signal_kind']} "
            f"{alert['status']}, {alert['severity']}, at {alert['raised_at']})"
        )
    for number in range(len(alerts) + 1, len(expected) + 1):
        mismatches.append(f"alert {number}: expected but not raised")
    pairs = zip(alerts, expected, strict=False)
    for number, (alert, wanted) in enumerate(pairs, start=1):
        for name, value in wanted.model_dump(exclude_none=True).items():
            actual = alert.get(name)
            if name == "raised_at":
                value = value.timestamp()
                actual = _timestamp(actual)
            if actual != value:
                raised = alert.get(name)
                expected_shown = getattr(wanted, name)
                if name == "raised_at":
                    expected_shown = expected_shown.isoformat()
                mismatches.append(
                    f"alert {number}: {name} is {raised!r}, expected {expected_shown!r}"
                )
    return mismatches


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    return datetime.fromisoformat(value).timestamp()


def format_drill(drill: DrillResult) -> list[str]:
    """Render a drill's alerts, dead letters and verdict as lines of text."""
    scenario = drill.scenario
    lines = [f"drill: {scenario.name} ({len(scenario.events)} events)"]
    if scenario.description:
        lines.append(f"  {scenario.description.strip()}")
    for number, alert in enumerate(drill.result.alerts, start=1):
        rules = ", ".join(alert["rules_fired"]) or "no rule"
        lines.append(
            f"{number:3}. {alert['raised_at']}  {alert['customer_id']}  "
            f"{alert['signal_kind']} {alert['status']} (alert "
            f"{alert['alert_id'][:8]}, update {alert['sequence']}), "
            f"{alert['severity']}, rules: {rules}, score "
            f"{alert['previous_score']} -> {alert['risk_score']} "
            f"({alert['previous_level']} -> {alert['level']})"
        )
        actions = "; ".join(alert["recommended_actions"]) or "no actions"
        lines.append(f"     owner {alert['owner']}: {actions}")
    if not drill.result.alerts:
        lines.append("  no alerts")
    for letter in drill.result.dead_letters:
        lines.append(f"  dead letter ({letter['rule']}): {letter['reason']}")
    if not drill.checked:
        lines.append("not checked: the scenario has no expect list")
    elif drill.passed:
        lines.append(f"passed: {len(drill.result.alerts)} alerts as expected")
    else:
        lines.append(f"FAILED, differences found: {len(drill.mismatches)}")
        lines.extend(f"  {mismatch}" for mismatch in drill.mismatches)
    return lines
