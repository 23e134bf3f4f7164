"""Alert lifecycle, operator actions and playbooks through a worker on a real broker."""

from __future__ import annotations

import time
from importlib import resources

import orjson
import pytest

from .kafka_tools import read_topic, run_cli, wait_for_commits

pytestmark = pytest.mark.integration

CUSTOMER = "act-c1"
PLAYBOOK = resources.files("riskstream").joinpath("config/playbook.yaml").read_text()


def event(event_id, kind, occurred_at, **fields):
    return {
        "event_id": event_id,
        "type": kind,
        "customer_id": CUSTOMER,
        "occurred_at": occurred_at,
        **fields,
    }


def action(event_id, alert_id, verb, occurred_at, **fields):
    return event(
        event_id,
        "alert.action",
        occurred_at,
        alert_id=alert_id,
        action=verb,
        by="ops.jane",
        **fields,
    )


def complaint(event_id, occurred_at):
    return event(
        event_id,
        "complaint.logged",
        occurred_at,
        severity="medium",
        category="delivery",
    )


def produce_lines(tmp_path, name, rows, bootstrap, prefix):
    path = tmp_path / name
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    broker = f"kafka://{bootstrap}"
    run_cli("topics", "--broker", broker, "--topic-prefix", prefix)
    run_cli("produce", str(path), "--broker", broker, "--topic-prefix", prefix)
    return path


def wait_for(bootstrap, topic, matches, timeout_s=90):
    """Read ``topic`` until a message satisfies ``matches``; return it."""
    deadline = time.monotonic() + timeout_s
    seen: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        seen = [orjson.loads(value) for _, value in read_topic(bootstrap, topic)]
        for document in seen:
            if matches(document):
                return document
        time.sleep(1.0)
    raise AssertionError(f"no matching message on {topic} in {timeout_s} s: {seen}")


def updates_of(bootstrap, topic, alert_id):
    rows = [orjson.loads(value) for _, value in read_topic(bootstrap, topic)]
    return [row for row in rows if row["alert_id"] == alert_id]


def test_actions_survive_restart(
    worker_factory, kafka_bootstrap, topic_prefix, tmp_path
):
    alerts_topic = f"{topic_prefix}risk.alerts"
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text(
        PLAYBOOK.replace(
            "      owner: finance\n      actions: [start collection, call",
            "      owner: operations\n      actions: [stop shipping, call",
            1,
        )
    )
    produce_lines(
        tmp_path,
        "events.jsonl",
        [
            event(
                "act-1",
                "customer.updated",
                "2026-01-01T09:00:00Z",
                name="Action Test AG",
                credit_limit="10000.00",
                currency="EUR",
                payment_terms_days=30,
            ),
            event(
                "act-2",
                "invoice.issued",
                "2026-01-01T10:00:00Z",
                invoice_id="act-inv-1",
                amount="2500.00",
                currency="EUR",
                due_at="2026-01-31T10:00:00Z",
            ),
            # A later event moves the event clock past 30 days overdue.
            event(
                "act-3",
                "order.placed",
                "2026-03-05T09:00:00Z",
                order_id="act-ord-1",
                amount="100.00",
                currency="EUR",
            ),
        ],
        kafka_bootstrap,
        topic_prefix,
    )
    first = worker_factory("data-a", log_name="a.log", playbook_file=playbook)

    opened = wait_for(
        kafka_bootstrap,
        alerts_topic,
        lambda a: a["signal_kind"] == "overdue" and a["status"] == "opened",
    )
    assert opened["owner"] == "operations"
    assert opened["recommended_actions"][0] == "stop shipping"
    alert_id = opened["alert_id"]

    produce_lines(
        tmp_path,
        "acknowledge.jsonl",
        [
            action("act-4", alert_id, "acknowledge", "2026-03-06T09:00:00Z"),
            action("act-5", "f" * 32, "acknowledge", "2026-03-06T09:30:00Z"),
        ],
        kafka_bootstrap,
        topic_prefix,
    )
    acknowledged = wait_for(
        kafka_bootstrap, alerts_topic, lambda a: a["status"] == "acknowledged"
    )
    letter = wait_for(
        kafka_bootstrap,
        f"{topic_prefix}riskstream.deadletter",
        lambda d: d["rule"] == "unknown_alert",
    )
    wait_for_commits(first)
    explained = explain_from(first)
    first.stop()

    assert acknowledged["alert_id"] == alert_id
    assert acknowledged["acted_by"] == "ops.jane"
    assert letter["field"] == "alert_id"
    assert letter["source"]["topic"] == f"{topic_prefix}risk.alert-actions"
    assert "f" * 32 in letter["reason"]
    assert explained["customer_id"] == CUSTOMER
    assert explained["level"] == "medium"
    assert explained["firing"] == ["overdue_30d"]
    assert [a["status"] for a in explained["open_alerts"]] == ["acknowledged", "open"]
    assert explained["open_alerts"][0]["alert_id"] == alert_id
    assert explained["open_invoices"][0]["outstanding"] == "2500.00"

    # A new worker with an empty local store restores the open alert from the
    # changelog, so it accepts the next action for it.
    second = worker_factory("data-b", log_name="b.log", playbook_file=playbook)
    produce_lines(
        tmp_path,
        "snooze-and-pay.jsonl",
        [
            action(
                "act-6", alert_id, "snooze", "2026-03-07T09:00:00Z", snooze_for="P2D"
            ),
            event(
                "act-7",
                "payment.received",
                "2026-03-08T09:00:00Z",
                payment_id="act-pay-1",
                invoice_id="act-inv-1",
                amount="2500.00",
                currency="EUR",
            ),
            event(
                "act-8",
                "order.placed",
                "2026-03-12T09:00:00Z",
                order_id="act-ord-2",
                amount="100.00",
                currency="EUR",
            ),
        ],
        kafka_bootstrap,
        topic_prefix,
    )
    wait_for(
        kafka_bootstrap,
        alerts_topic,
        lambda a: a["alert_id"] == alert_id and a["status"] == "resolved",
    )
    wait_for_commits(second)
    updates = updates_of(kafka_bootstrap, alerts_topic, alert_id)
    settled = explain_from(second)

    assert [u["status"] for u in updates] == [
        "opened",
        "acknowledged",
        "snoozed",
        "resolved",
    ]
    assert [u["sequence"] for u in updates] == [1, 2, 3, 4]
    assert updates[2]["acted_by"] == "ops.jane"
    assert updates[3]["raised_at"] == "2026-03-09T09:00:00Z"
    assert len({u["update_id"] for u in updates}) == 4
    assert settled["open_alerts"] == []
    assert settled["open_invoices"] == []
    assert settled["level"] == "low"
    assert settled["evaluated_at"] == "2026-03-12T09:00:00Z"


def explain_from(worker):
    """Run ``riskstream explain --worker`` against ``worker``; return the JSON."""
    result = run_cli(
        "explain",
        CUSTOMER,
        "--worker",
        f"http://127.0.0.1:{worker.web_port}",
        "--json",
    )
    return orjson.loads(result.stdout)


def test_resolve_and_rejected_actions(
    worker_factory, kafka_bootstrap, topic_prefix, tmp_path
):
    alerts_topic = f"{topic_prefix}risk.alerts"
    letters_topic = f"{topic_prefix}riskstream.deadletter"
    rules = resources.files("riskstream").joinpath("config/rules.yaml").read_text()
    rules_file = tmp_path / "rules.yaml"
    # Construction weighs 1.4; an Italian region weight of 1.2 makes 1.68,
    # above the risky_profile threshold of 1.5.
    rules_file.write_text(rules.replace("  region: {}", "  region:\n    IT: 1.2"))
    produce_lines(
        tmp_path,
        "events.jsonl",
        [
            event(
                "res-1",
                "customer.updated",
                "2026-01-01T09:00:00Z",
                name="Cantiere Rossi SpA",
                industry="construction",
                region="IT",
                credit_limit="10000.00",
                currency="EUR",
                payment_terms_days=30,
            ),
            complaint("res-2", "2026-01-10T09:00:00Z"),
            complaint("res-3", "2026-01-20T09:00:00Z"),
            complaint("res-4", "2026-02-01T09:00:00Z"),
        ],
        kafka_bootstrap,
        topic_prefix,
    )
    worker = worker_factory(rules_file=rules_file)

    complaints = wait_for(
        kafka_bootstrap,
        alerts_topic,
        lambda a: a["signal_kind"] == "complaints" and a["status"] == "opened",
    )
    profile = wait_for(
        kafka_bootstrap,
        alerts_topic,
        lambda a: a["signal_kind"] == "profile" and a["status"] == "opened",
    )
    alert_id = complaints["alert_id"]
    produce_lines(
        tmp_path,
        "actions.jsonl",
        [
            action("res-5", alert_id, "resolve", "2026-02-02T09:00:00Z"),
            action("res-6", alert_id, "resolve", "2026-02-02T10:00:00Z"),
            action("res-7", profile["alert_id"], "escalate", "2026-02-02T11:00:00Z"),
            action(
                "res-8",
                profile["alert_id"],
                "snooze",
                "2026-02-02T12:00:00Z",
                snooze_for="P400D",
            ),
        ],
        kafka_bootstrap,
        topic_prefix,
    )
    resolved = wait_for(
        kafka_bootstrap,
        alerts_topic,
        lambda a: a["alert_id"] == alert_id and a["status"] == "resolved",
    )
    wait_for(kafka_bootstrap, letters_topic, lambda d: d["event_id"] == "res-8")
    wait_for_commits(worker)
    letters = {
        letter["event_id"]: letter
        for _, value in read_topic(kafka_bootstrap, letters_topic)
        if (letter := orjson.loads(value))
    }
    explained = explain_from(worker)

    assert complaints["rules_fired"] == ["complaints_90d"]
    assert profile["rules_fired"] == ["risky_profile"]
    assert profile["reasons"][-1]["value"] == 1.68
    assert resolved["acted_by"] == "ops.jane"
    assert resolved["recommended_actions"] == []
    assert letters["res-6"]["rule"] == "alert_resolved"
    assert letters["res-7"]["field"] == "action"
    assert letters["res-8"]["field"] == "snooze_for"
    assert "res-5" not in letters
    # The operator closed the alert while its rule still fires, so it stays
    # closed and no new complaints alert opens.
    kinds = {
        alert["signal_kind"]: alert["status"] for alert in explained["open_alerts"]
    }
    assert kinds["complaints"] == "closed"
    assert "complaints_90d" in explained["firing"]
