"""Fixtures of the integration tests: worker processes on the test broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .kafka_tools import WorkerProcess
from .prometheus_tools import PrometheusServer


@pytest.fixture
def worker_factory(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    workers: list[WorkerProcess] = []

    def start(
        data_dir: str = "data",
        rules_file: Path | None = None,
        log_name: str = "worker.log",
        playbook_file: Path | None = None,
        extra_args: list[str] | None = None,
        metrics_port: int | None = None,
    ) -> WorkerProcess:
        extra = [] if rules_file is None else ["--rules-file", str(rules_file)]
        if playbook_file is not None:
            extra += ["--playbook-file", str(playbook_file)]
        extra += extra_args or []
        worker = WorkerProcess(
            bootstrap=kafka_bootstrap,
            prefix=topic_prefix,
            app_id=f"{topic_prefix}app",
            data_dir=tmp_path / data_dir,
            log_path=tmp_path / log_name,
            extra_args=extra,
        )
        if metrics_port is not None:
            worker.metrics_port = metrics_port
        workers.append(worker.start())
        return worker

    yield start  # type: ignore[misc]
    for worker in workers:
        worker.stop()


@pytest.fixture
def prometheus_factory(
    prometheus_binary: str, tmp_path: Path
) -> Iterator[PrometheusServer]:
    """Start a Prometheus server that scrapes the given metrics ports.

    Each server listens on a free port of 127.0.0.1 and stores its data under
    the test's ``tmp_path``. It is stopped by PID when the test ends.
    """
    servers: list[PrometheusServer] = []

    def start(*metrics_ports: int) -> PrometheusServer:
        server = PrometheusServer(
            binary=prometheus_binary,
            workdir=tmp_path / f"prometheus-{len(servers)}",
            targets=[f"127.0.0.1:{port}" for port in metrics_ports],
        )
        servers.append(server)
        return server.start()

    yield start  # type: ignore[misc]
    for server in servers:
        server.stop()
