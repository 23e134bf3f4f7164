"""Real data sets turned into riskstream events."""

from __future__ import annotations

from riskstream.errors import RiskstreamError


class DatasetError(RiskstreamError):
    """A data set file is missing or does not have the expected format."""
