"""Plots and the HTML report of the demo, drawn with matplotlib's Agg canvas.

Figures are built with :class:`matplotlib.figure.Figure` rather than pyplot,
so no global backend or figure registry is touched. Needs the ``plots`` extra
(``pip install 'riskstream[plots]'``).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from riskstream.config import ScoringConfig
from riskstream.plotting import (
    SEVERITIES,
    SEVERITY_COLOURS,
    html_table,
    new_figure,
)
from riskstream.report_signals import (
    PURCHASE_SIGNALS,
    plot_signal_distributions,
    render_signal_section,
)

if TYPE_CHECKING:
    from riskstream.backtest import BacktestResult, Row

ORIGIN_COLOURS = {"real orders": "#3182bd", "both": "#756bb1", "simulated": "#bdbdbd"}
RAISING_STATUSES = ("opened", "escalated")
"""Alert updates that raise an alert or its severity, as counted and plotted."""


def raising(alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the updates that open or escalate an alert."""
    return [alert for alert in alerts if alert["status"] in RAISING_STATUSES]


def alert_origin(alert: dict[str, Any], config: ScoringConfig) -> str:
    """Tell which data an alert rests on: ``real orders``, ``simulated``, or ``both``.

    A rule on a purchase signal rests on the real orders, every other rule and
    the late-payment model on simulated invoices, payments and credit limits.
    A ``level_raised`` alert, which fires no new rule, is judged by its reasons.
    """
    signal_of = {rule.name: rule.signal for rule in config.rules}
    names = alert["rules_fired"] or [reason["rule"] for reason in alert["reasons"]]
    real = [signal_of.get(name) in PURCHASE_SIGNALS for name in names]
    if real and all(real):
        return "real orders"
    if any(real):
        return "both"
    return "simulated"


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time as written by riskstream (``...Z``).

    >>> parse_time("1997-03-04T12:00:00Z").isoformat()
    '1997-03-04T12:00:00+00:00'
    """
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def week_start(moment: datetime) -> date:
    """Return the Monday of the ISO week of ``moment``.

    >>> week_start(parse_time("1997-01-01T12:00:00Z"))
    datetime.date(1996, 12, 30)
    """
    day = moment.date()
    return day - timedelta(days=day.weekday())


def alerts_per_week(
    alerts: list[dict[str, Any]], config: ScoringConfig | None = None
) -> dict[date, Counter[str]]:
    """Count alerts per week by severity, or by origin when ``config`` is given."""
    weeks: dict[date, Counter[str]] = {}
    for alert in alerts:
        week = week_start(parse_time(alert["raised_at"]))
        if config is None:
            group = alert["severity"]
        else:
            group = alert_origin(alert, config)
        weeks.setdefault(week, Counter())[group] += 1
    return dict(sorted(weeks.items()))


def plot_alerts_per_week(
    alerts: list[dict[str, Any]], config: ScoringConfig, path: Path
) -> Path:
    """Draw weekly alert counts, stacked by severity and by the data behind them."""
    figure = new_figure(9, 6)
    top, bottom = figure.subplots(2, 1, sharex=True)
    by_severity = alerts_per_week(alerts)
    by_origin = alerts_per_week(alerts, config)
    weeks = list(by_severity)
    for axes, counts, groups, colours in (
        (top, by_severity, SEVERITIES, SEVERITY_COLOURS),
        (bottom, by_origin, tuple(ORIGIN_COLOURS), ORIGIN_COLOURS),
    ):
        base = [0] * len(weeks)
        for group in groups:
            heights = [counts.get(week, Counter())[group] for week in weeks]
            if not any(heights):
                continue
            axes.bar(
                weeks,
                heights,
                width=6,
                bottom=base,
                color=colours[group],
                label=group,
                align="edge",
            )
            base = [b + h for b, h in zip(base, heights, strict=True)]
        axes.set_ylabel("alerts per week")
        axes.legend(loc="upper right", fontsize="small")
    top.set_title("Alerts per week by severity")
    bottom.set_title(
        "Alerts per week by the data they rest on "
        "(payment rules use simulated invoices and payments)"
    )
    figure.savefig(path)
    return path


def plot_levels(scores: dict[str, dict[str, Any]], path: Path) -> Path:
    """Draw how many customers end at each risk level, on a log scale."""
    figure = new_figure(6, 4)
    axes = figure.subplots()
    counts = Counter(score["level"] for score in scores.values())
    heights = [counts[level] for level in SEVERITIES]
    bars = axes.bar(
        SEVERITIES, heights, color=[SEVERITY_COLOURS[level] for level in SEVERITIES]
    )
    axes.bar_label(bars, labels=[str(h) for h in heights])
    if any(heights):
        axes.set_yscale("log")
    axes.set_ylabel("customers (log scale)")
    axes.set_title(f"Risk level of {len(scores)} customers at the end")
    figure.savefig(path)
    return path


def plot_customer(
    customer_id: str,
    orders: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    config: ScoringConfig,
    path: Path,
) -> Path:
    """Draw one customer's order amounts over time with its alerts marked.

    The upper panel has one row per rule: a marker for each alert that fired
    it, coloured by severity, filled when the rule rests on the real orders
    and hollow when it rests on simulated payments. The lower panel shows the
    orders.
    """
    figure = new_figure(9, 6)
    rules_axes, orders_axes = figure.subplots(2, 1, sharex=True, height_ratios=[1, 1.4])
    signal_of = {rule.name: rule.signal for rule in config.rules}
    rows: list[str] = []
    for alert in alerts:
        for name in alert["rules_fired"] or ["level raised"]:
            if name not in rows:
                rows.append(name)
    for alert in alerts:
        moment = parse_time(alert["raised_at"])
        colour = SEVERITY_COLOURS[alert["severity"]]
        for name in alert["rules_fired"] or ["level raised"]:
            if name == "level raised":
                real = alert_origin(alert, config) == "real orders"
            else:
                real = signal_of.get(name) in PURCHASE_SIGNALS
            rules_axes.plot(
                [moment],
                [rows.index(name)],
                "o",
                markersize=7,
                markeredgecolor=colour,
                markerfacecolor=colour if real else "white",
            )
    for severity in SEVERITIES:
        rules_axes.plot([], [], "o", color=SEVERITY_COLOURS[severity], label=severity)
    rules_axes.legend(loc="upper left", fontsize="x-small", ncols=len(SEVERITIES))
    rules_axes.set_yticks(range(len(rows)), rows, fontsize="small")
    rules_axes.set_ylim(-0.7, max(len(rows), 1) - 0.3)
    rules_axes.invert_yaxis()
    rules_axes.set_title(
        f"Alerts of {customer_id}: filled = rule on real orders, "
        "hollow = rule on simulated data"
    )

    times = [parse_time(order["occurred_at"]) for order in orders]
    amounts = [float(Decimal(order["amount"])) for order in orders]
    if orders:
        orders_axes.vlines(times, 0, amounts, color="#3182bd", linewidth=1.2)
        orders_axes.plot(times, amounts, "o", color="#3182bd", markersize=4)
    orders_axes.set_ylim(bottom=0)
    orders_axes.set_ylabel("order amount (USD)")
    orders_axes.set_title(f"Orders of {customer_id} (real CDNOW purchases)")
    figure.savefig(path)
    return path


def _counts_table(title: str, counts: dict[str, int]) -> str:
    rows = [[name, count] for name, count in counts.items()]
    return f"<h3>{html.escape(title)}</h3>" + html_table(["", "count"], rows)


_STYLE = """
body { font-family: sans-serif; max-width: 70em; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
.note { background: #fff7e6; border-left: 4px solid #fdae6b; padding: 0.5em 1em; }
img { max-width: 100%; }
"""


def render_html(
    summary: dict[str, Any],
    images: dict[str, str],
    customer: str | None,
    config: ScoringConfig,
) -> str:
    """Build the report page from the demo summary and the plot file names."""
    purchase_rules = [
        rule.name for rule in config.rules if rule.signal in PURCHASE_SIGNALS
    ]
    data = summary.get("data", {})
    events = summary["events_by_type"]
    simulated = sum(count for kind, count in events.items() if kind != "order.placed")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>riskstream demo on CDNOW</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>riskstream demo on the CDNOW purchase log</h1>",
        "<p class='note'><b>Simulated data.</b> Only the orders are real: "
        f"{events.get('order.placed', 0)} CDNOW purchases (1997-01-01 to "
        "1998-06-30). The other "
        f"{simulated} events (invoices, payments, failed payments, credit "
        "reports, financial statements, complaints and customer master data "
        "with credit limits, industries and regions) are <b>simulated</b> by "
        "riskstream.simulation and say so in their <code>source</code> field. "
        "Every alert on a payment, exposure, credit, financials, complaint or "
        "profile rule, and the late-payment model, rests on that simulation. "
        "CDNOW orders have no lines, so the category mix never shifts. Only "
        "the purchase rules ("
        f"{html.escape(', '.join(purchase_rules) or 'none configured')}) "
        "describe real customer behaviour.</p>",
        f"<p>Mode: {html.escape(str(summary['mode']))}. Seed of the simulation: "
        f"{html.escape(str(data.get('seed')))}. Purchases worth 0.00 skipped: "
        f"{html.escape(str(data.get('zero_value_purchases_skipped')))}.</p>",
        "<h2>Summary</h2>",
        html_table(
            ["", "count"],
            [
                ["events processed", summary["events"]],
                ["customers scored", summary["customers"]],
                ["alerts opened", summary["alerts"]],
                ["alert updates", summary["alert_updates"]],
            ],
        ),
        _counts_table("Events by type", events),
        _counts_table("Alerts by signal kind", summary["alerts_by_signal_kind"]),
        _counts_table("Alert updates by status", summary["alert_updates_by_status"]),
        _counts_table(
            "Opened or escalated alerts by severity", summary["alerts_by_severity"]
        ),
        _counts_table(
            "Alerts by the data they rest on (simulated = payment rules)",
            summary["alerts_by_origin"],
        ),
        _counts_table("Alerts by rule fired", summary["alerts_by_rule"]),
        _counts_table(
            "Customers by risk level at the end", summary["customers_by_level"]
        ),
        "<h2>Top customers by risk score</h2>",
        html_table(
            ["customer", "score", "level", "alerts", "reasons"],
            [
                [
                    row["customer_id"],
                    row["risk_score"],
                    row["level"],
                    row["alerts"],
                    "; ".join(row["reasons"]) or "no rule firing",
                ]
                for row in summary["top_customers"]
            ],
        ),
        "<h2>Plots</h2>",
        f"<img src='{images['alerts_per_week']}' alt='alerts per week'>",
        f"<img src='{images['levels']}' alt='customers by risk level'>",
    ]
    parts.append(
        render_signal_section(
            summary["signals"],
            summary["details"].get("models", {}),
            images["signals"],
        )
    )
    if "customer" in images:
        parts.append(
            f"<p>Purchase history of {html.escape(customer or '')}. The orders "
            "are real. Above them, each marker is an alert that opened or "
            "escalated, coloured by severity: filled when its rule rests on the "
            "real orders, hollow when it rests on simulated data.</p>"
            f"<img src='{images['customer']}' alt='purchase history'>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(
    out_dir: Path,
    summary: dict[str, Any],
    alerts: list[dict[str, Any]],
    scores: dict[str, dict[str, Any]],
    config: ScoringConfig,
    *,
    customer_id: str | None,
    customer_orders: list[dict[str, Any]],
) -> dict[str, Path]:
    """Draw the plots and write ``report.html`` into ``out_dir``; return the paths.

    The plots show the updates that open or escalate alerts.
    """
    alerts = raising(alerts)
    paths = {
        "alerts_per_week": plot_alerts_per_week(
            alerts, config, out_dir / "alerts-per-week.png"
        ),
        "levels": plot_levels(scores, out_dir / "levels.png"),
        "signals": plot_signal_distributions(
            scores, config, out_dir / "signal-distributions.png"
        ),
    }
    if customer_id is not None:
        own = [alert for alert in alerts if alert["customer_id"] == customer_id]
        paths["customer"] = plot_customer(
            customer_id, customer_orders, own, config, out_dir / "customer.png"
        )
    images = {name: path.name for name, path in paths.items()}
    report = out_dir / "report.html"
    report.write_text(
        render_html(summary, images, customer_id, config), encoding="utf-8"
    )
    paths["report"] = report
    return paths


def plot_precision_recall(result: BacktestResult, path: Path) -> Path:
    """Draw the backtest's precision against recall, curves and rule points.

    Scores are drawn as curves through their distinct values (with markers
    when there are few), rules and cut-offs as single points. The plot shows
    precision from 0.5 up. Points of the ``days_since_last_order`` rule are
    not labelled because they sit on the naive rule's points.
    """
    from riskstream.backtest import fmt

    figure = new_figure(10, 8)
    axes = figure.subplots()
    prevalence = result.lapsed / result.customers if result.customers else 0.0
    axes.axhline(
        prevalence,
        color="#999999",
        linestyle=":",
        label=f"share lapsed ({prevalence:.3f}): flag every customer",
    )
    curve_colours = ("#a50f15", "#fb6a4a", "#252525", "#3182bd", "#9ecae1")
    for row, colour in zip(result.score_rows, curve_colours, strict=False):
        axes.plot(
            [point[1] for point in row.curve],
            [point[2] for point in row.curve],
            color=colour,
            linewidth=1.2,
            marker="." if len(row.curve) < 50 else None,
            label=f"{row.predictor}: {row.setting}, ROC AUC {fmt(row.auc)}",
        )
    markers = {"volume_ratio_90d": "v", "gap_ratio": "s", "days_since_last_order": "D"}
    for signal, marker in markers.items():
        points = _pr_points(r for r in result.signal_rows if r.predictor == signal)
        if not points:
            continue
        axes.plot(
            [recall for recall, _, _ in points],
            [precision for _, precision, _ in points],
            marker=marker,
            linestyle="none",
            markersize=7,
            label=f"{signal} rule at the split",
        )
        if signal == "days_since_last_order":
            continue
        for recall, precision, name in points:
            axes.annotate(
                name.split(" ", 1)[1],
                (recall, precision),
                textcoords="offset points",
                xytext=(-18, 6),
                fontsize="x-small",
            )
    for rows, marker, colour, title in (
        (result.naive_rows, "o", "#252525", "naive rule, N days without an order"),
        (result.bgnbd_rows, "^", "#3182bd", "BG/NBD, P(alive) below a cut-off"),
    ):
        points = _pr_points(rows)
        axes.plot(
            [recall for recall, _, _ in points],
            [precision for _, precision, _ in points],
            marker=marker,
            color=colour,
            linestyle="none",
            markerfacecolor="white",
            markersize=7,
            label=title,
        )
        for recall, precision, name in points:
            axes.annotate(
                name,
                (recall, precision),
                textcoords="offset points",
                xytext=(6, -10),
                fontsize="x-small",
                color=colour,
            )
    axes.set_xlim(0, 1.02)
    axes.set_ylim(0.5, 1.0)
    axes.set_xlabel("recall (share of lapsed customers flagged)")
    axes.set_ylabel("precision (share of flagged customers who lapsed)")
    axes.set_title(
        f"CDNOW split at 1998-01-01: {result.customers} customers, "
        f"{result.lapsed} lapsed by 1998-06-30"
    )
    figure.legend(loc="outside lower center", fontsize="small", ncols=2)
    figure.savefig(path)
    return path


def _pr_points(rows: Iterable[Row]) -> list[tuple[float, float, str]]:
    """Return ``(recall, precision, name)`` of the rows that flag someone."""
    points = []
    for row in rows:
        recall, precision = row.result.recall, row.result.precision
        if recall is not None and precision is not None:
            points.append((recall, precision, row.name))
    return points
