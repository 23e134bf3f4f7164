"""Tests of the backtest's metrics, labels and rule variants, and a small run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from riskstream import backtest
from riskstream.backtest import (
    Confusion,
    Variant,
    build_labels,
    confusion,
    dominated_by,
    first_alert_delays,
    median_or_none,
    pr_curve,
    roc_auc,
    variant_config,
)
from riskstream.config import load_config
from riskstream.datasets import DatasetError, cdnow
from riskstream.simulation import Order

DAY = 86_400


def order(customer: str, day: date) -> Order:
    placed = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return Order(customer, f"{customer}-{day}", placed, Decimal("10"), "USD", "cdnow")


# -- confusion, precision and recall -----------------------------------------


def test_confusion_counts() -> None:
    result = confusion(
        [True, True, True, False, False], [True, True, False, True, False]
    )
    assert result == Confusion(tp=2, fp=1, fn=1, tn=1)
    assert result.flagged == 3
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == pytest.approx(2 / 3)


def test_precision_none_when_nothing_flagged() -> None:
    result = confusion([False, False], [True, False])
    assert result.precision is None
    assert result.recall == 0.0


def test_recall_none_without_positives() -> None:
    result = confusion([True, False], [False, False])
    assert result.recall is None
    assert result.precision == 0.0


def test_confusion_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError):
        confusion([True], [True, False])


# -- ROC AUC -----------------------------------------------------------------


def test_auc_perfect_ranking() -> None:
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0


def test_auc_reversed_ranking() -> None:
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0


def test_auc_all_tied() -> None:
    assert roc_auc([1.0, 1.0, 1.0, 1.0], [False, True, False, True]) == 0.5


def test_auc_counts_ties_half() -> None:
    # Pairs (positive, negative): (0.5, 0.1) wins, (0.5, 0.5) ties,
    # (0.9, 0.1) and (0.9, 0.5) win, so 3.5 of 4.
    assert roc_auc([0.1, 0.5, 0.5, 0.9], [False, False, True, True]) == 0.875


def test_auc_matches_pair_count() -> None:
    scores = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0]
    labels = [True, False, True, False, False, True, False, True, True, False]
    positives = [s for s, label in zip(scores, labels, strict=True) if label]
    negatives = [s for s, label in zip(scores, labels, strict=True) if not label]
    wins = 0.0
    for positive in positives:
        for negative in negatives:
            if positive > negative:
                wins += 1.0
            elif positive == negative:
                wins += 0.5
    expected = wins / (len(positives) * len(negatives))
    assert roc_auc(scores, labels) == pytest.approx(expected)


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="at least one positive and one negative"):
        roc_auc([0.1, 0.2], [True, True])


def test_auc_rejects_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="2 scores but 1 labels"):
        roc_auc([0.1, 0.2], [True])


# -- precision-recall curve --------------------------------------------------


def test_pr_curve_groups_ties() -> None:
    curve = pr_curve([0.9, 0.5, 0.5, 0.1], [True, False, True, False])
    assert curve == [(0.9, 0.5, 1.0), (0.5, 1.0, 2 / 3), (0.1, 1.0, 0.5)]


def test_pr_curve_ends_at_everyone() -> None:
    curve = pr_curve([0.3, 0.2, 0.1], [False, True, True])
    threshold, recall, precision = curve[-1]
    assert threshold == 0.1
    assert recall == 1.0
    assert precision == pytest.approx(2 / 3)


# -- detection delay ---------------------------------------------------------


def test_delay_uses_first_alert_after_purchase() -> None:
    last = {"a": 10 * DAY}
    alerts = {"a": [5 * DAY, 40 * DAY, 30 * DAY]}
    assert first_alert_delays(last, alerts) == {"a": 20.0}


def test_delay_counts_alert_at_purchase() -> None:
    assert first_alert_delays({"a": DAY}, {"a": [DAY]}) == {"a": 0.0}


def test_delay_skips_customers_without_alert() -> None:
    last = {"a": 0, "b": 0, "c": 50 * DAY}
    alerts = {"a": [DAY // 2], "c": [10 * DAY]}
    assert first_alert_delays(last, alerts) == {"a": 0.5}


def test_delay_ignores_unknown_customers() -> None:
    assert first_alert_delays({"a": 0}, {"z": [DAY]}) == {}


def test_median_of_delays() -> None:
    assert median_or_none([90.0, 30.0, 60.0, 120.0]) == 75.0
    assert median_or_none([]) is None


# -- verdict against the naive rule ------------------------------------------


def test_dominated_needs_both_metrics() -> None:
    baselines = {"30 days": (0.80, 0.95), "90 days": (0.85, 0.90)}
    assert dominated_by((0.84, 0.91), baselines) == []
    assert dominated_by((0.84, 0.89), baselines) == ["90 days"]
    assert dominated_by((0.70, 0.50), baselines) == ["30 days", "90 days"]


def test_equal_point_not_dominated() -> None:
    assert dominated_by((0.85, 0.90), {"90 days": (0.85, 0.90)}) == []


def test_nothing_flagged_is_dominated() -> None:
    assert dominated_by((None, 0.0), {"90 days": (0.85, 0.90)}) == ["90 days"]
    assert dominated_by((0.9, 0.5), {"none": (None, 0.0)}) == []


# -- labels ------------------------------------------------------------------


def test_labels_lapsed_and_active() -> None:
    orders = [
        order("a", date(1997, 2, 1)),
        order("a", date(1997, 11, 30)),
        order("b", date(1997, 3, 1)),
        order("b", date(1998, 1, 1)),
        order("c", date(1997, 5, 1)),
        order("c", date(1998, 7, 1)),
        order("d", date(1998, 2, 1)),
    ]
    labels = build_labels(orders)
    assert labels.customers == ["a", "b", "c"]
    assert labels.lapsed == {"a": True, "b": False, "c": True}
    assert labels.last_purchase_day["a"] == date(1997, 11, 30)
    assert labels.last_purchase_s["a"] == int(
        datetime(1997, 11, 30, 12, tzinfo=UTC).timestamp()
    )
    assert len(labels.calibration) == 4


def test_labels_keep_latest_same_day() -> None:
    first = order("a", date(1997, 6, 1))
    second = Order(
        "a",
        "a-2",
        first.placed_at.replace(minute=1),
        Decimal("5"),
        "USD",
        "cdnow",
    )
    labels = build_labels([first, second])
    assert labels.last_purchase_s["a"] == int(second.placed_at.timestamp())


def test_naive_rule_counts_calendar_days() -> None:
    orders = [order("a", date(1997, 10, 3)), order("b", date(1997, 10, 2))]
    labels = build_labels(orders)
    rows, _ = backtest.naive_rows(labels)
    ninety = next(row for row in rows if row.name == "90 days")
    # 1997-10-03 is 90 days before 1998-01-01 and 1997-10-02 is 91 days.
    assert ninety.result == Confusion(tp=2, fp=0, fn=0, tn=0)
    hundred_twenty = next(row for row in rows if row.name == "120 days")
    assert hundred_twenty.result.flagged == 0


# -- rule variants -----------------------------------------------------------


def test_variant_changes_threshold() -> None:
    base = load_config()
    changed = variant_config(base, Variant("gap_ratio", "ordering_stopped", ">=", 5.0))
    rule = next(r for r in changed.rules if r.name == "ordering_stopped")
    assert rule.threshold == 5.0
    assert next(r for r in base.rules if r.name == "ordering_stopped").threshold == 3.0
    assert len(changed.rules) == len(base.rules)


def test_variant_adds_missing_rule() -> None:
    base = load_config()
    variant = Variant("days_since_last_order", "no_recent_order", ">=", 90.0)
    changed = variant_config(base, variant)
    rule = changed.rules[-1]
    assert rule.name == "no_recent_order"
    assert rule.signal == "days_since_last_order"
    assert rule.threshold == 90.0
    assert len(changed.rules) == len(base.rules) + 1
    assert changed.thresholds_for("days_since_last_order") == [90.0]


def test_variant_none_keeps_config() -> None:
    base = load_config()
    assert variant_config(base, None) is base


def test_variants_cover_each_signal() -> None:
    signals = {variant.signal for variant in backtest.VARIANTS}
    assert signals == {"volume_ratio_90d", "gap_ratio", "days_since_last_order"}


# -- on the real data --------------------------------------------------------


@pytest.fixture(scope="module")
def small_orders() -> list[Order]:
    try:
        return cdnow.load_orders(customers=400)
    except DatasetError as exc:
        pytest.skip(f"the CDNOW file is not installed: {exc}")


def test_bgnbd_one_day_alive(small_orders: list[Order]) -> None:
    labels = build_labels(small_orders)
    fit = backtest.fit_bgnbd(labels.calibration, date(1997, 12, 31), 181)
    days: dict[str, set[date]] = {}
    for customer, day in labels.calibration:
        days.setdefault(customer, set()).add(day)
    assert set(fit.p_alive) == set(labels.customers)
    assert all(0.0 <= p <= 1.0 for p in fit.p_alive.values())
    for customer, bought in days.items():
        if len(bought) == 1:
            assert fit.p_alive[customer] == pytest.approx(1.0)
    assert all(value >= 0.0 for value in fit.expected.values())
    assert set(fit.params) == {"r", "alpha", "a", "b"}


@pytest.fixture(scope="module")
def small_run(
    tmp_path_factory: pytest.TempPathFactory, small_orders: list[Order]
) -> tuple[Path, backtest.BacktestResult]:
    out = tmp_path_factory.mktemp("backtest") / "docs" / "backtest.md"
    result = backtest.run_backtest(out, customers=150, jobs=1, echo=lambda line: None)
    return out, result


def test_small_backtest_writes_report(
    small_run: tuple[Path, backtest.BacktestResult],
) -> None:
    out, result = small_run
    text = out.read_text(encoding="utf-8")
    assert out.with_name("backtest-pr.png").stat().st_size > 0
    assert "riskstream backtest --out docs/backtest.md --customers 150" in text
    assert "![Precision against recall of every predictor](backtest-pr.png)" in text
    assert len(result.signal_rows) == len(backtest.VARIANTS)
    assert [row.name for row in result.naive_rows] == [
        f"{days} days" for days in backtest.NAIVE_DAYS
    ]


def test_small_backtest_rows_consistent(
    small_run: tuple[Path, backtest.BacktestResult],
) -> None:
    _, result = small_run
    for row in [*result.signal_rows, *result.naive_rows, *result.bgnbd_rows]:
        assert row.result.tp + row.result.fn == result.lapsed
        counts = row.result
        assert counts.tp + counts.fp + counts.fn + counts.tn == result.customers
    for row in result.signal_rows:
        assert row.verdict
        assert row.detected is not None
        assert row.detected <= result.lapsed


def test_engine_days_rule_matches_naive(
    small_run: tuple[Path, backtest.BacktestResult],
) -> None:
    _, result = small_run
    engine = next(
        row for row in result.signal_rows if row.setting == "no_recent_order >= 90"
    )
    naive = next(row for row in result.naive_rows if row.name == "90 days")
    # Orders are at 12:00, so at midnight of the split 90 full days need 91
    # calendar days: the engine flags at most the naive rule's customers.
    assert engine.result.flagged <= naive.result.flagged
    assert engine.result.flagged >= naive.result.flagged * 0.95
    assert engine.delay_days == 90.0
