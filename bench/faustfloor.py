"""Faust's own ceiling: agents that consume the worker's input and do little else.

Each variant is a Faust app in a subprocess, started from this file, with one
agent on the three input topics and a fresh app id, which is also its
consumer group. Its web server listens on 127.0.0.1 on a free port.

* ``floor_noack``: ``stream.noack_take`` with the worker's default batch size
  and timeout, as agents/app.py takes
  its batches. The agent does nothing with the messages, and after each batch
  it commits the offset after the batch's last message of each partition with
  ``app.consumer._commit``, as the worker does.
* ``floor_take``: ``stream.take`` with the same sizes, which acknowledges each batch
  to Faust when the agent's loop requests the next one. Faust commits the acked
  offsets on its own timer, every ``broker_commit_interval`` (2.8 s by
  default).
* ``floor_work``: ``floor_noack`` plus the raw loop's work per message
  (:func:`benchlib.update_customer`) and one ``app.producer.send`` per
  input. The agent flushes the producer before each commit, as the worker
  does, so no commit covers an unsent output.

The rate is the input event count divided by a span, as for the worker. The
span starts when the agent finishes its first batch, which for
``floor_noack`` and ``floor_work`` is when its first commit returns. The
worker's first output, where its span starts, is likewise sent at the end
of its first batch. The span ends at the poll at which the group's committed
offsets reach the end of every input partition. For ``floor_take`` that end
waits for Faust's commit timer, so ``events_per_s_in_agent`` is given as
well. It counts the events after the first batch and divides them by the
time from the end of the agent's first batch to the end of its last, by the
agent's own clock.

Run as a script, this file is the subprocess::

    python bench/faustfloor.py --variant floor_noack --bootstrap 127.0.0.1:PORT \
        --prefix PREFIX --events 100000 --web-port PORT --data-dir DIR \
        --report FILE
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
from benchlib import Contention, cpu_seconds, free_port, log, update_customer
from kafkabench import (
    POLL_INTERVAL_S,
    ChildProcess,
    OffsetWatch,
    RunFailed,
    StallWatch,
    check_local,
    end_offsets,
    input_partitions,
)

from riskstream.ordering import INPUT_TOPICS_IN_ORDER
from riskstream.settings import Settings

VARIANTS = ("floor_noack", "floor_take", "floor_work")
OUTPUT_TOPIC = "floor.out"
"""Output topic of ``floor_work``, after the run's topic prefix."""
BATCH_SIZE = Settings.model_fields["batch_size"].default
BATCH_TIMEOUT_S = Settings.model_fields["batch_timeout_s"].default
SESSION_TIMEOUT_S = Settings.model_fields["session_timeout_s"].default
"""The worker's default group session timeout, in place of Faust's 60 s."""


def variants_to_run(skip: Sequence[str]) -> list[str]:
    """Return the variants that neither ``--skip floor`` nor their name leaves out."""
    if "floor" in skip:
        return []
    return [variant for variant in VARIANTS if variant not in skip]


# -- the benchmark's side ----------------------------------------------------


async def faust_floor(
    variant: str,
    bootstrap: str,
    broker_pid: int | None,
    prefix: str,
    total: int,
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    """Run one floor variant on already produced input until it commits everything.

    ``args`` supplies ``partitions``, ``run_timeout``, ``stall_timeout`` and
    ``keep`` of bench/worker.py.
    """
    ends = await end_offsets(bootstrap, input_partitions(prefix, args.partitions))
    if sum(ends.values()) != total:
        raise RuntimeError(
            f"input topics contain {sum(ends.values())} events, not {total}"
        )
    app_id = f"{prefix}{variant}"
    data_dir = workdir / f"{app_id}-data"
    report = workdir / f"{app_id}.jsonl"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--variant",
        variant,
        "--bootstrap",
        bootstrap,
        "--prefix",
        prefix,
        "--app-id",
        app_id,
        "--partitions",
        str(args.partitions),
        "--events",
        str(total),
        "--web-port",
        str(free_port()),
        "--data-dir",
        str(data_dir),
        "--report",
        str(report),
    ]
    agent = ChildProcess(variant, command, workdir / f"{app_id}.log")
    first: dict[str, Any] | None = None
    first_cpu: tuple[float, float | None, float | None] | None = None
    contention: Contention | None = None
    async with OffsetWatch(bootstrap, app_id, ends) as watch:
        pid = agent.start()
        log(f"  {variant} pid {pid}: {' '.join(command)}")
        deadline = time.monotonic() + args.run_timeout
        next_report = time.monotonic() + 5
        stall = StallWatch(args.stall_timeout, f"{variant} pid {pid}", agent.log_path)
        try:
            while True:
                agent.check_alive()
                done = await watch.committed()
                now = time.time()
                stall.check(done)
                if first is None:
                    first = _read_report(report).get("first_batch")
                    if first is not None:
                        first_cpu = (now, agent.cpu_seconds(), _cpu(broker_pid))
                        own = [pid] if broker_pid is None else [pid, broker_pid]
                        contention = Contention(own)
                if done >= total:
                    done_s = now
                    done_cpu = (now, agent.cpu_seconds(), _cpu(broker_pid))
                    break
                if time.monotonic() > deadline:
                    raise RunFailed(
                        f"{variant} pid {pid} committed {done}/{total} events in "
                        f"{args.run_timeout:.0f} s (--run-timeout); see "
                        f"{agent.log_path}",
                        agent.log_path,
                    )
                if time.monotonic() >= next_report:
                    log(f"  {variant} committed {done}/{total}")
                    next_report = time.monotonic() + 5
                await asyncio.sleep(POLL_INTERVAL_S)
        finally:
            stopped = agent.stop()
    milestones = _read_report(report)
    first, last = milestones.get("first_batch"), milestones.get("last_batch")
    if first is None or last is None or first_cpu is None or contention is None:
        raise RunFailed(
            f"{variant} pid {pid} committed all {total} events but its report "
            f"{report} lacks the first or last batch: {milestones}",
            agent.log_path,
        )
    seconds = done_s - first["end_s"]
    in_agent_events = last["events"] - first["events"]
    in_agent_seconds = last["end_s"] - first["end_s"]
    result = {
        "events": total,
        "startup_seconds": first["end_s"] - agent.started_s,
        "seconds": seconds,
        "events_per_s": total / seconds,
        "events_per_s_in_agent": in_agent_events / max(1e-3, in_agent_seconds),
        "first_batch_events": first["events"],
        "events_seen_by_agent": last["events"],
        "batches": last["batches"],
        "agent_cpu_share": _share(first_cpu, done_cpu, 1),
        "agent_cpu_us_per_event": _per_event(first_cpu, done_cpu, total),
        "broker_cpu_share": _share(first_cpu, done_cpu, 2),
        "other_processes_cores": contention.other_cores(),
        "stop": stopped,
        "log": str(agent.log_path),
    }
    if not args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    return result


def _read_report(path: Path) -> dict[str, Any]:
    """Return the milestones the agent wrote so far, by name."""
    milestones: dict[str, Any] = {}
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return milestones
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            # The agent may be writing this line right now.
            continue
        milestones[record["milestone"]] = record
    return milestones


def _cpu(pid: int | None) -> float | None:
    return None if pid is None else cpu_seconds(pid)


def _share(
    first: tuple[float, float | None, float | None],
    last: tuple[float, float | None, float | None],
    index: int,
) -> float | None:
    """Return CPU seconds per wall second between two samples."""
    before, after = first[index], last[index]
    if before is None or after is None or last[0] <= first[0]:
        return None
    return (after - before) / (last[0] - first[0])


def _per_event(
    first: tuple[float, float | None, float | None],
    last: tuple[float, float | None, float | None],
    total: int,
) -> float | None:
    """Return the agent's CPU µs per input event between two samples.

    The worker's ``worker_cpu_us_per_event`` divides by all input events in
    the same way, although the span leaves out the first batch.
    """
    if first[1] is None or last[1] is None:
        return None
    return (last[1] - first[1]) / total * 1e6


# -- the subprocess ----------------------------------------------------------


class Milestones:
    """Event and batch counts of the agent, with a file of its first and last batch.

    Each line of the file is a JSON object with ``milestone``, ``events`` and
    ``batches`` (seen so far) and ``end_s`` (wall-clock time at the batch's end).
    """

    def __init__(self, path: Path, total: int) -> None:
        self.path = path
        self.total = total
        self.events = 0
        self.batches = 0

    def batch_done(self, events: int) -> None:
        before = self.events
        self.events += events
        self.batches += 1
        if self.batches == 1:
            self._write("first_batch")
        if before < self.total <= self.events:
            self._write("last_batch")

    def _write(self, milestone: str) -> None:
        line = {
            "milestone": milestone,
            "events": self.events,
            "batches": self.batches,
            "end_s": time.time(),
        }
        with self.path.open("ab") as out:
            out.write(orjson.dumps(line) + b"\n")


def build_app(args: argparse.Namespace) -> Any:
    """Create the Faust app of one variant and register its agent."""
    import faust

    settings: dict[str, Any] = {}
    if args.variant != "floor_take":
        # As in the worker: messages are never acknowledged to Faust, so
        # waiting for them at a rebalance or stop would never end, and the
        # livelock check would warn that Faust commits nothing.
        settings = {
            "stream_wait_empty": False,
            "broker_commit_livelock_soft_timeout": 24 * 3600.0,
        }
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=str(args.data_dir),
        topic_partitions=args.partitions,
        topic_replication_factor=1,
        web_host="127.0.0.1",
        web_port=args.web_port,
        web_bind="127.0.0.1",
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=max(1.0, SESSION_TIMEOUT_S / 5),
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        key_serializer="raw",
        value_serializer="raw",
        **settings,
    )
    topic = app.topic(
        *(f"{args.prefix}{name}" for name in INPUT_TOPICS_IN_ORDER),
        partitions=args.partitions,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    milestones = Milestones(args.report, args.events)
    agents = {
        "floor_noack": _noack_agent,
        "floor_take": _take_agent,
        "floor_work": _work_agent,
    }
    app.agent(topic, name=args.variant)(agents[args.variant](app, args, milestones))
    return app


def _noack_agent(app: Any, args: argparse.Namespace, milestones: Milestones) -> Any:
    async def agent(stream: Any) -> AsyncIterator[None]:
        async for events in stream.noack_take(BATCH_SIZE, BATCH_TIMEOUT_S):
            offsets = {}
            for event in events:
                message = event.message
                offsets[message.tp] = message.offset + 1
            await app.consumer._commit(offsets)
            milestones.batch_done(len(events))
            yield None

    return agent


def _take_agent(app: Any, args: argparse.Namespace, milestones: Milestones) -> Any:
    async def agent(stream: Any) -> AsyncIterator[None]:
        async for values in stream.take(BATCH_SIZE, BATCH_TIMEOUT_S):
            milestones.batch_done(len(values))
            yield None

    return agent


def _work_agent(app: Any, args: argparse.Namespace, milestones: Milestones) -> Any:
    out_topic = f"{args.prefix}{OUTPUT_TOPIC}"

    async def agent(stream: Any) -> AsyncIterator[None]:
        states: dict[str, dict[str, Any]] = {}
        send = app.producer.send
        async for events in stream.noack_take(BATCH_SIZE, BATCH_TIMEOUT_S):
            offsets = {}
            for event in events:
                message = event.message
                value = update_customer(states, message.value)
                await send(out_topic, message.key, value, None, None, None)
                offsets[message.tp] = message.offset + 1
            await app.producer.flush()
            await app.consumer._commit(offsets)
            milestones.batch_done(len(events))
            yield None

    return agent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run one Faust floor agent on a broker on 127.0.0.1 until "
        "stopped with SIGTERM.",
    )
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT on 127.0.0.1")
    parser.add_argument("--prefix", required=True, help="topic prefix of the run")
    parser.add_argument("--app-id", required=True, help="Faust app id and group")
    parser.add_argument("--partitions", type=int, default=4, help="per topic (4)")
    parser.add_argument(
        "--events",
        type=int,
        required=True,
        help="input events; the batch that reaches this count is the last one",
    )
    parser.add_argument(
        "--web-port", type=int, required=True, help="Faust web port on 127.0.0.1"
    )
    parser.add_argument(
        "--data-dir", type=Path, required=True, help="Faust's data folder"
    )
    parser.add_argument(
        "--report", type=Path, required=True, help="JSON lines file for milestones"
    )
    args = parser.parse_args(argv)
    check_local(args.bootstrap)
    return args


def main(argv: list[str] | None = None) -> int:
    from faust.worker import Worker as FaustWorker

    from riskstream.logs import configure_logging

    args = parse_args(argv)
    configure_logging("json", "INFO")
    app = build_app(args)
    FaustWorker(
        app, loglevel="INFO", quiet=True, override_logging=False
    ).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
