"""Figure and HTML table helpers shared by the demo report and the backtest.

Figures are built with :class:`matplotlib.figure.Figure` rather than pyplot,
so no global backend or figure registry is touched. Drawing needs the
``plots`` extra (``pip install 'riskstream[plots]'``).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from riskstream.errors import RiskstreamError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_COLOURS = {
    "low": "#9ecae1",
    "medium": "#fdae6b",
    "high": "#e6550d",
    "critical": "#a50f15",
}
PLOT_DPI = 110


class ReportError(RiskstreamError):
    """A report cannot be drawn, for example because matplotlib is missing."""


def check_plotting() -> None:
    """Raise :class:`ReportError` unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError(
            "matplotlib is not installed, and the report needs it; run "
            "pip install 'riskstream[plots]'"
        ) from None


def new_figure(width: float, height: float) -> Figure:
    """Create a figure of ``width`` by ``height`` inches with a constrained layout."""
    check_plotting()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=PLOT_DPI, layout="constrained")


def html_table(header: list[str], rows: list[list[Any]]) -> str:
    """Render a table with escaped cells.

    >>> html_table(["a"], [[1]])
    '<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>'
    """
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
