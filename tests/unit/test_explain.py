"""Unit tests for explanations and the explain command on an events file."""

from __future__ import annotations

from pathlib import Path

import orjson

from riskstream.cli import main
from riskstream.explain import explain, format_explanation
from riskstream.model import MODEL_VERSION
from riskstream.state import CustomerState

SAMPLE = Path(__file__).parents[2] / "examples" / "events.jsonl"


def overdue_state(engine, model, make_event, at):
    state = CustomerState("c1")
    for event in (
        make_event("customer.updated", at(0)),
        make_event("invoice.issued", at(0), invoice_id="i1", due_at=at(30)),
    ):
        engine.step(state, event, model)
    engine.advance(state, int(at(61).timestamp()), model)
    return state


def test_explanation_lists_state(engine, model, make_event, at):
    state = overdue_state(engine, model, make_event, at)

    document = explain(engine, state, model)

    assert document["customer_id"] == "c1"
    assert document["evaluated_at"] == "2026-03-02T00:00:00Z"
    assert document["risk_score"] == state.score
    assert document["firing"] == ["overdue_30d"]
    assert document["reasons"][0]["rule"] == "overdue_30d"
    assert document["open_invoices"][0]["days_past_due"] == 30
    assert document["open_invoices"][0]["outstanding"] == "100.00"
    assert document["credit_limit"] == "1000.00"
    assert [a["signal_kind"] for a in document["open_alerts"]] == [
        "overdue",
        "risk_level",
    ]
    assert document["next_check_at"] == "2026-04-02T00:00:00Z"
    assert document["model"]["name"] == "late_payment_30d"


def test_explanation_serialises(engine, model, make_event, at):
    state = overdue_state(engine, model, make_event, at)
    document = explain(engine, state)

    assert orjson.loads(orjson.dumps(document)) == document
    assert document["model"] is None


def test_format_names_alerts(engine, model, make_event, at):
    document = explain(engine, overdue_state(engine, model, make_event, at))

    text = "\n".join(format_explanation(document))

    assert "score 25.0 (medium)" in text
    assert "overdue_30d: days_past_due 30.0 >= 30.0, +25.0 points" in text
    assert "overdue: open high since 2026-03-02T00:00:00Z" in text
    assert "i1: 100.00 of 100.00 due 2026-01-31T00:00:00Z, 30 days past due" in text


def test_format_shows_model_quality(engine, model, make_event, at):
    state = overdue_state(engine, model, make_event, at)
    document = explain(engine, state, model)

    text = "\n".join(format_explanation(document))

    assert f"version {MODEL_VERSION}, 1 labels learned" in text
    assert "ROC AUC" in text
    assert "error drifts detected" in text


def test_explain_command_on_file(capsys):
    status = main(["explain", "ACME-001", "--events", str(SAMPLE), "--json"])
    document = orjson.loads(capsys.readouterr().out)

    assert status == 0
    assert document["customer_id"] == "ACME-001"
    assert document["profile"]["name"] == "Acme Tools GmbH"


def test_explain_unknown_customer(capsys):
    status = main(["explain", "NOBODY", "--events", str(SAMPLE)])

    assert status == 2
    assert "'NOBODY' has no valid event" in capsys.readouterr().err


def test_explain_unreachable_worker(capsys):
    # Port 9 (discard) on the loopback address has no web server here.
    status = main(["explain", "c1", "--worker", "http://127.0.0.1:9"])

    assert status == 2
    assert "cannot reach the worker" in capsys.readouterr().err
