"""The demo report's signal section: every rule, what it raised, distributions.

Each rule of the rules file gets a row: its signal, threshold and data
origin, the alerts it opened or escalated, and how many customers it fires
for at the end. A grid of histograms shows the final value of the main
signals across customers, with each rule's threshold marked, and a table
gives the quality of each partition's late-payment model.
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import Any

from riskstream.config import ScoringConfig
from riskstream.plotting import html_table, new_figure

PURCHASE_SIGNALS = frozenset(
    {
        "volume_30d",
        "volume_90d",
        "orders_30d",
        "orders_90d",
        "volume_ratio_90d",
        "days_since_last_order",
        "gap_ratio",
        "order_frequency_ratio",
        "order_anomaly",
        "category_shift",
    }
)
"""Signals computed from orders only, which are real in the CDNOW data set."""
DISTRIBUTION_SIGNALS = (
    "days_past_due",
    "utilisation",
    "late_payments_365d",
    "days_to_pay_trend",
    "volume_ratio_90d",
    "order_frequency_ratio",
    "gap_ratio",
    "order_anomaly",
    "credit_score",
    "debt_ratio",
    "current_ratio",
    "profile_weight",
)
"""Signals whose final values the report draws, four to a row."""
HISTOGRAM_BINS = 30


def rule_overview(
    alerts: list[dict[str, Any]],
    scores: dict[str, dict[str, Any]],
    config: ScoringConfig,
) -> list[dict[str, Any]]:
    """Describe each rule with the alerts it raised and the customers it fires for.

    An alert counts for a rule when the rule is among its ``rules_fired`` in
    an update that opens or escalates it.
    """
    raised = Counter(
        name
        for alert in alerts
        if alert["status"] in ("opened", "escalated")
        for name in alert["rules_fired"]
    )
    firing = Counter(name for score in scores.values() for name in score["firing"])
    return [
        {
            "rule": rule.name,
            "signal": rule.signal,
            "signal_kind": rule.signal_kind,
            "severity": rule.severity,
            "threshold": f"{rule.op} {rule.threshold:g}",
            "data": "real orders" if rule.signal in PURCHASE_SIGNALS else "simulated",
            "alerts": raised[rule.name],
            "customers_firing_at_end": firing[rule.name],
        }
        for rule in config.rules
    ]


def plot_signal_distributions(
    scores: dict[str, dict[str, Any]], config: ScoringConfig, path: Path
) -> Path:
    """Draw a histogram of each customer's final value of the main signals.

    Dashed lines mark the thresholds of the rules on each signal. A signal
    that is undefined for a customer, such as a ratio without a baseline, is
    left out of its histogram, and the title gives how many were.
    """
    columns = 4
    rows = -(-len(DISTRIBUTION_SIGNALS) // columns)
    figure = new_figure(12, 2.6 * rows)
    grid = figure.subplots(rows, columns, squeeze=False)
    for index, signal in enumerate(DISTRIBUTION_SIGNALS):
        axes = grid[index // columns][index % columns]
        values = [
            value
            for score in scores.values()
            if (value := score["signals"].get(signal)) is not None
        ]
        undefined = len(scores) - len(values)
        if values:
            axes.hist(values, bins=HISTOGRAM_BINS, color="#3182bd")
            axes.set_yscale("log")
        for rule in config.rules:
            if rule.signal == signal:
                axes.axvline(rule.threshold, color="#a50f15", linestyle="--")
        axes.set_title(f"{signal}\n({undefined} undefined)", fontsize="small")
        axes.tick_params(labelsize="x-small")
    for index in range(len(DISTRIBUTION_SIGNALS), rows * columns):
        grid[index // columns][index % columns].set_visible(False)
    figure.suptitle(
        f"Final signal values of {len(scores)} customers "
        "(log scale; dashed: rule thresholds)"
    )
    figure.savefig(path)
    return path


def render_signal_section(
    rules: list[dict[str, Any]], models: dict[str, dict[str, Any]], image: str
) -> str:
    """Build the HTML of the signal section.

    ``models`` contains each partition model's description, empty when the run
    went through a worker, whose models stay in its tables.
    """
    parts = [
        "<h2>Signals</h2>",
        "<p>Every rule of the rules file, the alerts it opened or escalated and "
        "the customers it fires for at the end. Rules on simulated data say "
        "nothing about the real customers.</p>",
        html_table(
            [
                "rule",
                "signal",
                "signal kind",
                "severity",
                "threshold",
                "data",
                "alerts",
                "customers firing at the end",
            ],
            [list(row.values()) for row in rules],
        ),
        f"<img src='{html.escape(image)}' alt='signal distributions'>",
        "<h2>Late-payment model (on simulated invoices)</h2>",
    ]
    if not models:
        parts.append(
            "<p>Not shown: the run went through a worker, which keeps its models "
            "in its tables; <code>riskstream explain</code> asks a worker for "
            "them.</p>"
        )
        return "\n".join(parts)
    names = [
        "updates",
        "scored_outcomes",
        "roc_auc",
        "log_loss",
        "mean_error",
        "error_drifts",
        "orders_scored_for_anomalies",
    ]
    parts.append(
        html_table(
            ["partition", *names],
            [
                [partition, *(_shown(model[name]) for name in names)]
                for partition, model in sorted(models.items())
            ],
        )
    )
    parts.append(
        "<p>ROC AUC and log loss are progressive: each invoice was scored at "
        "issue, before its outcome was learned. Error drifts count the changes "
        "ADWIN found in the model's error.</p>"
    )
    return "\n".join(parts)


def _shown(value: Any) -> Any:
    """Show an undefined model metric as such rather than as an empty cell."""
    return "not measured yet" if value is None else value
