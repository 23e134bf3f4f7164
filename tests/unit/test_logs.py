"""JSON logs of real code paths: dead letters and the worker's start."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
import structlog
from riskstream_agents.app import DEAD_LETTER_LOG_LIMIT, log_dead_letters
from riskstream_agents.gauges import report_drifts

from riskstream.cli import main
from riskstream.drivers.replay import MemoryStore
from riskstream.logs import configure_logging
from riskstream.model import FEATURES, LatePaymentModel
from riskstream.runner import Batch, PartitionRunner, Source

TOPIC = "erp.orders"


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Return a function that configures JSON logging and returns the lines logged.

    Call it once to start, then again to read. Logging is configured at the
    first call, inside the test, because the stderr that pytest captures
    during fixture set-up is closed before the test runs. The root logger,
    structlog's configuration and its context variables are restored after
    the test.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    started = False

    def logs(identity: dict[str, str] | None = None) -> list[dict[str, Any]]:
        nonlocal started
        if not started:
            configure_logging("json", "INFO", identity)
            started = True
            return []
        lines = capsys.readouterr().err.splitlines()
        return [orjson.loads(line) for line in lines if line.startswith("{")]

    yield logs
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def dead_letters(engine, model, event_bytes, count: int) -> list[dict[str, Any]]:
    """Run ``count`` orders of customer c1 keyed as c2 through a real runner.

    The runner rejects each for its key and returns the dead letters.
    """
    runner = PartitionRunner(0, engine, MemoryStore(), model, partitions=1)
    batch = Batch()
    for offset in range(count):
        raw = event_bytes("order.placed")
        runner.handle(raw, Source(TOPIC, 0, offset, b"c2"), batch)
    return batch.dead_letters


def test_dead_letter_logged_with_source(engine, model, event_bytes, json_logs):
    json_logs()
    records = dead_letters(engine, model, event_bytes, 1)

    log_dead_letters(records)

    lines = [line for line in json_logs() if line["event"] == "event_dead_lettered"]
    assert len(lines) == 1
    line = lines[0]
    assert line["level"] == "error"
    assert line["topic"] == TOPIC
    assert line["partition"] == 0
    assert line["offset"] == 0
    assert line["key"] == "c2"
    assert line["event_id"] == "evt-1"
    assert line["field"] == records[0]["field"]
    assert line["rule"] == records[0]["rule"]
    assert "timestamp" in line


def test_dead_letters_beyond_limit_counted(engine, model, event_bytes, json_logs):
    json_logs()
    records = dead_letters(engine, model, event_bytes, DEAD_LETTER_LOG_LIMIT + 5)

    log_dead_letters(records)

    lines = json_logs()
    single = [line for line in lines if line["event"] == "event_dead_lettered"]
    summary = [
        line for line in lines if line["event"] == "events_dead_lettered_unlogged"
    ]
    assert len(single) == DEAD_LETTER_LOG_LIMIT
    assert len(summary) == 1
    assert summary[0]["level"] == "error"
    assert summary[0]["count"] == 5
    assert summary[0]["rules"] == [records[0]["rule"]]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_worker_start_logged_with_context(tmp_path, capsys):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    broker = f"kafka://127.0.0.1:{closed_port()}"

    try:
        status = main(
            [
                "worker",
                "--broker", broker,
                "--app-id", "log-test",
                "--data-dir", str(tmp_path),
                "--web-url", "http://worker-1:6066",
                "--log-format", "json",
            ]
        )  # fmt: skip
        captured = capsys.readouterr().err
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()
        root.handlers[:] = handlers
        root.setLevel(level)

    lines = [orjson.loads(line) for line in captured.splitlines() if line[:1] == "{"]
    starting = [line for line in lines if line["event"] == "worker_starting"]
    assert status == 1, "the broker is unreachable, so the worker cannot start"
    assert len(starting) == 1
    assert starting[0]["level"] == "info"
    assert starting[0]["broker"] == broker
    assert starting[0]["app_id"] == "log-test"
    assert starting[0]["worker_url"] == "http://worker-1:6066"
    assert starting[0]["logger"] == "riskstream.cli"


def test_model_drift_logged_once(json_logs):
    model = LatePaymentModel()
    worker = SimpleNamespace(runners={3: SimpleNamespace(model=model)})
    seen: dict[str, int] = {}
    features = [0.0] * len(FEATURES)
    json_logs()

    report_drifts(worker, seen)
    for _ in range(300):
        model.learn(features, late=False, predicted=0.1)
    report_drifts(worker, seen)
    for _ in range(300):
        model.learn(features, late=True, predicted=0.1)
    report_drifts(worker, seen)
    report_drifts(worker, seen)
    lines = [line for line in json_logs() if line["event"] == "model_error_drift"]

    assert model.drifts >= 1
    assert len(lines) == 1
    assert lines[0]["level"] == "warning"
    assert lines[0]["partition"] == 3
    assert lines[0]["error_drifts"] == model.drifts


def test_coordinator_error_logged_as_warning(json_logs):
    json_logs()
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")

    coordinator.error(
        "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"
    )
    logging.getLogger("aiokafka.conn").error("Unable connect to broker")
    lines = json_logs()

    assert [line["level"] for line in lines] == ["warning", "error"]


def test_identity_on_other_threads(json_logs):
    json_logs({"app_id": "riskstream", "worker_url": "http://127.0.0.1:6066"})

    thread = threading.Thread(
        target=logging.getLogger("aiokafka.consumer").warning, args=("rebalancing",)
    )
    thread.start()
    thread.join()
    lines = json_logs()

    assert len(lines) == 1
    assert lines[0]["app_id"] == "riskstream"
    assert lines[0]["worker_url"] == "http://127.0.0.1:6066"
