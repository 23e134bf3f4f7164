"""Metric names in PromQL expressions, dashboards and rules, and in a /metrics page.

The tokenizer is deliberately small. First it removes what cannot contain a
metric name: string literals, label matchers, range and subquery brackets,
grouping label lists and Grafana variables. Then it keeps each identifier
that is not a keyword and is not followed by ``(``, which marks a function or
an aggregation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "rules" / "riskstream.yml"
DASHBOARD_FILE = ROOT / "deploy" / "grafana" / "dashboards" / "riskstream.json"

SYNTHETIC_NAMES = frozenset({"up"})
"""Series that Prometheus writes for every target itself."""

KEYWORDS = frozenset(
    {
        "and", "or", "unless", "by", "without", "on", "ignoring",
        "group_left", "group_right", "offset", "bool", "inf", "nan",
    }
)  # fmt: skip

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_TOKEN = re.compile(r"(?P<number>\d[\w.]*)|(?P<name>[A-Za-z_:][\w:]*)")


def metric_names(expression: str) -> set[str]:
    """Return the metric names an expression selects.

    >>> sorted(metric_names('sum by (le) (rate(a_bucket{x="b(c)"}[5m])) / b'))
    ['a_bucket', 'b']
    """
    text = _GRAFANA_VARIABLE.sub(" ", _STRING.sub(" ", expression))
    text = _BRACKETS.sub(" ", _MATCHERS.sub(" ", text))
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _TOKEN.finditer(text):
        name = match.group("name")
        if name is None or name.lower() in KEYWORDS:
            continue
        if text[match.end() :].lstrip().startswith("("):
            continue
        names.add(name)
    return names


def exported_names(page: str) -> set[str]:
    """Return every series name a /metrics page offers, for all its families.

    A family without samples yet, such as a labelled counter that was never
    incremented, still counts, in all the forms that its type produces.
    """
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names = set()
    for family in text_string_to_metric_families(page):
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
        names.update(sample.name for sample in family.samples)
    return names


def dashboard_expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield ``(panel title, expression)`` for every query of a Grafana dashboard."""
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner["title"], target["expr"]


def rule_expressions(path: Path = RULES_FILE) -> Iterator[tuple[str, str]]:
    """Yield ``(rule name, expression)`` for every rule of a Prometheus rules file."""
    document = yaml.safe_load(path.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def grafana_to_promql(expression: str) -> str:
    """Replace the dashboard's Grafana variables so Prometheus can run the query."""
    return expression.replace("$__rate_interval", "1m").replace("$instance", ".*")
