"""Playbooks: the recommended actions and owning department of each alert.

A playbook file (YAML, ``config/playbook.yaml`` in this package by default)
maps each signal kind and severity to a play: the department that owns the
alert and the actions it should take. Rules name their signal kind, so a
credit team can change the actions of an alert without touching thresholds,
and rehearse the change with ``riskstream drill``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from riskstream.yamlfile import read_yaml, validation_error

Severity = Literal["low", "medium", "high", "critical"]
Owner = Literal["sales", "finance", "legal", "operations"]
KindName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]

RISK_LEVEL_KIND = "risk_level"
"""The signal kind of an alert raised by the score level alone, with no rule
firing; it needs a play for each level above ``low``."""
RISK_LEVELS = ("medium", "high", "critical")


class Play(BaseModel):
    """The owner and actions for one signal kind at one severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: Owner
    actions: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)


class Playbook(BaseModel):
    """Plays by signal kind and severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal_kinds: dict[KindName, dict[Severity, Play]]

    @model_validator(mode="after")
    def _complete(self) -> Playbook:
        for kind, plays in self.signal_kinds.items():
            if not plays:
                raise ValueError(
                    f"signal_kinds.{kind}: give a play for at least one severity"
                )
        levels = self.signal_kinds.get(RISK_LEVEL_KIND, {})
        absent = [level for level in RISK_LEVELS if level not in levels]
        if absent:
            raise ValueError(
                f"signal_kinds.{RISK_LEVEL_KIND}: missing plays for {absent}; "
                "they are used when the score level rises with no rule firing"
            )
        return self

    def play(self, kind: str, severity: str) -> Play:
        """Return the play of ``kind`` at ``severity``.

        Raises:
            KeyError: the playbook has no such play; :func:`load_playbook` and
                the rules file check prevent this for every configured rule.
        """
        return self.signal_kinds[kind][severity]  # type: ignore[index]

    def missing(self, kind: str, severity: str) -> str | None:
        """Describe why ``kind`` at ``severity`` has no play, or return None."""
        plays = self.signal_kinds.get(kind)
        if plays is None:
            known = ", ".join(sorted(self.signal_kinds))
            return (
                f"{kind!r} has no entry in the playbook (known: {known}); add "
                f"signal_kinds.{kind}.{severity} to the playbook file"
            )
        if severity not in plays:
            return (
                f"{kind!r} has no play for severity {severity!r} in the playbook; "
                f"add signal_kinds.{kind}.{severity} to the playbook file"
            )
        return None


def load_playbook(path: str | Path | None = None) -> Playbook:
    """Load and validate a playbook file; ``None`` loads the packaged default.

    Raises:
        ConfigError: the file is missing, not YAML, or breaks a rule; the
            message names the file, the line and the field.
    """
    name, document, data = read_yaml(path, "config/playbook.yaml", "playbook file")
    try:
        return Playbook.model_validate(data)
    except ValidationError as exc:
        raise validation_error(name, document, exc) from None
