"""Benchmark the Faust worker end to end through a real Kafka broker.

Each repeat produces simulated events to fresh input topics, then measures

* the raw loop: one aiokafka consumer and producer in this process that
  parses each message with orjson, updates a dict per customer and sends one
  output per input (:func:`kafkabench.raw_loop`);
* the core loop: the worker's own work (event-time merge, the riskstream
  core, alerts and scores, one changelog-style message per changed customer
  and batch, a commit per batch) on plain aiokafka in this process, without
  Faust (:func:`kafkabench.core_loop`);
* the Faust floor: Faust agents in a subprocess that take the input in
  batches as the worker does and do nothing else (``floor_noack`` with
  ``noack_take`` and a commit per batch, ``floor_take`` with ``take`` and
  Faust's acks and commits), or only the raw loop's work
  (``floor_work``), which bounds what any Faust agent reaches here
  (:mod:`faustfloor`);
* the worker: ``riskstream worker --clock event`` in a subprocess, with its
  own topic prefix, app id, data folder and ports. Its rate is the input
  event count divided by a span. The span starts at the worker's first
  output, the Kafka timestamp of the first message on risk.scores,
  risk.alerts or the dead-letter topic. It ends at the poll at which the
  worker's committed offsets reach the end of every input partition.

A latency run starts a worker on empty topics, waits until it scores a
warm-up event, then produces at a fixed rate and matches each risk.scores
message to the event it reflects: the customer's event whose ``occurred_at``
second equals the score's ``assessed_at``. Latency is the score's Kafka
timestamp (set by the worker's producer) minus the time this process called
``send`` for that event. The same difference with the time this process
received the score is reported too. Scores moved by a time crossing rather
than an event have no such event and are counted as unmatched.

``--profile`` adds two worker runs under py-spy, one writing an SVG flame
graph and one writing raw collapsed stacks that ``pyspy_summary.py`` sums up.

Example::

    python bench/worker.py --events 100000 --repeats 3 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import faustfloor
import orjson
import pyspy_summary
from aiokafka import AIOKafkaProducer
from benchlib import (
    RESULTS,
    Contention,
    check_sources,
    cpu_seconds,
    log,
    machine,
    percentile,
    simulated_lines,
    spread,
    wait_for_quiet,
    write_json,
)
from kafkabench import (
    POLL_INTERVAL_S,
    OffsetWatch,
    OutputCollector,
    RunFailed,
    StallWatch,
    WorkerProcess,
    bootstrap_of,
    broker,
    core_loop,
    create_topics,
    end_offsets,
    input_partitions,
    produce,
    raw_loop,
    settings_for,
    worker_errors,
)

from riskstream.config import load_config
from riskstream.drivers.replay import replay
from riskstream.events import route
from riskstream.settings import Settings

BUDGET_WORKER_TO_RAW = 1 / 3
"""Project budget: the worker runs at no less than a third of the raw loop."""
EVENTS_PER_CUSTOMER_YEAR = 90
"""Rough simulated events per customer and year, to size the customer count."""
WARMUP_CUSTOMER = "BENCH-WARMUP"
PYSPY_RATE_HZ = 100


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure the riskstream worker's throughput and latency through "
        "a Kafka broker on 127.0.0.1, against a raw aiokafka loop.",
    )
    parser.add_argument(
        "--bootstrap",
        help="HOST:PORT of a running broker on 127.0.0.1 (default: start one with "
        "riskstream.devbroker)",
    )

    parser.add_argument(
        "--events", type=int, default=100_000, help="events per throughput run"
    )
    parser.add_argument(
        "--customers",
        type=int,
        help="simulated customers (default: enough for --events in --days)",
    )
    parser.add_argument("--days", type=int, default=365, help="simulated days (365)")
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (7)")
    parser.add_argument(
        "--partitions", type=int, default=4, help="partitions per topic (4)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each measurement (3)"
    )

    parser.add_argument(
        "--store", default="rocksdb://", help="worker table store (rocksdb://)"
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment variable of the worker, such as "
        "RISKSTREAM_BATCH_SIZE=2000; repeat for several. The worker inherits this "
        "process's environment (PYTHONPATH too) except other RISKSTREAM_ variables",
    )

    parser.add_argument(
        "--latency-rate",
        type=float,
        action="append",
        help="events per second in the latency runs (1000); repeat the flag to "
        "measure several rates",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=20.0,
        help="seconds of producing in the latency run (20)",
    )

    parser.add_argument(
        "--core-batch-size",
        type=int,
        default=Settings.model_fields["batch_size"].default,
        help="messages per batch of the core loop (default: the worker's "
        "batch_size, %(default)s)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        choices=["raw", "core", *faustfloor.VARIANTS, "floor", "worker", "latency"],
        default=[],
        help="leave out a measurement; repeat the flag to leave out several. "
        "'floor' leaves out every floor_* variant",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="add two worker runs under py-spy: worker-profile.svg and "
        "worker-profile.txt (raw stacks) in the results folder",
    )

    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.3,
        help="before each run, wait until processes other than this one and the "
        "broker use fewer cores than this (0.3)",
    )
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        default=30.0,
        help="maximum wait in seconds for --quiet-cores before a run; 0 turns the "
        "wait off (30)",
    )

    parser.add_argument(
        "--run-timeout",
        type=float,
        default=900.0,
        help="seconds one loop, floor or worker run may take before it fails (900)",
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=90.0,
        help="fail a worker or floor run when neither its committed offsets nor "
        "its outputs move for this many seconds (90)",
    )
    parser.add_argument(
        "--max-failures",
        type=int,
        default=3,
        help="failed runs tolerated in total; each is recorded and replaced by "
        "another attempt (3)",
    )

    parser.add_argument(
        "--check-replay",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compare the worker's alert count with an in-process replay (on)",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="folder for worker.json and the profiles (bench/results)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the worker data folders and logs"
    )
    args = parser.parse_args(argv)
    for name in ("events", "days", "partitions", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be 1 or more, got {getattr(args, name)}")
    for item in args.worker_env:
        if "=" not in item:
            parser.error(f"--worker-env: {item!r} is not NAME=VALUE")
    args.latency_rate = args.latency_rate or [1000.0]
    if min(args.latency_rate) <= 0 or args.latency_seconds <= 0:
        parser.error("--latency-rate and --latency-seconds: must be greater than 0")
    return args


# -- throughput ------------------------------------------------------------


async def worker_throughput(
    bootstrap: str,
    broker_pid: int | None,
    prefix: str,
    total: int,
    args: argparse.Namespace,
    workdir: Path,
    pyspy: list[str] | None = None,
) -> dict[str, Any]:
    """Run one worker on already produced input until it commits everything.

    ``pyspy`` is a py-spy ``record`` command without ``--pid``; it is started
    when the first output appears and stopped with SIGINT once the worker is
    done.
    """
    ends = await end_offsets(bootstrap, input_partitions(prefix, args.partitions))
    if sum(ends.values()) != total:
        raise RuntimeError(
            f"input topics hold {sum(ends.values())} events, not {total}"
        )
    app_id = f"{prefix}app"
    worker = WorkerProcess(
        bootstrap,
        prefix,
        app_id,
        workdir / f"{prefix}data",
        args.store,
        dict(item.split("=", 1) for item in args.worker_env),
    )
    spy: subprocess.Popen[bytes] | None = None
    contention: Contention | None = None
    other_cores: float | None = None
    samples: list[tuple[float, float | None, float | None]] = []
    async with (
        OutputCollector(bootstrap, prefix, args.partitions) as outputs,
        OffsetWatch(bootstrap, app_id, ends) as watch,
    ):
        pid = worker.start()
        log(f"  worker pid {pid}: {' '.join(worker.command)}")
        deadline = time.monotonic() + args.run_timeout
        next_report = time.monotonic() + 5
        stall = StallWatch(args.stall_timeout, f"worker pid {pid}", worker.log_path)
        try:
            while True:
                worker.check_alive()
                done = await watch.committed()
                stall.check((done, len(outputs.outputs)))
                now = time.time()
                samples.append((now, worker.cpu_seconds(), _cpu(broker_pid)))
                if contention is None and outputs.outputs:
                    own = [pid] if broker_pid is None else [pid, broker_pid]
                    contention = Contention(own)
                if pyspy is not None and spy is None and outputs.outputs:
                    spy = start_pyspy(pyspy, pid)
                if done >= total:
                    done_s = now
                    if contention is not None:
                        other_cores = contention.other_cores()
                    break
                if time.monotonic() > deadline:
                    raise RunFailed(
                        f"worker pid {pid} committed {done}/{total} events in "
                        f"{args.run_timeout:.0f} s (--run-timeout); see "
                        f"{worker.log_path}",
                        worker.log_path,
                    )
                if time.monotonic() >= next_report:
                    log(
                        f"  worker committed {done}/{total}, {len(outputs.outputs)} "
                        "outputs"
                    )
                    next_report = time.monotonic() + 5
                await asyncio.sleep(POLL_INTERVAL_S)
            await settle(outputs)
        finally:
            if spy is not None:
                stop_pyspy(spy)
            stopped = worker.stop()
    first_ms, last_ms = outputs.first_ms(), outputs.last_ms()
    assert first_ms is not None and last_ms is not None
    busy = [s for s in samples if s[0] >= first_ms / 1000]
    seconds = done_s - first_ms / 1000
    late_s = last_ms / 1000 - done_s
    if late_s > 1.0:
        log(
            f"  WARNING: outputs went on {late_s:.1f} s after the committed offsets "
            "reached the end, so commits ran ahead of processing here; "
            "events_per_s_to_last_output is the better rate for this run"
        )
    result = {
        "events": total,
        "startup_seconds": first_ms / 1000 - worker.started_s,
        "seconds": seconds,
        "events_per_s": total / seconds,
        "events_per_s_to_last_output": total / max(1e-3, (last_ms - first_ms) / 1000),
        "last_output_after_commit_seconds": late_s,
        "outputs": {
            topic: outputs.count(topic)
            for topic in ("risk.scores", "risk.alerts", "riskstream.deadletter")
        },
        "worker_cpu_share": _share(busy, 1),
        "worker_cpu_us_per_event": _cpu_per_event(busy, total),
        "broker_cpu_share": _share(busy, 2),
        "other_processes_cores": other_cores,
        "stop": stopped,
        "log": str(worker.log_path),
    }
    if not args.keep:
        shutil.rmtree(worker.data_dir, ignore_errors=True)
    return result


def _cpu(pid: int | None) -> float | None:
    return None if pid is None else cpu_seconds(pid)


def _share(samples: list[tuple[float, float | None, float | None]], index: int):
    """Return CPU seconds per wall second between the first and last sample."""
    usable = [s for s in samples if s[index] is not None]
    if len(usable) < 2 or usable[-1][0] <= usable[0][0]:
        return None
    return (usable[-1][index] - usable[0][index]) / (usable[-1][0] - usable[0][0])


def _cpu_per_event(
    samples: list[tuple[float, float | None, float | None]], total: int
) -> float | None:
    """Return the worker's CPU µs per input event between the first and last sample."""
    usable = [s[1] for s in samples if s[1] is not None]
    if len(usable) < 2:
        return None
    return (usable[-1] - usable[0]) / total * 1e6


async def settle(outputs: OutputCollector, quiet_s: float = 2.0) -> None:
    """Wait, at most 15 s, until no output arrived for ``quiet_s`` seconds."""
    deadline = time.monotonic() + 15
    seen = -1
    while time.monotonic() < deadline and seen != len(outputs.outputs):
        seen = len(outputs.outputs)
        await asyncio.sleep(quiet_s)


def start_pyspy(command: list[str], pid: int) -> subprocess.Popen[bytes]:
    log(f"  py-spy attached to pid {pid}")
    return subprocess.Popen(
        [*command, "--pid", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )


def stop_pyspy(spy: subprocess.Popen[bytes]) -> None:
    """Stop py-spy with SIGINT so it writes its file; SIGKILL after 60 s."""
    if spy.poll() is None:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            log(f"py-spy pid {spy.pid} did not stop on SIGINT, sending SIGKILL")
            spy.kill()
            spy.wait(timeout=30)
    log(f"  py-spy pid {spy.pid} exited with status {spy.returncode}")


# -- latency ---------------------------------------------------------------


async def latency_run(
    bootstrap: str,
    prefix: str,
    lines: list[bytes],
    rate: float,
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    """Produce ``lines`` at a fixed rate to a running worker; match scores."""
    settings = settings_for(bootstrap, prefix, args.partitions)
    await create_topics(settings)
    app_id = f"{prefix}app"
    worker = WorkerProcess(
        bootstrap,
        prefix,
        app_id,
        workdir / f"{prefix}data",
        args.store,
        dict(item.split("=", 1) for item in args.worker_env),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_of(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
    sent_at: dict[tuple[str, int], float] = {}
    async with OutputCollector(bootstrap, prefix, args.partitions) as outputs:
        worker.start()
        log(f"  worker pid {worker.pid} for the latency run")
        await producer.start()
        try:
            await warm_up(producer, settings, outputs, worker, args.run_timeout)
            started = time.perf_counter()
            await paced_send(producer, settings, lines, rate, sent_at)
            produce_seconds = time.perf_counter() - started
            await producer.flush()
            ends = await end_offsets(
                bootstrap, input_partitions(prefix, args.partitions)
            )
            async with OffsetWatch(bootstrap, app_id, ends) as watch:
                deadline = time.monotonic() + args.run_timeout
                stall = StallWatch(
                    args.stall_timeout, f"worker pid {worker.pid}", worker.log_path
                )
                while (done := await watch.committed()) < watch.total:
                    worker.check_alive()
                    stall.check((done, len(outputs.outputs)))
                    if time.monotonic() > deadline:
                        raise RunFailed(
                            f"latency worker pid {worker.pid} did not commit all "
                            f"{watch.total} events in {args.run_timeout:.0f} s",
                            worker.log_path,
                        )
                    await asyncio.sleep(POLL_INTERVAL_S)
            await settle(outputs)
        finally:
            await producer.stop()
            stopped = worker.stop()
    if not args.keep:
        shutil.rmtree(worker.data_dir, ignore_errors=True)
    return {
        "events": len(lines),
        "target_rate": rate,
        "achieved_rate": len(lines) / produce_seconds,
        **match_scores(outputs, sent_at),
        "stop": stopped,
        "log": str(worker.log_path),
    }


async def warm_up(
    producer: AIOKafkaProducer,
    settings: Any,
    outputs: OutputCollector,
    worker: WorkerProcess,
    timeout_s: float,
) -> None:
    """Send one event for a customer of its own and wait until it is scored."""
    event = {
        "event_id": f"{WARMUP_CUSTOMER}-profile",
        "type": "customer.updated",
        "customer_id": WARMUP_CUSTOMER,
        "occurred_at": "2024-12-01T00:00:00Z",
        "source": "bench:warm-up",
        "name": "Benchmark warm-up",
        "credit_limit": "100",
        "currency": "EUR",
        "payment_terms_days": 30,
    }
    raw = orjson.dumps(event)
    topic, key = route(raw)
    await producer.send_and_wait(settings.topic(topic), value=raw, key=key)
    deadline = time.monotonic() + timeout_s
    while not any(o.key == key for o in outputs.outputs):
        worker.check_alive()
        if time.monotonic() > deadline:
            raise RunFailed(
                f"worker pid {worker.pid} did not score the warm-up event in "
                f"{timeout_s:.0f} s",
                worker.log_path,
            )
        await asyncio.sleep(0.1)
    log(f"  worker ready after {time.time() - worker.started_s:.1f} s")


async def paced_send(
    producer: AIOKafkaProducer,
    settings: Any,
    lines: list[bytes],
    rate: float,
    sent_at: dict[tuple[str, int], float],
) -> None:
    """Send ``lines`` at ``rate`` per second; record each event's send time.

    ``sent_at`` maps (customer_id, occurred_at in whole epoch seconds) to the
    wall-clock time of the ``send`` call. A later event of the same customer
    and second replaces an earlier one.
    """
    started = time.perf_counter()
    for number, raw in enumerate(lines):
        delay = started + number / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        event = orjson.loads(raw)
        occurred_s = int(datetime.fromisoformat(event["occurred_at"]).timestamp())
        topic, key = route(raw)
        now = time.time()
        sent_at[(event["customer_id"], occurred_s)] = now
        await producer.send(
            settings.topic(topic), value=raw, key=key, timestamp_ms=int(now * 1000)
        )
        if number and number % max(1, int(rate * 5)) == 0:
            log(f"  sent {number}/{len(lines)}")


def match_scores(
    outputs: OutputCollector, sent_at: dict[tuple[str, int], float]
) -> dict[str, Any]:
    by_kafka: list[float] = []
    by_receipt: list[float] = []
    unmatched = 0
    for output in outputs.outputs:
        if output.topic != "risk.scores" or output.key is None:
            continue
        score = orjson.loads(output.value)
        if score["customer_id"] == WARMUP_CUSTOMER:
            continue
        assessed_s = int(datetime.fromisoformat(score["assessed_at"]).timestamp())
        sent = sent_at.get((score["customer_id"], assessed_s))
        if sent is None:
            unmatched += 1
            continue
        by_kafka.append((output.kafka_ms / 1000 - sent) * 1000)
        by_receipt.append((output.received_s - sent) * 1000)
    return {
        "matched_scores": len(by_kafka),
        "unmatched_scores": unmatched,
        "latency_ms": latency_stats(by_kafka),
        "latency_to_receipt_ms": latency_stats(by_receipt),
    }


def latency_stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


# -- driver ----------------------------------------------------------------


def pyspy_command(output: Path, fmt: str, duration_s: float) -> list[str]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or "py-spy"
    command = [
        spy,
        "record",
        "--rate",
        str(PYSPY_RATE_HZ),
        "--duration",
        str(int(duration_s)),
        "--format",
        fmt,
        "-o",
        str(output),
    ]
    if fmt == "raw":
        command.append("--idle")
    return command


async def run_all(args: argparse.Namespace, lines: list[bytes]) -> dict[str, Any]:
    token = secrets.token_hex(3)
    workdir = Path(tempfile.mkdtemp(prefix="riskstream-bench-"))
    runs: dict[str, list[dict[str, Any]]] = {
        "raw": [],
        "core": [],
        **{variant: [] for variant in faustfloor.VARIANTS},
        "worker": [],
        "latency": [],
    }
    profiles: dict[str, Any] = {}
    failures: list[dict[str, Any]] = []
    try:
        with broker(args.bootstrap) as (bootstrap, broker_pid):
            env = Bench(args, bootstrap, broker_pid, token, workdir)
            if {"raw", "core", "worker"} - set(args.skip) or (
                faustfloor.variants_to_run(args.skip)
            ):
                await env.attempts(
                    "throughput",
                    lambda attempt: throughput_repeat(env, attempt, lines, runs),
                )
            for rate in [] if "latency" in args.skip else args.latency_rate:
                live = lines[: int(rate * args.latency_seconds)]
                await env.attempts(
                    f"latency at {rate:.0f}/s",
                    lambda attempt, live=live, rate=rate: latency_repeat(
                        env, attempt, live, rate, runs
                    ),
                )
            if args.profile:
                profiles = await profile_runs(env, lines)
            failures = env.failures
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept worker folders and logs in {workdir}")
    return {"runs": runs, "profile": profiles, "failures": failures}


@dataclass
class Bench:
    """Broker, folders and settings shared by every run of one invocation."""

    args: argparse.Namespace
    bootstrap: str
    broker_pid: int | None
    token: str
    workdir: Path
    failures: list[dict[str, Any]] = field(default_factory=list)

    async def attempts(self, kind: str, run: Callable[[int], Awaitable[None]]) -> None:
        """Call ``run(attempt)`` until --repeats attempts succeeded.

        A failed attempt is recorded and replaced, up to --max-failures
        failures over the whole benchmark.
        """
        succeeded = 0
        attempt = 0
        while succeeded < self.args.repeats:
            try:
                await run(attempt)
                succeeded += 1
            except RunFailed as exc:
                self.record_failure(kind, attempt, exc)
                if len(self.failures) > self.args.max_failures:
                    log(f"more than {self.args.max_failures} failed runs; giving up")
                    return
            attempt += 1

    def record_failure(self, kind: str, attempt: int, exc: RunFailed) -> None:
        log(f"  {kind} attempt {attempt + 1} FAILED: {exc.reason.splitlines()[0]}")
        failure: dict[str, Any] = {
            "kind": kind,
            "attempt": attempt,
            "reason": exc.reason[:2000],
        }
        if exc.log_path is not None:
            failure["worker_errors"] = worker_errors(exc.log_path)
            kept = self.args.results / "failures" / exc.log_path.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(exc.log_path, kept)
            failure["log"] = str(kept)
        self.failures.append(failure)

    async def quiet(self) -> None:
        """Wait, bounded by --quiet-timeout, until the machine is quiet."""
        if self.args.quiet_timeout > 0:
            own = [] if self.broker_pid is None else [self.broker_pid]
            await asyncio.to_thread(
                wait_for_quiet, self.args.quiet_cores, self.args.quiet_timeout, own
            )


async def throughput_repeat(
    env: Bench, index: int, lines: list[bytes], runs: dict[str, list[dict[str, Any]]]
) -> None:
    """Produce ``lines`` to fresh topics, then run the loops, floors and worker.

    The results are kept only when every run succeeds, so the lists stay
    paired by repeat.
    """
    args = env.args
    prefix = f"bench-{env.token}-t{index}-"
    log(f"throughput run {index + 1}/{args.repeats}, prefix {prefix}")
    settings = settings_for(env.bootstrap, prefix, args.partitions)
    core_topics = ("changelog", "alerts", "scores", "deadletter")
    await create_topics(
        settings,
        extra=[
            f"{prefix}raw.out",
            f"{prefix}{faustfloor.OUTPUT_TOPIC}",
            *(f"{prefix}core.{name}" for name in core_topics),
        ],
    )
    produced = await produce(settings, lines)
    log(f"  produced {produced['events']} in {produced['seconds']:.1f} s")
    raw: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    if "raw" not in args.skip:
        await env.quiet()
        contention = Contention([] if env.broker_pid is None else [env.broker_pid])
        raw = await raw_loop(env.bootstrap, prefix, len(lines), args.run_timeout)
        raw["other_processes_cores"] = contention.other_cores()
        raw["produce"] = produced
        log(
            f"  raw loop: {raw['events_per_s']:.0f} events/s, other processes "
            f"used {raw['other_processes_cores']:.2f} cores"
        )
    core: dict[str, Any] | None = None
    if "core" not in args.skip:
        await env.quiet()
        contention = Contention([] if env.broker_pid is None else [env.broker_pid])
        core = await core_loop(
            env.bootstrap, prefix, len(lines), args.run_timeout, args.core_batch_size
        )
        core["other_processes_cores"] = contention.other_cores()
        log(
            f"  core loop: {core['events_per_s']:.0f} events/s, "
            f"{core['alerts']} alerts, other processes used "
            f"{core['other_processes_cores']:.2f} cores"
        )
    floors: dict[str, dict[str, Any]] = {}
    for variant in faustfloor.variants_to_run(args.skip):
        await env.quiet()
        floor = floors[variant] = await faustfloor.faust_floor(
            variant,
            env.bootstrap,
            env.broker_pid,
            prefix,
            len(lines),
            args,
            env.workdir,
        )
        log(
            f"  {variant}: {floor['events_per_s']:.0f} events/s, "
            f"{floor['events_per_s_in_agent']:.0f} in the agent, CPU share "
            f"{_rounded(floor['agent_cpu_share'])}, other processes used "
            f"{floor['other_processes_cores']:.2f} cores"
        )
    if "worker" not in args.skip:
        await env.quiet()
        result = await worker_throughput(
            env.bootstrap, env.broker_pid, prefix, len(lines), args, env.workdir
        )
        result["produce"] = produced
        log(
            f"  worker: {result['events_per_s']:.0f} events/s, worker CPU share "
            f"{_rounded(result['worker_cpu_share'])}, other processes used "
            f"{_rounded(result['other_processes_cores'])} cores"
        )
    if raw is not None:
        runs["raw"].append(raw)
    if core is not None:
        runs["core"].append(core)
    for variant, floor in floors.items():
        runs[variant].append(floor)
    if result is not None:
        runs["worker"].append(result)


def _rounded(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


async def latency_repeat(
    env: Bench,
    attempt: int,
    live: list[bytes],
    rate: float,
    runs: dict[str, list[dict[str, Any]]],
) -> None:
    args = env.args
    prefix = f"bench-{env.token}-l{rate:.0f}-{attempt}-"
    log(
        f"latency run {attempt + 1}, {len(live)} events at {rate:.0f}/s, "
        f"prefix {prefix}"
    )
    await env.quiet()
    result = await latency_run(env.bootstrap, prefix, live, rate, args, env.workdir)
    runs["latency"].append(result)
    if result["latency_ms"] is not None:
        log(
            f"  latency p50 {result['latency_ms']['p50']:.0f} ms, "
            f"p99 {result['latency_ms']['p99']:.0f} ms"
        )


async def profile_runs(env: Bench, lines: list[bytes]) -> dict[str, Any]:
    """Run the worker twice under py-spy: an SVG and raw stacks with idle time."""
    args = env.args
    results: dict[str, Any] = {}
    for fmt, name in (
        ("flamegraph", "worker-profile.svg"),
        ("raw", "worker-profile.txt"),
    ):
        prefix = f"bench-{env.token}-p{fmt[0]}-"
        log(f"profile run ({fmt}), prefix {prefix}")
        settings = settings_for(env.bootstrap, prefix, args.partitions)
        await create_topics(settings)
        await produce(settings, lines)
        output = args.results / name
        output.parent.mkdir(parents=True, exist_ok=True)
        await env.quiet()
        try:
            run = await worker_throughput(
                env.bootstrap,
                env.broker_pid,
                prefix,
                len(lines),
                args,
                env.workdir,
                pyspy=pyspy_command(output, fmt, args.run_timeout),
            )
        except RunFailed as exc:
            env.record_failure(f"profile ({fmt})", 0, exc)
            continue
        log(f"  profiled worker: {run['events_per_s']:.0f} events/s")
        results[fmt] = {"file": str(output), "run": run}
    raw_path = args.results / "worker-profile.txt"
    if "raw" in results and raw_path.exists():
        summary = pyspy_summary.summarise(raw_path)
        results["summary"] = summary
        (args.results / "worker-profile-summary.txt").write_text(
            pyspy_summary.render(summary)
        )
        print(pyspy_summary.render(summary))
    return results


def summarise(
    runs: dict[str, list[dict[str, Any]]], replay_alerts: int | None
) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    if runs["raw"]:
        summary["raw_events_per_s"] = spread([r["events_per_s"] for r in runs["raw"]])
    if runs["worker"]:
        worker = runs["worker"]
        summary["worker_events_per_s"] = spread([r["events_per_s"] for r in worker])
        summary["worker_events_per_s_to_last_output"] = spread(
            [r["events_per_s_to_last_output"] for r in worker]
        )
        summary["worker_startup_seconds"] = spread(
            [r["startup_seconds"] for r in worker]
        )
        shares = [r["worker_cpu_share"] for r in worker if r["worker_cpu_share"]]
        if shares:
            summary["worker_cpu_share"] = spread(shares)
        per_event = [
            r["worker_cpu_us_per_event"]
            for r in worker
            if r.get("worker_cpu_us_per_event")
        ]
        if per_event:
            summary["worker_cpu_us_per_event"] = spread(per_event)
        summary["worker_alerts"] = [r["outputs"]["risk.alerts"] for r in worker]
        summary["replay_alerts"] = replay_alerts
    if runs["raw"] and runs["worker"]:
        ratio = _ratio(summary, runs, "worker", "raw")
        summary["budget_worker_to_raw"] = {
            "budget": BUDGET_WORKER_TO_RAW,
            "measured": ratio,
            "met": ratio >= BUDGET_WORKER_TO_RAW,
        }
    if runs["core"]:
        summary["core_events_per_s"] = spread([r["events_per_s"] for r in runs["core"]])
        summary["core_alerts"] = [r["alerts"] for r in runs["core"]]
    if runs["core"] and runs["worker"]:
        _ratio(summary, runs, "worker", "core")
    for variant in faustfloor.VARIANTS:
        floors = runs[variant]
        if not floors:
            continue
        summary[f"{variant}_events_per_s"] = spread([r["events_per_s"] for r in floors])
        summary[f"{variant}_events_per_s_in_agent"] = spread(
            [r["events_per_s_in_agent"] for r in floors]
        )
        shares = [r["agent_cpu_share"] for r in floors if r["agent_cpu_share"]]
        if shares:
            summary[f"{variant}_cpu_share"] = spread(shares)
        if runs["raw"]:
            _ratio(summary, runs, variant, "raw")
    rates = sorted({r["target_rate"] for r in runs["latency"]}, reverse=True)
    summary["latency_by_rate"] = {}
    for rate in rates:
        latency = [
            r for r in runs["latency"] if r["target_rate"] == rate and r["latency_ms"]
        ]
        if not latency:
            continue
        summary["latency_by_rate"][f"{rate:.0f}"] = {
            "runs": len(latency),
            "achieved_rate": statistics.median(r["achieved_rate"] for r in latency),
            "latency_ms": _median_of(latency, "latency_ms"),
            "latency_to_receipt_ms": _median_of(latency, "latency_to_receipt_ms"),
            "matched_scores": [r["matched_scores"] for r in latency],
            "unmatched_scores": [r["unmatched_scores"] for r in latency],
        }
    return summary


def _ratio(
    summary: dict[str, Any],
    runs: dict[str, list[dict[str, Any]]],
    measured: str,
    loop: str,
) -> float:
    """Record one measurement's rate against a loop's, overall and per repeat."""
    ratio = (
        summary[f"{measured}_events_per_s"]["median"]
        / summary[f"{loop}_events_per_s"]["median"]
    )
    summary[f"{measured}_to_{loop}"] = ratio
    summary[f"{measured}_to_{loop}_per_repeat"] = [
        this["events_per_s"] / other["events_per_s"]
        for this, other in zip(runs[measured], runs[loop], strict=True)
    ]
    return ratio


def _median_of(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    return {
        stat: statistics.median(r[key][stat] for r in runs)
        for stat in ("p50", "p90", "p99", "max")
    }


def print_summary(summary: dict[str, Any]) -> None:
    print()
    floor_keys = [
        f"{variant}_{measure}"
        for variant in faustfloor.VARIANTS
        for measure in ("events_per_s", "events_per_s_in_agent", "cpu_share")
    ]
    for key in (
        "raw_events_per_s",
        "core_events_per_s",
        *floor_keys,
        "worker_events_per_s",
        "worker_events_per_s_to_last_output",
        "worker_startup_seconds",
        "worker_cpu_share",
        "worker_cpu_us_per_event",
    ):
        if key in summary:
            row = summary[key]
            print(
                f"{key:<38} median {row['median']:>9.1f}  min {row['min']:>9.1f}  "
                f"max {row['max']:>9.1f}  runs {row['runs']}"
            )
    if "worker_to_raw" in summary:
        budget = summary["budget_worker_to_raw"]
        print(
            f"worker/raw ratio (medians): {summary['worker_to_raw']:.3f}; budget "
            f">= {budget['budget']:.3f}: {'met' if budget['met'] else 'MISSED'}"
        )
    if "worker_to_core" in summary:
        print(
            f"worker/core loop ratio (medians): {summary['worker_to_core']:.3f}, "
            "the share of the same work's rate that Faust keeps"
        )
    for variant in faustfloor.VARIANTS:
        if f"{variant}_to_raw" in summary:
            print(f"{variant}/raw ratio (medians): {summary[f'{variant}_to_raw']:.3f}")
    if "worker_alerts" in summary:
        print(
            f"alerts per worker run: {summary['worker_alerts']}, replay: "
            f"{summary['replay_alerts']}"
        )
    for rate, row in summary.get("latency_by_rate", {}).items():
        for key in ("latency_ms", "latency_to_receipt_ms"):
            stats = row[key]
            print(
                f"{key} at {rate}/s (median of {row['runs']} runs): p50 "
                f"{stats['p50']:.0f}  p90 {stats['p90']:.0f}  p99 {stats['p99']:.0f}  "
                f"max {stats['max']:.0f}"
            )


def print_failures(failures: list[dict[str, Any]]) -> None:
    if not failures:
        return
    print(f"\n{len(failures)} failed runs (replaced by further attempts):")
    for failure in failures:
        print(f"  {failure['kind']}: {failure['reason'].splitlines()[0]}")
        for error in failure.get("worker_errors", []):
            print(f"    worker error: {error.splitlines()[0][:200]}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    # Enough customers that --days of simulated history holds --events events.
    years = args.days / 365
    customers = (
        args.customers or int(args.events / EVENTS_PER_CUSTOMER_YEAR / years) + 1
    )
    log(f"simulating {customers} customers x {args.days} days, seed {args.seed}")
    lines = simulated_lines(customers, args.days, args.seed, limit=args.events)
    if len(lines) < args.events:
        raise SystemExit(
            f"--events: the simulation made {len(lines)} events, fewer than "
            f"{args.events}; raise --customers or --days"
        )

    replay_alerts = None
    if args.check_replay and "worker" not in args.skip:
        log("replaying the same events in-process for the alert count")
        replay_alerts = len(
            replay(lines, load_config(None), partitions=args.partitions).alerts
        )

    measured = asyncio.run(run_all(args, lines))
    summary = summarise(measured["runs"], replay_alerts)
    print_summary(summary)
    print_failures(measured["failures"])

    info["load_average_at_end"] = os.getloadavg()
    check_sources(info)
    write_json(
        args.results / "worker.json",
        {
            "benchmark": "worker",
            "command": " ".join(["python", "bench/worker.py", *sys.argv[1:]]),
            "started": started,
            "machine": info,
            "parameters": vars(args)
            | {"results": str(args.results), "customers": customers},
            "summary": summary,
            **measured,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
