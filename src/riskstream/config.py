"""Scoring configuration: rules with thresholds, score levels and model weight.

The file is YAML (see ``config/rules.yaml`` in this package for the default).
Each rule names a signal kind, and the playbook file
(:mod:`riskstream.playbook`) gives the owner and actions of each kind and
severity. Errors name the file, the line and the rule that failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from riskstream.errors import ConfigError
from riskstream.playbook import Playbook, Severity, load_playbook
from riskstream.yamlfile import line_of, read_yaml, validation_error

SIGNALS = (
    "days_past_due",
    "overdue_amount",
    "late_payments_90d",
    "late_payments_365d",
    "partial_payments_90d",
    "failed_payments_90d",
    "utilisation",
    "exposure",
    "volume_30d",
    "volume_90d",
    "orders_30d",
    "orders_90d",
    "volume_ratio_90d",
    "days_since_last_order",
    "gap_ratio",
    "avg_days_to_pay",
    "overdue_1_30d",
    "overdue_31_60d",
    "overdue_61_90d",
    "overdue_over_90d",
    "days_to_pay_trend",
    "order_frequency_ratio",
    "category_shift",
    "complaints_90d",
    "serious_complaints_90d",
    "credit_score",
    "credit_score_change",
    "debt_ratio",
    "current_ratio",
    "negative_cash_flow",
    "profile_weight",
    "order_anomaly",
)
"""Names a rule's ``signal`` may take; :mod:`riskstream.features` computes them."""

SEVERITY_ORDER: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    """A transparent threshold rule on one signal."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    signal: Literal[SIGNALS]  # type: ignore[valid-type]
    op: Literal[">=", "<="]
    threshold: Annotated[float, Field(allow_inf_nan=False, strict=True)]
    points: Annotated[float, Field(ge=0, le=100)]
    severity: Severity
    signal_kind: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    """The playbook entry that gives the rule's owner and actions."""


class Levels(_Strict):
    """Lowest score of each risk level above ``low``."""

    medium: Annotated[float, Field(gt=0, le=100)]
    high: Annotated[float, Field(gt=0, le=100)]
    critical: Annotated[float, Field(gt=0, le=100)]

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if not self.medium < self.high < self.critical:
            raise ValueError("levels: must rise, medium < high < critical")
        return self

    def level_for(self, score: float) -> Severity:
        """Map a score from 0 to 100 to its level."""
        if score >= self.critical:
            return "critical"
        if score >= self.high:
            return "high"
        if score >= self.medium:
            return "medium"
        return "low"


class ModelWeight(_Strict):
    """Weight of the late-payment model in the score.

    The highest probability of an open invoice adds ``points`` times itself
    to the score once it reaches ``threshold``, and is then listed among the
    reasons with ``severity``.
    """

    points: Annotated[float, Field(ge=0, le=100)]
    min_updates: Annotated[int, Field(ge=0)]
    threshold: Annotated[float, Field(gt=0, lt=1)]
    severity: Severity = "medium"


class AlertPolicy(_Strict):
    """How open alerts resolve."""

    clear_for_hours: Annotated[float, Field(ge=0, le=24 * 90)] = 24.0
    """Hours an alert's rules must stay silent before it resolves, so a signal
    that flaps around its threshold keeps one alert."""


class ProfileWeights(_Strict):
    """Risk weights of industries and regions from ``customer.updated``.

    The ``profile_weight`` signal is the customer's industry weight times its
    region weight; a name missing from a table weighs 1.
    """

    industry: dict[str, Annotated[float, Field(gt=0, le=10)]] = {}
    region: dict[str, Annotated[float, Field(gt=0, le=10)]] = {}


class ScoringConfig(_Strict):
    """The whole rules file."""

    levels: Levels
    model: ModelWeight
    rules: list[Rule] = Field(min_length=1)
    alerts: AlertPolicy = AlertPolicy()
    profile_weights: ProfileWeights = ProfileWeights()
    playbook: Playbook

    @model_validator(mode="after")
    def _unique_names(self) -> ScoringConfig:
        names = [rule.name for rule in self.rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"rules: names must be unique, repeated {repeated}")
        for rule in self.rules:
            problem = self.playbook.missing(rule.signal_kind, rule.severity)
            if problem is not None:
                raise ValueError(f"rules: {rule.name}: {problem}")
        return self

    def thresholds_for(self, signal: str) -> list[float]:
        """Return the thresholds of every rule on ``signal``, ascending."""
        return sorted(r.threshold for r in self.rules if r.signal == signal)


def load_config(
    path: str | Path | None = None, playbook_path: str | Path | None = None
) -> ScoringConfig:
    """Load and validate a rules file and its playbook.

    ``None`` loads the packaged default of either file. Every rule's signal
    kind and severity must have a play in the playbook.

    Raises:
        ConfigError: a file is missing, not YAML, or breaks a rule.
    """
    playbook = load_playbook(playbook_path)
    name, document, data = read_yaml(path, "config/rules.yaml", "rules file")
    rules = data.get("rules") if isinstance(data, dict) else None
    if isinstance(rules, list):
        _check_rules(name, document, rules, playbook)
    if isinstance(data, dict) and "playbook" in data:
        line = line_of(document, ["playbook"])
        raise ConfigError(
            f"{name}:{line}: playbook: the playbook is a file of its own; pass "
            "it with --playbook-file (RISKSTREAM_PLAYBOOK_FILE)"
        )
    if isinstance(data, dict):
        data = {**data, "playbook": playbook}
    try:
        return ScoringConfig.model_validate(data)
    except ValidationError as exc:
        raise validation_error(name, document, exc) from None


def _check_rules(
    name: str, document: yaml.Node | None, rules: list[Any], playbook: Playbook
) -> None:
    """Reject repeated names, old owner fields and kinds the playbook lacks."""
    seen: set[object] = set()
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        rule_name = rule.get("name")
        if rule_name is not None and rule_name in seen:
            line = line_of(document, ["rules", index, "name"])
            raise ConfigError(
                f"{name}:{line}: rules.{index}.name: {rule_name!r} is used by "
                "an earlier rule; rule names must be unique"
            )
        seen.add(rule_name)
        which = f" (of {rule_name})" if isinstance(rule_name, str) else ""
        for moved in ("owner", "actions"):
            if moved in rule:
                line = line_of(document, ["rules", index, moved])
                raise ConfigError(
                    f"{name}:{line}: rules.{index}.{moved}{which}: owners and actions "
                    "are set per signal kind and severity in the playbook file; "
                    f"remove {moved} from the rule"
                )
        kind, severity = rule.get("signal_kind"), rule.get("severity")
        if isinstance(kind, str) and isinstance(severity, str):
            problem = playbook.missing(kind, severity)
            if problem is not None:
                line = line_of(document, ["rules", index, "signal_kind"])
                raise ConfigError(
                    f"{name}:{line}: rules.{index}.signal_kind{which}: {problem}"
                )
