"""A Prometheus server run by a test, scraping workers on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..promql import PROMETHEUS_DIR
from .kafka_tools import free_port

JOB = "riskstream-worker"
"""The job name of deploy/prometheus/prometheus.yml, which the rules select."""

Vector = dict[tuple[str, ...], float]


@dataclass
class PrometheusServer:
    """A ``prometheus`` subprocess with its own configuration and storage.

    It scrapes ``targets`` every second and evaluates the rules of
    deploy/prometheus/rules every second.
    """

    binary: str
    workdir: Path
    targets: list[str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the server's HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> PrometheusServer:
        """Write the configuration, start the server and wait until it is ready."""
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(PROMETHEUS_DIR / "rules" / "*.yml")],
            "scrape_configs": [
                {"job_name": JOB, "static_configs": [{"targets": self.targets}]}
            ],
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        log = (self.workdir / "prometheus.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.assert_running()
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise AssertionError(f"prometheus not ready after {timeout_s} s:\n{self.log()}")

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL after 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)

    def log(self) -> str:
        """Return the tail of the server's log."""
        return (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]

    def assert_running(self) -> None:
        """Fail with the log's tail when the server has exited."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"prometheus exited with {self.process.returncode}:\n{self.log()}"
            )

    def api(self, path: str, **params: str) -> Any:
        """GET an HTTP API path and return its ``data``, failing on an error status."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=10) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expression: str, *labels: str) -> Vector:
        """Run an instant query and key each sample by the values of ``labels``."""
        data = self.api("/api/v1/query", query=expression)
        assert data["resultType"] == "vector", data
        return {
            tuple(sample["metric"].get(name, "") for name in labels): float(
                sample["value"][1]
            )
            for sample in data["result"]
        }

    def wait_for(
        self,
        expression: str,
        *labels: str,
        until: Callable[[Vector], bool],
        timeout_s: float = 60,
    ) -> Vector:
        """Query every 0.5 s until ``until`` accepts the result, and return it.

        Returns the last result when time runs out, for the caller's assert
        to show it.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            self.assert_running()
            result = self.query(expression, *labels)
            if until(result) or time.monotonic() > deadline:
                return result
            time.sleep(0.5)

    def wait_for_rules(
        self, until: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 30
    ) -> list[dict[str, Any]]:
        """Poll the loaded rules of all groups until ``until`` accepts them."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.assert_running()
            groups = self.api("/api/v1/rules")["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            if until(rules) or time.monotonic() > deadline:
                return rules
            time.sleep(0.5)

    def wait_equal(
        self, expression: str, expected: Vector, *labels: str, timeout_s: float = 60
    ) -> Vector:
        """Wait until the query returns ``expected``, and return the last result."""
        return self.wait_for(
            expression, *labels, until=lambda got: got == expected, timeout_s=timeout_s
        )
