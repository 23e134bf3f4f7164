"""Helpers for integration tests: run workers, read topics, wait for progress."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

INPUT_TOPICS = (
    "erp.orders",
    "erp.payments",
    "erp.customers",
    "risk.alert-actions",
)


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m riskstream ARGS`` and fail the test on a non-zero exit."""
    result = subprocess.run(
        [sys.executable, "-m", "riskstream", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    assert result.returncode == 0, f"riskstream {args} failed:\n{result.stderr}"
    return result


@dataclass
class WorkerProcess:
    """A ``riskstream worker`` subprocess started by a test."""

    bootstrap: str
    prefix: str
    app_id: str
    data_dir: Path
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    web_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)

    def start(self) -> WorkerProcess:
        """Start the worker; its output goes to ``log_path``."""
        environment = dict(os.environ, RISKSTREAM_SESSION_TIMEOUT_S="6")
        command = [
            sys.executable, "-m", "riskstream", "worker",
            "--broker", f"kafka://{self.bootstrap}",
            "--topic-prefix", self.prefix,
            "--app-id", self.app_id,
            "--data-dir", str(self.data_dir),
            "--clock", "event",
            "--web-port", str(self.web_port),
            "--metrics-port", str(self.metrics_port),
            *self.extra_args,
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment
        )
        log.close()
        return self

    def kill(self) -> None:
        """End the worker at once with SIGKILL, as a crash would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 30) -> None:
        """Stop the worker with SIGTERM, then SIGKILL if it does not exit."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def assert_running(self) -> None:
        """Fail with the log's tail when the worker has exited."""
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-4000:]
            raise AssertionError(
                f"worker exited with {self.process.returncode}:\n{tail}"
            )


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Load partition metadata of every topic.

    aiokafka 0.14's ``topics()`` lists names but leaves ``partitions_for_topic``
    empty for topics the consumer is not subscribed to.
    """
    await consumer._client.force_metadata_update()


async def _end_offsets(
    bootstrap: str, topics: Iterable[str]
) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await refresh_metadata(consumer)
        partitions = [
            TopicPartition(topic, number)
            for topic in topics
            for number in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        return dict(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()


def input_lag(worker: WorkerProcess) -> dict[str, int]:
    """Return, per input topic partition, the messages not yet committed."""
    topics = [worker.prefix + topic for topic in INPUT_TOPICS]
    ends = asyncio.run(_end_offsets(worker.bootstrap, topics))
    try:
        committed = asyncio.run(_committed(worker.bootstrap, worker.app_id))
    except KafkaError:
        # The group coordinator is not ready until the group has started.
        committed = {}
    return {
        f"{tp.topic}:{tp.partition}": end - min(committed.get(tp, 0), end)
        for tp, end in ends.items()
    }


def committed_fraction(worker: WorkerProcess) -> float:
    """Return the share of input messages whose offsets the worker committed."""
    topics = [worker.prefix + topic for topic in INPUT_TOPICS]
    total = sum(asyncio.run(_end_offsets(worker.bootstrap, topics)).values())
    lag = sum(input_lag(worker).values())
    return (total - lag) / total if total else 1.0


def wait_for_commits(
    worker: WorkerProcess, fraction: float = 1.0, timeout_s: float = 180
) -> float:
    """Wait until the worker committed ``fraction`` of the input; return the share."""
    deadline = time.monotonic() + timeout_s
    share = 0.0
    while time.monotonic() < deadline:
        worker.assert_running()
        share = committed_fraction(worker)
        if share >= fraction:
            return share
        time.sleep(0.5)
    tail = worker.log_path.read_text(errors="replace")[-3000:]
    lag = {tp: count for tp, count in input_lag(worker).items() if count}
    raise AssertionError(
        f"worker committed {share:.2%} of the input; uncommitted: {lag}\n{tail}"
    )


async def _read_topic(
    bootstrap: str, topic: str, timeout_s: float
) -> list[tuple[bytes | None, bytes]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    rows: list[tuple[bytes | None, bytes]] = []
    try:
        await refresh_metadata(consumer)
        partitions = [
            TopicPartition(topic, number)
            for number in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        assert partitions, f"topic {topic} does not exist"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions):
                break
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                rows.extend((message.key, message.value) for message in messages)
        else:
            raise AssertionError(f"reading {topic} timed out after {timeout_s} s")
    finally:
        await consumer.stop()
    return rows


def read_topic(
    bootstrap: str, topic: str, timeout_s: float = 60
) -> list[tuple[bytes | None, bytes]]:
    """Read every message currently in ``topic`` as (key, value) pairs."""
    return asyncio.run(_read_topic(bootstrap, topic, timeout_s))


def http_status(port: int, path: str, timeout_s: float = 10) -> int:
    """Return the HTTP status of GET http://127.0.0.1:PORT/PATH."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def json_log_lines(path: Path) -> list[dict[str, object]]:
    """Return the JSON log lines of a worker's log file, skipping other output.

    A line can start with a terminal escape sequence that Faust writes to
    stdout, which the test merges with stderr, so parsing starts at ``{``.
    """
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            lines.append(json.loads(line[start:]))
        except json.JSONDecodeError:
            continue
    return lines
