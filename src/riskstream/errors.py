"""Errors raised by riskstream.

The tree::

    RiskstreamError
    ├── InvalidEvent        an input message breaks the event contract
    ├── ConfigError         a rules or settings file is invalid
    └── UsageError          a command-line argument is invalid
"""

from __future__ import annotations


class RiskstreamError(Exception):
    """Root of every error riskstream raises on purpose."""


class InvalidEvent(RiskstreamError):
    """An input message breaks the event contract.

    Attributes:
        field: dotted path of the offending field, or ``body``.
        rule: short machine-readable name of the rule that failed.
    """

    def __init__(self, field: str, rule: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.rule = rule

    @property
    def message(self) -> str:
        """The human-readable reason."""
        return str(self)


class ConfigError(RiskstreamError):
    """A rules or settings file is invalid; the message names file and rule."""


class UsageError(RiskstreamError):
    """A command-line argument is invalid; the message explains what to do."""
