"""Fixtures of the integration tests: worker processes on the test broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .kafka_tools import WorkerProcess


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
        workers.append(worker.start())
        return worker

    yield start  # type: ignore[misc]
    for worker in workers:
        worker.stop()
