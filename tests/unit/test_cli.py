"""Command-line errors that need no broker to check."""

from __future__ import annotations

import socket

import pytest

from riskstream.cli import main


def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_topics_unreachable_broker_explained(capsys):
    broker = f"kafka://127.0.0.1:{closed_port()}"

    status = main(["topics", "--broker", broker])

    error = capsys.readouterr().err
    assert status == 1
    assert "the Kafka request failed" in error
    assert broker in error
    assert "Traceback" not in error


def test_replay_missing_file_explained(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["replay", str(tmp_path / "absent.jsonl")])

    error = capsys.readouterr().err
    assert exited.value.code == 2
    assert "absent.jsonl: no such file" in error
    assert "pass a JSONL file" in error


def test_replay_of_no_events_fails(tmp_path, capsys):
    path = tmp_path / "notes.md"
    path.write_text("# Notes\n\nNot events.\n")

    status = main(["replay", str(path), "--out", str(tmp_path / "out")])

    error = capsys.readouterr().err
    assert status == 1
    assert "none of its 2 lines is a valid event" in error
    assert (tmp_path / "out" / "deadletter.jsonl").read_text().count("\n") == 2


def test_worker_metrics_port_in_use_explained(capsys):
    broker = f"kafka://127.0.0.1:{closed_port()}"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        status = main(["worker", "--broker", broker, "--metrics-port", str(port)])

    error = capsys.readouterr().err
    assert status == 2
    assert f"metrics_port: failed to listen on 127.0.0.1:{port}" in error
    assert "choose a free port with --metrics-port, or 0" in error
    assert "Traceback" not in error
