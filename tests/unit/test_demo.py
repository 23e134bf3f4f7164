"""Smoke test of ``riskstream demo`` on a CDNOW subset, and its helpers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from riskstream import demo
from riskstream.cli import main
from riskstream.config import load_config
from riskstream.datasets import DatasetError, cdnow
from riskstream.report import alert_origin

PRINTED: list[str] = []
"""Lines the module's demo run printed."""


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoOutput:
    try:
        cdnow.locate_master_file()
    except DatasetError as exc:
        pytest.skip(f"the CDNOW file is not installed: {exc}")
    out = tmp_path_factory.mktemp("demo")
    PRINTED.clear()
    return demo.run_demo(out, customers=200, progress=False, echo=PRINTED.append)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_demo_writes_files(demo_run: demo.DemoOutput) -> None:
    for name in ("events", "alerts", "scores", "summary", "report"):
        assert demo_run.paths[name].is_file(), name
    for name in ("alerts_per_week", "levels", "signals", "customer"):
        path = demo_run.paths[name]
        assert path.suffix == ".png"
        assert path.read_bytes().startswith(b"\x89PNG")


def test_summary_matches_alerts_file(demo_run: demo.DemoOutput) -> None:
    alerts = read_jsonl(demo_run.paths["alerts"])
    summary = orjson.loads(demo_run.paths["summary"].read_bytes())
    opened = [a for a in alerts if a["status"] == "opened"]
    raised = [a for a in alerts if a["status"] in ("opened", "escalated")]
    assert summary["alert_updates"] == len(alerts)
    assert summary["alerts"] == len(opened)
    assert summary["alerts"] > 0
    assert summary["alert_updates_by_status"] == dict(
        Counter(a["status"] for a in alerts)
    )
    assert summary["alerts_by_signal_kind"] == dict(
        Counter(a["signal_kind"] for a in opened)
    )
    assert summary["alerts_by_severity"] == dict(Counter(a["severity"] for a in raised))
    assert sum(summary["alerts_by_origin"].values()) == len(raised)


def test_summary_matches_events_file(demo_run: demo.DemoOutput) -> None:
    events = read_jsonl(demo_run.paths["events"])
    summary = demo_run.summary
    assert summary["events"] == len(events)
    assert summary["events_by_type"] == dict(Counter(e["type"] for e in events))
    assert summary["customers"] == len({e["customer_id"] for e in events})


def test_summary_matches_scores_file(demo_run: demo.DemoOutput) -> None:
    scores = read_jsonl(demo_run.paths["scores"])
    summary = demo_run.summary
    assert summary["customers_by_level"] == dict(Counter(s["level"] for s in scores))
    top = summary["top_customers"]
    assert len(top) == demo.TOP_CUSTOMERS
    assert [row["risk_score"] for row in top] == sorted(
        (row["risk_score"] for row in top), reverse=True
    )
    assert top[0]["risk_score"] == max(s["risk_score"] for s in scores)


def test_signal_overview_covers_rules(demo_run: demo.DemoOutput) -> None:
    alerts = read_jsonl(demo_run.paths["alerts"])
    scores = read_jsonl(demo_run.paths["scores"])
    rows = {row["rule"]: row for row in demo_run.summary["signals"]}
    config = load_config()

    assert list(rows) == [rule.name for rule in config.rules]
    for name, row in rows.items():
        raised = [
            a
            for a in alerts
            if a["status"] in ("opened", "escalated") and name in a["rules_fired"]
        ]
        firing = [s for s in scores if name in s["firing"]]
        assert row["alerts"] == len(raised), name
        assert row["customers_firing_at_end"] == len(firing), name
    assert rows["volume_drop"]["data"] == "real orders"
    assert rows["overdue_30d"]["data"] == "simulated"


def test_report_shows_signals_and_model(demo_run: demo.DemoOutput) -> None:
    report = demo_run.paths["report"].read_text(encoding="utf-8")
    models = demo_run.summary["details"]["models"]

    assert "<h2>Signals</h2>" in report
    assert "signal-distributions.png" in report
    assert "credit_score_drop" in report
    assert len(models) == demo_run.summary["details"]["partitions"]
    for model in models.values():
        shown = "not measured yet" if model["roc_auc"] is None else model["roc_auc"]
        assert f"<td>{shown}</td>" in report


def test_alerts_sorted_by_time(demo_run: demo.DemoOutput) -> None:
    times = [a["raised_at"] for a in read_jsonl(demo_run.paths["alerts"])]
    assert times == sorted(times)


def test_report_labels_simulation(demo_run: demo.DemoOutput) -> None:
    report = demo_run.paths["report"].read_text(encoding="utf-8")
    assert "<b>Simulated data.</b>" in report
    assert "alerts-per-week.png" in report
    assert "levels.png" in report
    assert "customer.png" in report
    for row in demo_run.summary["top_customers"]:
        assert row["customer_id"] in report


def test_printed_summary(demo_run: demo.DemoOutput) -> None:
    printed = "\n".join(PRINTED)
    assert f"events processed: {demo_run.summary['events']} (replay)" in printed
    assert f"alerts opened: {demo_run.summary['alerts']}," in printed
    assert "top 10 customers by risk score:" in printed
    assert "order.placed" in printed
    assert "(real CDNOW)" in printed


def test_replay_matches_replay_command(
    demo_run: demo.DemoOutput, tmp_path: Path
) -> None:
    status = main(
        [
            "replay",
            str(demo_run.paths["events"]),
            "--out",
            str(tmp_path),
        ]
    )
    assert status == 0
    replayed = read_jsonl(tmp_path / "alerts.jsonl")
    assert demo.sort_alerts(replayed) == read_jsonl(demo_run.paths["alerts"])


def test_cli_demo_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        cdnow.locate_master_file()
    except DatasetError as exc:
        pytest.skip(f"the CDNOW file is not installed: {exc}")
    status = main(["demo", "--out", str(tmp_path), "--customers", "30"])
    captured = capsys.readouterr()
    assert status == 0
    assert "customers scored: 30" in captured.out
    assert (tmp_path / "report.html").is_file()


# -- helpers -----------------------------------------------------------------


def alert(rules: list[str], reasons: list[str] | None = None) -> dict[str, Any]:
    return {
        "rules_fired": rules,
        "reasons": [{"rule": name} for name in (reasons or rules)],
    }


def test_origin_of_purchase_rule() -> None:
    config = load_config()
    assert alert_origin(alert(["volume_drop"]), config) == "real orders"
    assert alert_origin(alert(["ordering_stopped"]), config) == "real orders"


def test_origin_of_payment_rule() -> None:
    config = load_config()
    assert alert_origin(alert(["overdue_30d"]), config) == "simulated"
    assert alert_origin(alert(["exposure_over_limit"]), config) == "simulated"


def test_origin_of_mixed_rules() -> None:
    config = load_config()
    assert alert_origin(alert(["volume_drop", "overdue_30d"]), config) == "both"


def test_origin_of_level_raise_uses_reasons() -> None:
    config = load_config()
    purchase = alert([], ["volume_drop", "ordering_stopped"])
    model = alert([], ["volume_drop", "model_late_payment"])
    assert alert_origin(purchase, config) == "real orders"
    assert alert_origin(model, config) == "both"


def test_pick_customer_most_alerts() -> None:
    summary = {
        "top_customers": [
            {"customer_id": "a", "alerts": 2},
            {"customer_id": "b", "alerts": 5},
            {"customer_id": "c", "alerts": 5},
        ]
    }
    assert demo.pick_customer(summary) == "b"
    assert demo.pick_customer({"top_customers": []}) is None
