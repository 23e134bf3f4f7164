"""The ``riskstream demo`` command: score CDNOW end to end and write a report.

The demo converts the CDNOW data set, whose orders are real and whose
invoices and payments are simulated (see :mod:`riskstream.datasets.cdnow`).
It scores the events in-process with :func:`riskstream.drivers.replay.replay`,
or through a Kafka worker with :func:`run_through_worker`. Then it writes
``alerts.jsonl``, ``scores.jsonl``, ``summary.json``, ``report.html`` and PNG
plots.

The replay runs without ``until_s``: like a worker with ``--clock event``,
each partition's clock stops at its last event, so both paths can give the
same alerts.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from riskstream.config import ScoringConfig, load_config
from riskstream.errors import RiskstreamError
from riskstream.report import alert_origin, raising
from riskstream.report_signals import rule_overview
from riskstream.settings import Settings

EVENTS_FILE = "cdnow-events.jsonl"
TOP_CUSTOMERS = 10
WORKER_MERGE_HOLD_S: float | None = None
"""``merge_hold_s`` of the demo's worker; None keeps the worker's default."""
WORKER_STOP_TIMEOUT_S = 30.0
LAG_CHECK_INTERVAL_S = 2.0
MIN_IDLE_S = 3.0
"""Quiet time after which the worker counts as done once it has no input lag."""

_WORKER_ENTRY = "import sys; from riskstream.cli import main; sys.exit(main())"


class DemoError(RiskstreamError):
    """The demo could not finish: the worker failed or timed out."""


@dataclass
class RunOutput:
    """Outputs of one scoring run, from replay or from a worker."""

    mode: str
    """``replay`` or ``worker``."""
    events: int
    """Input events processed."""
    alerts: list[dict[str, Any]]
    """Alerts sorted by ``raised_at``, customer and alert id."""
    scores: dict[str, dict[str, Any]]
    """Latest assessment of every customer, by customer id."""
    details: dict[str, Any] = field(default_factory=dict)
    """Facts about the run, such as the topic prefix of a worker run."""


@dataclass
class DemoOutput:
    """Outputs of :func:`run_demo`: the run, its summary and the files written."""

    run: RunOutput
    summary: dict[str, Any]
    paths: dict[str, Path]
    seconds: float


def sort_alerts(alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sort alert updates by ``raised_at``, customer, alert id and sequence."""
    return sorted(
        alerts,
        key=lambda a: (a["raised_at"], a["customer_id"], a["alert_id"], a["sequence"]),
    )


def run_in_process(
    events_path: Path,
    config: ScoringConfig,
    *,
    partitions: int = 4,
    progress: bool = True,
) -> RunOutput:
    """Replay the events file in-process, with a progress bar on stderr."""
    from riskstream.drivers.replay import read_lines, replay
    from riskstream.progress import progress_bar

    total = sum(1 for _ in read_lines(events_path))
    if progress:
        with progress_bar(total, "replay") as advance:
            result = replay(
                read_lines(events_path),
                config,
                partitions=partitions,
                on_message=advance,
            )
    else:
        result = replay(read_lines(events_path), config, partitions=partitions)
    return RunOutput(
        mode="replay",
        events=result.messages,
        alerts=sort_alerts(result.alerts),
        scores=dict(sorted(result.scores.items())),
        details={
            "partitions": partitions,
            "dead_letters": len(result.dead_letters),
            "duplicates": result.duplicates,
            "models": result.summary()["models"],
        },
    )


# -- the worker path ---------------------------------------------------------


def run_through_worker(
    bootstrap: str,
    events_path: Path,
    *,
    work_dir: Path,
    topic_prefix: str | None = None,
    app_id: str | None = None,
    partitions: int = 4,
    rules_file: str | None = None,
    idle_timeout_s: float = 30.0,
    timeout_s: float = 1800.0,
    merge_hold_s: float | None = WORKER_MERGE_HOLD_S,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> RunOutput:
    """Score the events file with a ``riskstream worker`` subprocess on Kafka.

    Creates the topics under ``topic_prefix``, produces every event, starts
    ``riskstream worker --clock event`` with an in-memory store, and reads
    ``risk.alerts`` and ``risk.scores`` from the start. Reading stops once
    the worker's consumer group has committed every input message and no
    output arrived for :data:`MIN_IDLE_S`. If no output arrives for
    ``idle_timeout_s`` (counted from the worker's start until the first
    output) while input is still uncommitted, the run fails. Either way the
    worker is stopped by its PID (SIGTERM, then SIGKILL after
    :data:`WORKER_STOP_TIMEOUT_S`).

    Args:
        bootstrap: ``HOST:PORT`` of the broker, or a ``kafka://`` URL.
        events_path: JSONL file of events.
        work_dir: folder for the worker's log (``worker.log``) and data.
        topic_prefix: prefix of every topic; a fresh ``demo-RANDOM-`` if None.
        app_id: Faust app id and consumer group; derived from the prefix if None.
        partitions: partitions of the new topics.
        rules_file: scoring rules YAML for the worker (default: packaged).
        idle_timeout_s: maximum quiet time on the output topics, in seconds.
        timeout_s: maximum time in seconds from the worker's start to the end
            of reading.
        merge_hold_s: ``RISKSTREAM_MERGE_HOLD_S`` of the worker; None keeps
            the worker's own setting.
        progress: show a progress bar while producing.
        echo: where to print the worker's start message.

    Raises:
        DemoError: the worker exited early, went quiet with input left, or
            reading timed out.
    """
    from riskstream.drivers.replay import read_lines
    from riskstream.kafka_io import ensure_topics, produce_lines

    broker = bootstrap if "://" in bootstrap else f"kafka://{bootstrap}"
    prefix = topic_prefix if topic_prefix is not None else _fresh_prefix()
    app_id = app_id or f"{prefix}riskstream".replace(".", "-")
    values: dict[str, Any] = {
        "broker": broker,
        "topic_prefix": prefix,
        "partitions": partitions,
        "app_id": app_id,
    }
    settings = Settings(**values)
    work_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(settings))

    total = sum(1 for _ in read_lines(events_path))
    if progress:
        from riskstream.progress import progress_bar

        with progress_bar(total, "produce") as advance:
            counts = asyncio.run(
                produce_lines(settings, _counted(read_lines(events_path), advance))
            )
    else:
        counts = asyncio.run(produce_lines(settings, read_lines(events_path)))
    produced = sum(counts.values())

    log_path = work_dir / "worker.log"
    echo(f"starting the worker (app id {app_id}); log: {log_path}")
    worker = _start_worker(settings, work_dir, log_path, rules_file, merge_hold_s)
    started = time.monotonic()
    try:
        collected = asyncio.run(
            _collect_outputs(
                settings,
                worker,
                log_path,
                idle_timeout_s=idle_timeout_s,
                timeout_s=timeout_s,
            )
        )
    finally:
        exit_code = _stop_worker(worker)
    return RunOutput(
        mode="worker",
        events=produced - (collected.lag or 0),
        alerts=sort_alerts(collected.alerts.values()),
        scores=dict(sorted(collected.scores.items())),
        details={
            "broker": broker,
            "topic_prefix": prefix,
            "app_id": app_id,
            "partitions": partitions,
            "produced": produced,
            "unprocessed": collected.lag,
            "lag_checks_failed": collected.lag_checks_failed,
            "duplicate_alerts": collected.duplicate_alerts,
            "worker_seconds": round(time.monotonic() - started, 1),
            "merge_hold_s": merge_hold_s,
            "worker_exit_code": exit_code,
            "worker_log": str(log_path),
        },
    )


@dataclass
class _Collected:
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicate_alerts: int = 0
    lag: int | None = None
    """Input messages not committed by the worker; None if unknown."""
    lag_checks_failed: int = 0


def _fresh_prefix() -> str:
    return f"demo-{secrets.token_hex(4)}-"


def _counted(lines: Iterator[bytes], advance: Callable[[int], None]) -> Iterator[bytes]:
    for number, line in enumerate(lines, start=1):
        yield line
        advance(number)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_worker(
    settings: Settings,
    work_dir: Path,
    log_path: Path,
    rules_file: str | None,
    merge_hold_s: float | None,
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-c",
        _WORKER_ENTRY,
        "worker",
        "--broker",
        settings.broker,
        "--clock",
        "event",
        "--topic-prefix",
        settings.topic_prefix,
        "--app-id",
        settings.app_id,
        "--partitions",
        str(settings.partitions),
        "--store",
        "memory://",
        "--data-dir",
        str(work_dir / "worker-data"),
        "--web-port",
        str(_free_port()),
        "--metrics-port",
        "0",
    ]
    if rules_file:
        command += ["--rules-file", rules_file]
    environment = dict(os.environ)
    if merge_hold_s is not None:
        environment["RISKSTREAM_MERGE_HOLD_S"] = str(merge_hold_s)
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )


def _stop_worker(worker: subprocess.Popen[bytes]) -> int | None:
    """Stop the worker by its PID; return its exit code."""
    if worker.poll() is not None:
        return worker.returncode
    os.kill(worker.pid, signal.SIGTERM)
    try:
        return worker.wait(timeout=WORKER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(
            f"the worker (PID {worker.pid}) did not stop within "
            f"{WORKER_STOP_TIMEOUT_S:.0f} s of SIGTERM; sending SIGKILL",
            file=sys.stderr,
        )
        os.kill(worker.pid, signal.SIGKILL)
        return worker.wait(timeout=WORKER_STOP_TIMEOUT_S)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


async def _collect_outputs(
    settings: Settings,
    worker: subprocess.Popen[bytes],
    log_path: Path,
    *,
    idle_timeout_s: float,
    timeout_s: float,
) -> _Collected:
    from aiokafka import AIOKafkaConsumer

    from riskstream.kafka_io import bootstrap_of

    alerts_topic = settings.topic("risk.alerts")
    scores_topic = settings.topic("risk.scores")
    consumer = AIOKafkaConsumer(
        alerts_topic,
        scores_topic,
        bootstrap_servers=bootstrap_of(settings.broker),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    collected = _Collected()
    await consumer.start()
    try:
        started = last_output = time.monotonic()
        next_lag_check = started
        next_status = started + 10.0
        while True:
            if worker.poll() is not None:
                raise DemoError(
                    f"the worker exited with status {worker.returncode} before it "
                    f"finished; last lines of {log_path}:\n{_log_tail(log_path)}"
                )
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            now = time.monotonic()
            for tp, records in batch.items():
                for record in records:
                    if record.value is None:
                        continue
                    document = orjson.loads(record.value)
                    if tp.topic == alerts_topic:
                        if document["update_id"] in collected.alerts:
                            collected.duplicate_alerts += 1
                        collected.alerts[document["update_id"]] = document
                    else:
                        collected.scores[document["customer_id"]] = document
                    last_output = now
            idle = now - last_output
            if idle >= idle_timeout_s:
                collected.lag = await _checked_lag(settings, collected)
                if collected.lag:
                    raise DemoError(
                        f"the worker sent no output for {idle_timeout_s:.0f} s but "
                        f"left {collected.lag} input messages uncommitted; see "
                        f"{log_path}"
                    )
                break
            if idle >= MIN_IDLE_S and now >= next_lag_check:
                next_lag_check = now + LAG_CHECK_INTERVAL_S
                collected.lag = await _checked_lag(settings, collected)
                if collected.lag == 0:
                    break
            if now >= next_status:
                next_status = now + 10.0
                print(
                    f"worker: {len(collected.alerts)} alerts and scores of "
                    f"{len(collected.scores)} customers received so far",
                    file=sys.stderr,
                )
            if now - started >= timeout_s:
                raise DemoError(
                    f"timed out after {timeout_s:.0f} s waiting for the worker to "
                    f"finish ({len(collected.alerts)} alerts received); raise "
                    f"--timeout or see {log_path}"
                )
    finally:
        await consumer.stop()
    return collected


async def _checked_lag(settings: Settings, collected: _Collected) -> int | None:
    lag = await _input_lag(settings)
    if lag is None:
        collected.lag_checks_failed += 1
    return lag


async def _input_lag(settings: Settings) -> int | None:
    """Count input messages the worker's consumer group has not committed.

    A partition without a committed offset counts in full. Returns None when
    the broker cannot tell yet, for example before the group has a
    coordinator.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    from riskstream.kafka_io import INPUT_TOPICS, bootstrap_of

    bootstrap = bootstrap_of(settings.broker)
    partitions = [
        TopicPartition(settings.topic(topic), number)
        for topic in INPUT_TOPICS
        for number in range(settings.partitions)
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await probe.start()
    try:
        committed = await admin.list_consumer_group_offsets(
            settings.app_id, partitions=partitions
        )
        ends = await probe.end_offsets(partitions)
    except KafkaError:
        # Expected until the worker's group exists; the caller counts these.
        return None
    finally:
        await probe.stop()
        await admin.close()
    lag = 0
    for tp, end in ends.items():
        done = committed.get(tp)
        offset = done.offset if done is not None and done.offset >= 0 else 0
        lag += max(0, end - offset)
    return lag


# -- summary and files -------------------------------------------------------


def summarize(
    run: RunOutput, events_by_type: dict[str, int], config: ScoringConfig
) -> dict[str, Any]:
    """Build the summary that the demo prints and writes to ``summary.json``."""
    updates = run.alerts
    alerts = raising(updates)
    opened = [alert for alert in updates if alert["status"] == "opened"]
    alerts_per_customer = Counter(alert["customer_id"] for alert in opened)
    ranked = sorted(
        run.scores.values(),
        key=lambda s: (
            -s["risk_score"],
            -alerts_per_customer[s["customer_id"]],
            s["customer_id"],
        ),
    )
    top = [
        {
            "customer_id": score["customer_id"],
            "risk_score": score["risk_score"],
            "level": score["level"],
            "alerts": alerts_per_customer[score["customer_id"]],
            "reasons": [describe_reason(reason) for reason in score["reasons"]],
        }
        for score in ranked[:TOP_CUSTOMERS]
    ]
    return {
        "mode": run.mode,
        "events": run.events,
        "events_by_type": dict(sorted(events_by_type.items())),
        "customers": len(run.scores),
        "alerts": len(opened),
        "alert_updates": len(updates),
        "alert_updates_by_status": _count(alert["status"] for alert in updates),
        "alerts_by_signal_kind": _count(alert["signal_kind"] for alert in opened),
        "alerts_by_severity": _count(alert["severity"] for alert in alerts),
        "alerts_by_rule": _count(rule for a in alerts for rule in a["rules_fired"]),
        "alerts_by_origin": _count(alert_origin(alert, config) for alert in alerts),
        "customers_by_level": _count(score["level"] for score in run.scores.values()),
        "signals": rule_overview(updates, run.scores, config),
        "top_customers": top,
        "details": run.details,
    }


def describe_reason(reason: dict[str, Any]) -> str:
    """Format one reason of a score as ``rule (signal value op threshold)``.

    >>> describe_reason({"rule": "overdue_30d", "signal": "days_past_due",
    ...     "value": 41.0, "op": ">=", "threshold": 30, "points": 25})
    'overdue_30d (days_past_due 41 >= 30)'
    """
    value = reason["value"]
    shown = "none" if value is None else f"{value:g}"
    return (
        f"{reason['rule']} ({reason['signal']} {shown} {reason['op']} "
        f"{reason['threshold']:g})"
    )


def _count(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def format_summary(summary: dict[str, Any]) -> str:
    """Render the summary as text for the terminal."""
    lines = [f"events processed: {summary['events']} ({summary['mode']})"]
    for kind, count in summary["events_by_type"].items():
        origin = "real CDNOW" if kind == "order.placed" else "simulated"
        lines.append(f"  {kind}: {count} ({origin})")
    lines.append(f"customers scored: {summary['customers']}")
    lines.append(
        f"alerts opened: {summary['alerts']}, alert updates published: "
        f"{summary['alert_updates']}"
    )
    for title, key in (
        ("by signal kind", "alerts_by_signal_kind"),
        ("updates by status", "alert_updates_by_status"),
        ("opened or escalated, by severity", "alerts_by_severity"),
        ("opened or escalated, by data they rest on", "alerts_by_origin"),
        ("opened or escalated, by rule fired", "alerts_by_rule"),
    ):
        counts = ", ".join(f"{name} {count}" for name, count in summary[key].items())
        lines.append(f"  {title}: {counts or 'none'}")
    levels = ", ".join(
        f"{name} {count}" for name, count in summary["customers_by_level"].items()
    )
    lines.append(f"customers by level at the end: {levels}")
    lines.append(f"top {TOP_CUSTOMERS} customers by risk score:")
    for row in summary["top_customers"]:
        reasons = "; ".join(row["reasons"]) or "no rule firing"
        lines.append(
            f"  {row['customer_id']}  {row['risk_score']:5.1f} {row['level']:<8} "
            f"{row['alerts']:3d} alerts  {reasons}"
        )
    return "\n".join(lines)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write one JSON object per line."""
    with path.open("wb") as handle:
        for row in rows:
            handle.write(orjson.dumps(row) + b"\n")


def read_orders(events_path: Path, customer_id: str) -> list[dict[str, Any]]:
    """Return the ``order.placed`` events of one customer, in file order."""
    needle = f'"customer_id":"{customer_id}"'.encode()
    orders = []
    with events_path.open("rb") as handle:
        for line in handle:
            if needle in line and b'"order.placed"' in line:
                event = orjson.loads(line)
                if event["type"] == "order.placed":
                    orders.append(event)
    return orders


def pick_customer(summary: dict[str, Any]) -> str | None:
    """Pick the customer whose history is plotted: the top one with most alerts.

    Ties go to the higher-ranked customer.
    """
    top = summary["top_customers"]
    if not top:
        return None
    best = max(top, key=lambda row: row["alerts"])
    return str(best["customer_id"])


def run_demo(
    out_dir: Path,
    *,
    broker: str | None = None,
    seed: int = 7,
    customers: int | None = None,
    rules_file: str | None = None,
    partitions: int = 4,
    customer: str | None = None,
    topic_prefix: str | None = None,
    app_id: str | None = None,
    idle_timeout_s: float = 30.0,
    timeout_s: float = 1800.0,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> DemoOutput:
    """Convert CDNOW, score it, print the summary and write files and report."""
    from riskstream.datasets.cdnow import convert, locate_master_file
    from riskstream.plotting import check_plotting
    from riskstream.report import write_report

    check_plotting()
    started = time.perf_counter()
    config = load_config(rules_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    events_path = out_dir / EVENTS_FILE
    source = locate_master_file()
    stats = convert(events_path, seed=seed, customers=customers, path=source)
    echo(
        f"{events_path}: {stats.events} events from {stats.orders} CDNOW purchases "
        f"of {stats.customers} customers; skipped {stats.zero_value_rows} "
        "purchases worth 0.00"
    )

    if broker is None:
        run = run_in_process(
            events_path, config, partitions=partitions, progress=progress
        )
    else:
        run = run_through_worker(
            broker,
            events_path,
            work_dir=out_dir,
            topic_prefix=topic_prefix,
            app_id=app_id,
            partitions=partitions,
            rules_file=rules_file,
            idle_timeout_s=idle_timeout_s,
            timeout_s=timeout_s,
            progress=progress,
            echo=echo,
        )
    summary = summarize(run, dict(stats.events_by_type), config)
    summary["data"] = {
        "source": str(source),
        "seed": seed,
        "customers_requested": customers,
        "purchases": stats.rows,
        "orders": stats.orders,
        "zero_value_purchases_skipped": stats.zero_value_rows,
        "customers_without_orders": stats.customers_without_orders,
    }
    paths = {
        "events": events_path,
        "alerts": out_dir / "alerts.jsonl",
        "scores": out_dir / "scores.jsonl",
        "summary": out_dir / "summary.json",
    }
    write_jsonl(paths["alerts"], run.alerts)
    write_jsonl(paths["scores"], run.scores.values())

    chosen = customer or pick_customer(summary)
    history = read_orders(events_path, chosen) if chosen else []
    if customer and not history:
        echo(f"customer {customer!r} has no orders in {events_path}; plot left empty")
    paths.update(
        write_report(
            out_dir,
            summary,
            run.alerts,
            run.scores,
            config,
            customer_id=chosen,
            customer_orders=history,
        )
    )
    seconds = time.perf_counter() - started
    summary["seconds"] = round(seconds, 1)
    paths["summary"].write_bytes(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n"
    )
    echo(format_summary(summary))
    for name, path in paths.items():
        echo(f"{name}: {path}")
    echo(f"finished in {seconds:.1f} s")
    return DemoOutput(run=run, summary=summary, paths=paths, seconds=seconds)
