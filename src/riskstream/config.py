"""Scoring configuration: rules with thresholds, score levels and model weight.

The file is YAML (see ``config/rules.yaml`` in this package for the default).
Errors name the file, the line and the rule that failed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from riskstream.errors import ConfigError

SIGNALS = (
    "days_past_due",
    "overdue_amount",
    "late_payments_90d",
    "late_payments_365d",
    "partial_payments_90d",
    "failed_payments_90d",
    "utilisation",
    "volume_30d",
    "volume_90d",
    "orders_30d",
    "orders_90d",
    "volume_ratio_90d",
    "days_since_last_order",
    "gap_ratio",
    "avg_days_to_pay",
)
"""Names a rule's ``signal`` may take; :mod:`riskstream.features` computes them."""

Severity = Literal["low", "medium", "high", "critical"]
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
    owner: Literal["sales", "finance", "legal", "operations"]
    actions: list[str] = Field(min_length=1)

    def fires(self, value: float | None) -> bool:
        """Compare ``value`` with the threshold; a missing value never fires."""
        if value is None:
            return False
        if self.op == ">=":
            return value >= self.threshold
        return value <= self.threshold


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
    """Weight of the late-payment model in the score."""

    points: Annotated[float, Field(ge=0, le=100)]
    min_updates: Annotated[int, Field(ge=0)]
    threshold: Annotated[float, Field(gt=0, lt=1)]


class ScoringConfig(_Strict):
    """The whole rules file."""

    levels: Levels
    model: ModelWeight
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> ScoringConfig:
        names = [rule.name for rule in self.rules]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"rules: names must be unique, repeated {repeated}")
        return self

    def thresholds_for(self, signal: str) -> list[float]:
        """Return the thresholds of every rule on ``signal``, ascending."""
        return sorted(r.threshold for r in self.rules if r.signal == signal)


def load_config(path: str | Path | None = None) -> ScoringConfig:
    """Load and validate a rules file; ``None`` loads the packaged default.

    Raises:
        ConfigError: the file is missing, not YAML, or breaks a rule.
    """
    if path is None:
        text = resources.files("riskstream").joinpath("config/rules.yaml").read_text()
        name = "riskstream/config/rules.yaml"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the rules file ({exc})") from None
        name = str(path)
    try:
        document = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML ({exc})") from None
    rules = data.get("rules") if isinstance(data, dict) else None
    if isinstance(rules, list):
        seen: set[object] = set()
        for index, rule in enumerate(rules):
            rule_name = rule.get("name") if isinstance(rule, dict) else None
            if rule_name is not None and rule_name in seen:
                line = _line_of(document, ["rules", index, "name"])
                raise ConfigError(
                    f"{name}:{line}: rules.{index}.name: {rule_name!r} is used by "
                    "an earlier rule; rule names must be unique"
                )
            seen.add(rule_name)
    try:
        return ScoringConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        location = [
            part for part in error["loc"] if not str(part).startswith("function")
        ]
        line = _line_of(document, location)
        where = ".".join(str(part) for part in location) or "top level"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}:{line}: {where}: {message}") from None


def _line_of(node: yaml.Node | None, location: list[int | str]) -> int:
    """Find the 1-based line of the YAML node at ``location``, or its nearest parent."""
    line = 1 if node is None else node.start_mark.line + 1
    for part in location:
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        else:
            child = None
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line
