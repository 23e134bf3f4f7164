"""Helpers shared by the benchmark scripts: data, statistics and run metadata."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
PACKAGES = ("riskstream", "faust-streaming", "aiokafka", "pydantic", "orjson", "jiter")


def log(message: str) -> None:
    """Print one progress line on stderr with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def simulated_lines(
    customers: int, days: int, seed: int, limit: int | None = None
) -> list[bytes]:
    """Return simulated events as JSON lines, sorted by event time.

    ``limit`` keeps the first events of that sorted stream, so a cut file is
    still in event-time order.
    """
    from riskstream.simulation import simulate, synthetic_orders

    orders = synthetic_orders(customers, days=days, seed=seed)
    lines = [orjson.dumps(event) for event in simulate(orders, seed=seed)]
    return lines if limit is None else lines[:limit]


def update_customer(states: dict[str, dict[str, Any]], raw: bytes) -> bytes:
    """Add one JSON event to its customer's totals and return the output value.

    This is the raw loop's work per message: ``orjson.loads``, one dict update
    and ``orjson.dumps`` of the customer's totals.
    """
    event = orjson.loads(raw)
    customer = event["customer_id"]
    state = states.get(customer)
    if state is None:
        state = states[customer] = {"events": 0, "amount": 0.0}
    state["events"] += 1
    amount = event.get("amount")
    if amount is not None:
        state["amount"] += float(amount)
    state["last_event_at"] = event["occurred_at"]
    return orjson.dumps({"customer_id": customer, **state})


def spread(values: Sequence[float]) -> dict[str, float]:
    """Summarise repeated measurements: median, minimum and maximum."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of an ascending sequence."""
    if not sorted_values:
        raise ValueError("percentile: the sequence is empty")
    rank = max(1, round(fraction * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    NOTE: another process can take the port before the caller binds it.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float | None:
    """Return user plus system CPU seconds of a process, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    # Fields 14 and 15 of proc(5) are utime and stime. The split above drops
    # the first two fields, pid and comm.
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_busy_seconds() -> float:
    """Return CPU seconds all processes have used since boot (``/proc/stat``)."""
    with Path("/proc/stat").open() as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    # The fields are user, nice, system, idle, iowait, irq, softirq, steal and
    # more. Idle and iowait are not busy time.
    busy = sum(fields) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


class Contention:
    """Measures how many cores other processes kept busy during a span.

    ``own`` lists the pids whose CPU time counts as ours (this process is
    always included).
    """

    def __init__(self, own: Sequence[int] = ()) -> None:
        self.own = [os.getpid(), *own]
        self.wall = time.monotonic()
        self.busy = machine_busy_seconds()
        self.own_cpu = self._own_cpu()

    def _own_cpu(self) -> float:
        return sum(cpu_seconds(pid) or 0.0 for pid in self.own)

    def other_cores(self) -> float:
        """Return the average number of cores used by other processes so far."""
        wall = time.monotonic() - self.wall
        if wall <= 0:
            return 0.0
        busy = machine_busy_seconds() - self.busy
        own = self._own_cpu() - self.own_cpu
        return max(0.0, (busy - own) / wall)


def wait_for_quiet(
    max_other_cores: float, timeout_s: float, own: Sequence[int] = ()
) -> float:
    """Wait until other processes use fewer than ``max_other_cores`` cores.

    Samples 2-second windows for at most ``timeout_s`` seconds and returns the
    last window's value, so a busy machine delays a run but never blocks it.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        window = Contention(own)
        time.sleep(2.0)
        other = window.other_cores()
        if other < max_other_cores or time.monotonic() >= deadline:
            if other >= max_other_cores:
                log(f"other processes still use {other:.2f} cores; going on")
            return other
        log(f"waiting: other processes use {other:.2f} cores")


def machine() -> dict[str, Any]:
    """Describe the host, the interpreter and the code under test."""
    model = "unknown"
    with Path("/proc/cpuinfo").open() as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": versions,
        "git": _git_state(),
        "packages_imported_from": {k: str(v) for k, v in package_folders().items()},
        "source_digest_at_start": source_digest(),
        "load_average_at_start": os.getloadavg(),
    }


def _git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "src", "agents").splitlines()
    return {"commit": git("rev-parse", "HEAD"), "uncommitted_in_src_agents": changed}


def source_digest() -> str:
    """Return a SHA-256 over the Python files of the imported project packages.

    These are the ``riskstream`` and ``riskstream_agents`` folders that this
    interpreter imports (a copy on PYTHONPATH wins over the editable install).
    Comparing the digest at the start and the end of a run shows whether
    someone changed the code under test meanwhile.
    """
    digest = hashlib.sha256()
    for folder in package_folders().values():
        for path in sorted(folder.rglob("*.py")):
            digest.update(str(path.relative_to(folder.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def package_folders() -> dict[str, Path]:
    """Return the folders of the imported project packages."""
    import riskstream_agents

    import riskstream

    return {
        module.__name__: Path(module.__file__).resolve().parent
        for module in (riskstream, riskstream_agents)
    }


def check_sources(info: dict[str, Any]) -> None:
    """Record the source digest at the end and warn if it changed during the run."""
    info["source_digest_at_end"] = source_digest()
    if info["source_digest_at_end"] != info["source_digest_at_start"]:
        log(
            "WARNING: the riskstream sources changed during this run, so the "
            "results may mix two versions of the code; run again"
        )


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` as indented JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    log(f"wrote {path}")
