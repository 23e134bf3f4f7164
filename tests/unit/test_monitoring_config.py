"""The Prometheus configuration, alerting rules and Grafana dashboard in deploy/."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from riskstream_agents import metrics  # noqa: F401 - registers the worker's metrics

from ..promql import (
    DASHBOARD_FILE,
    PROMETHEUS_DIR,
    ROOT,
    RULES_FILE,
    SYNTHETIC_NAMES,
    dashboard_expressions,
    exported_names,
    metric_names,
    rule_expressions,
)

GRAFANA_DIR = ROOT / "deploy" / "grafana"
OPERATIONS = ROOT / "docs" / "operations.md"


@pytest.fixture(scope="module")
def dashboard():
    return json.loads(DASHBOARD_FILE.read_text())


@pytest.fixture(scope="module")
def registry_names():
    return exported_names(generate_latest(REGISTRY).decode())


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param("up", {"up"}, id="bare-name"),
        pytest.param(
            'sum by (type) (rate(a_total{topic=~"erp.*"}[5m]))',
            {"a_total"},
            id="sum-by",
        ),
        pytest.param(
            "histogram_quantile(0.99, sum(rate(h_bucket[$__rate_interval])) by (le))",
            {"h_bucket"},
            id="quantile-grafana-interval",
        ),
        pytest.param(
            "sum by (rule) (rate(i_total[10m])) / ignoring (rule) group_left "
            "sum(rate(c_total[10m])) > 0.01",
            {"i_total", "c_total"},
            id="group-left",
        ),
        pytest.param(
            "a and on (instance) b{clock='wall'} unless c offset 1h30m",
            {"a", "b", "c"},
            id="set-operators-offset",
        ),
        pytest.param(
            'label_replace(m, "dst", "$1", "src", "(sum|rate)(x)")',
            {"m"},
            id="strings-with-parentheses",
        ),
        pytest.param(
            "max_over_time(deriv(lag[15m:1m])[1h:]) > bool 1e3 or vector(0)",
            {"lag"},
            id="subquery-bool-number",
        ),
        pytest.param(
            'count without (partition) (g{instance=~"$instance"}) == Inf',
            {"g"},
            id="without-variable-inf",
        ),
        pytest.param("ns:recorded:rate5m * 2", {"ns:recorded:rate5m"}, id="colons"),
    ],
)
def test_metric_names_parse(expression, expected):
    assert metric_names(expression) == expected


def test_exported_names_expand_types():
    registry = CollectorRegistry()
    Counter("c_total", "a counter", ["label"], registry=registry)
    Histogram("h_seconds", "a histogram", registry=registry)
    Gauge("g", "a gauge", registry=registry)
    Info("i", "an info", registry=registry).info({"version": "1"})

    names = exported_names(generate_latest(registry).decode())

    assert {"c_total", "h_seconds_bucket", "h_seconds_sum", "h_seconds_count"} <= names
    assert {"g", "i_info"} <= names
    assert "c" not in names
    assert "h_seconds" not in names


def test_dashboard_has_required_panels(dashboard):
    names = set()
    for _, expression in dashboard_expressions(dashboard):
        names |= metric_names(expression)

    for required in (
        "riskstream_events_consumed_total",
        "riskstream_event_processing_seconds_bucket",
        "riskstream_alert_event_time_lag_seconds_bucket",
        "riskstream_consumer_lag_messages",
        "riskstream_events_invalid_total",
        "riskstream_alerts_total",
        "riskstream_open_alerts",
        "riskstream_customers",
        "riskstream_model_roc_auc",
        "riskstream_model_log_loss",
    ):
        assert required in names, f"no panel shows {required}"


def test_dashboard_panels_query_prometheus(dashboard):
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]


def test_dashboard_metrics_exported(dashboard, registry_names):
    for title, expression in dashboard_expressions(dashboard):
        unknown = metric_names(expression) - registry_names - SYNTHETIC_NAMES
        assert not unknown, f"panel {title!r} uses unexported {sorted(unknown)}"


def test_rule_metrics_exported(registry_names):
    for name, expression in rule_expressions():
        unknown = metric_names(expression) - registry_names - SYNTHETIC_NAMES
        assert not unknown, f"rule {name} uses unexported {sorted(unknown)}"


def test_rules_have_severity_and_runbook():
    document = yaml.safe_load(RULES_FILE.read_text())
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }

    rules = [rule for group in document["groups"] for rule in group["rules"]]

    assert len(rules) >= 5
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        anchor = rule["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor == rule["alert"].lower()
        assert anchor in headings, f"docs/operations.md has no heading {anchor}"


def test_grafana_provisioning_paths():
    sources = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    providers = yaml.safe_load(
        (GRAFANA_DIR / "provisioning" / "dashboards" / "riskstream.yml").read_text()
    )

    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    assert sources["datasources"][0]["uid"] == "prometheus"
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def run_promtool(promtool, *args):
    result = subprocess.run(
        [promtool, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=PROMETHEUS_DIR,
    )
    assert result.returncode == 0, f"promtool {args}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def test_promtool_check_config(promtool):
    output = run_promtool(promtool, "check", "config", "prometheus.yml")

    assert "1 rule files found" in output


def test_promtool_check_rules(promtool):
    output = run_promtool(promtool, "check", "rules", "rules/riskstream.yml")

    assert "SUCCESS" in output


def test_promtool_rule_unit_tests(promtool):
    tests = sorted(str(path) for path in (PROMETHEUS_DIR / "tests").glob("*.yml"))

    assert tests
    output = run_promtool(promtool, "test", "rules", *tests)

    assert "SUCCESS" in output


def test_every_metric_documented():
    reference = OPERATIONS.read_text()
    forms = {"counter": "_total", "info": "_info"}

    families = [f for f in REGISTRY.collect() if f.name.startswith("riskstream_")]

    assert len(families) >= 19
    for family in families:
        name = family.name + forms.get(family.type, "")
        assert f"| `{name}` |" in reference, f"docs/operations.md lacks {name}"
