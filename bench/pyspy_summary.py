"""Sum up a py-spy raw profile (collapsed stacks) of the riskstream worker.

py-spy ``record --format raw`` writes one line per distinct stack: frames from
the root to the leaf separated by ``;``, each ``function (file:line)``, then a
space and the sample count. This script reports

* busy and idle shares: a sample is idle when py-spy marked the thread idle,
  which with ``--idle`` shows as a leaf in ``selectors.py`` (the event loop
  waiting for sockets or timers);
* inclusive shares of named steps (a sample counts for every step on its
  stack), as a share of busy samples;
* exclusive shares by the area of the leaf frame (core, parsing, Faust,
  aiokafka, asyncio, ...), as a share of busy samples.

Without ``--native`` py-spy records Python frames only, so time in a C
extension (orjson, pydantic-core, rocksdict) counts for the Python line that
called it.

Example::

    python bench/pyspy_summary.py bench/results/worker-profile.txt
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

STEPS: tuple[tuple[str, str, str], ...] = (
    # (step, file suffix or folder, qualified function as py-spy prints it);
    # an empty function matches any function of the file or folder.
    ("Worker.process: take a batch, parse, queue", "agents/app.py", "Worker.process"),
    ("Worker.release_held: timer release", "agents/app.py", "Worker.release_held"),
    (
        "Worker._release: run, publish, write, commit",
        "agents/app.py",
        "Worker._release",
    ),
    ("try_parse (parse_event, pydantic)", "riskstream/runner.py", "try_parse"),
    (
        "EventTimeMerger.pop_ready",
        "riskstream/ordering.py",
        "EventTimeMerger.pop_ready",
    ),
    (
        "PartitionRunner.handle: the core per event",
        "riskstream/runner.py",
        "PartitionRunner.handle",
    ),
    (
        "  PartitionRunner.advance_to: crossings",
        "riskstream/runner.py",
        "PartitionRunner.advance_to",
    ),
    ("  Engine.apply", "riskstream/engine.py", "Engine.apply"),
    ("  Engine.next_due", "riskstream/engine.py", "Engine.next_due"),
    ("  Engine.evaluate", "riskstream/engine.py", "Engine.evaluate"),
    ("  compute_signals", "riskstream/features.py", "compute_signals"),
    ("  LatePaymentModel (river)", "riskstream/model.py", ""),
    ("  TableStore.get: table read + from_bytes", "agents/app.py", "TableStore.get"),
    (
        "Worker._publish: alerts, scores, dead letters",
        "agents/app.py",
        "Worker._publish",
    ),
    ("  Engine.assessment: score payload", "riskstream/engine.py", "Engine.assessment"),
    ("  Topic.send (faust)", "faust/topics.py", "Topic.send"),
    (
        "table writes: ManagedUserDict.__setitem__",
        "mode/utils/collections.py",
        "ManagedUserDict.__setitem__",
    ),
    ("  CustomerState.to_bytes", "riskstream/state.py", "CustomerState.to_bytes"),
    (
        "  Collection.send_changelog (faust)",
        "faust/tables/base.py",
        "Collection.send_changelog",
    ),
    ("faust ProducerBuffer (changelog sends)", "faust/transport/producer.py", ""),
    ("faust RocksDB store", "faust/stores/rocksdb.py", ""),
    ("faust streams.py (stream iteration)", "faust/streams.py", ""),
    ("faust transport/consumer.py", "faust/transport/consumer.py", ""),
    ("faust aiokafka driver", "faust/transport/drivers/aiokafka.py", ""),
    ("faust sensors (Monitor)", "faust/sensors/", ""),
    ("aiokafka consumer", "aiokafka/consumer/", ""),
    ("aiokafka producer", "aiokafka/producer/", ""),
    ("metrics.observe_batch", "agents/metrics.py", "observe_batch"),
    ("Worker.runner_for", "agents/app.py", "Worker.runner_for"),
    ("logging", "logging/__init__.py", ""),
)

THREADS: tuple[tuple[str, str], ...] = (
    # (thread, a function on every stack of that thread), first match wins.
    ("consumer thread (Faust's aiokafka consumer loop)", "ServiceThread._start_thread"),
    ("metrics HTTP server (prometheus_client)", "BaseServer.serve_forever"),
    ("main thread (Faust event loop, our code)", "<module>"),
)
MAIN_THREAD = THREADS[-1][0]
TASK_WRAPPERS = ("Service._execute_task", "Agent._execute_actor", "Agent._slurp")
"""Frames of mode and Faust that only run a task; the frame after names it."""
IDLE_LEAVES = ("select", "poll", "wait", "acquire")
"""Leaf method names of a waiting thread (selectors, threading)."""

AREAS: tuple[tuple[str, str], ...] = (
    # (area, path fragment of the leaf frame's file), first match wins.
    ("riskstream parse (events.py, pydantic)", "riskstream/events.py"),
    ("riskstream core (engine, features, runner, state)", "riskstream/"),
    ("riskstream worker (agents/app.py, metrics)", "riskstream_agents/"),
    ("riskstream worker (agents/app.py, metrics)", "agents/"),
    ("pydantic", "pydantic"),
    ("river (model)", "river/"),
    ("faust tables and stores", "faust/tables/"),
    ("faust tables and stores", "faust/stores/"),
    ("faust streams, topics and transport", "faust/"),
    ("mode (faust services)", "mode/"),
    ("aiokafka", "aiokafka/"),
    ("kafka protocol (aiokafka record codecs)", "kafka/"),
    ("asyncio event loop", "asyncio/"),
    ("logging and structlog", "structlog/"),
    ("logging and structlog", "logging/"),
    ("prometheus_client", "prometheus_client/"),
)


def parse_frame(text: str) -> tuple[str, str]:
    """Split ``function (file:line)`` into function and file."""
    match = FRAME.match(text)
    if match is None:
        return text, ""
    return match["function"], match["file"]


def read_stacks(path: Path) -> Counter[tuple[tuple[str, str], ...]]:
    stacks: Counter[tuple[tuple[str, str], ...]] = Counter()
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        body, _, count = line.rpartition(" ")
        frames = tuple(parse_frame(frame) for frame in body.split(";"))
        stacks[frames] += int(count)
    return stacks


def is_idle(frames: tuple[tuple[str, str], ...]) -> bool:
    function, file = frames[-1]
    if not (file.endswith("selectors.py") or file.endswith("threading.py")):
        return False
    return function.rsplit(".", 1)[-1] in IDLE_LEAVES


def thread_of(frames: tuple[tuple[str, str], ...]) -> str:
    names = {name for name, _ in frames}
    for thread, marker in THREADS:
        if marker in names:
            return thread
    return "other thread"


def on_stack(frames: tuple[tuple[str, str], ...], suffix: str, function: str) -> bool:
    """Check whether a frame of ``frames`` is in ``suffix`` and named ``function``.

    A ``suffix`` ending in ``/`` is a folder and matches anywhere in the path,
    and an empty ``function`` matches any function.
    """
    for name, file in frames:
        if suffix.endswith("/"):
            found = suffix in file
        else:
            found = file.endswith(suffix)
        if found and (not function or name == function):
            return True
    return False


def task_of(frames: tuple[tuple[str, str], ...]) -> str:
    """Name the asyncio callback a sample runs in: the frame after Handle._run.

    Samples outside a callback (the event loop's own bookkeeping) count as
    ``event loop``.
    """
    for index, (name, file) in enumerate(frames[:-1]):
        if name == "Handle._run" and file.endswith("asyncio/events.py"):
            index += 1
            # Skip the generic task runners to reach the frame naming the task.
            while frames[index][0] in TASK_WRAPPERS and index + 1 < len(frames):
                index += 1
            function, path = frames[index]
            return f"{function} ({_short(path)})"
    return "event loop (outside callbacks)"


def area_of(file: str) -> str:
    for area, fragment in AREAS:
        if fragment in file:
            return area
    return "other"


def summarise(path: Path) -> dict[str, Any]:
    """Return per-thread busy shares and the main thread's breakdown."""
    stacks = read_stacks(path)
    thread_samples: Counter[str] = Counter()
    thread_busy: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    tasks: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for frames, count in stacks.items():
        thread = thread_of(frames)
        thread_samples[thread] += count
        if is_idle(frames):
            continue
        thread_busy[thread] += count
        if thread != MAIN_THREAD:
            continue
        for step, suffix, function in STEPS:
            if on_stack(frames, suffix, function):
                steps[step] += count
        tasks[task_of(frames)] += count
        function, file = frames[-1]
        areas[area_of(file)] += count
        leaves[f"{function} ({_short(file)})"] += count
    main_samples = thread_samples[MAIN_THREAD]
    main_busy = thread_busy[MAIN_THREAD]

    def percent(value: int, whole: int) -> float:
        return round(100 * value / whole, 1) if whole else 0.0

    return {
        "file": str(path),
        "samples": sum(thread_samples.values()),
        "threads": {
            thread: {
                "samples": samples,
                "busy_percent": percent(thread_busy[thread], samples),
            }
            for thread, samples in thread_samples.most_common()
        },
        "main_thread_inclusive_percent_of_wall": {
            step: percent(steps[step], main_samples) for step, _, _ in STEPS
        },
        "main_thread_percent_of_busy_by_task": {
            task: percent(value, main_busy) for task, value in tasks.most_common()
        },
        "main_thread_exclusive_percent_of_busy_by_area": {
            area: percent(value, main_busy) for area, value in areas.most_common()
        },
        "main_thread_top_leaves_percent_of_busy": {
            leaf: percent(value, main_busy) for leaf, value in leaves.most_common(25)
        },
    }


def _short(file: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def render(summary: dict[str, Any]) -> str:
    lines = [f"py-spy profile {summary['file']}: {summary['samples']} samples", ""]
    lines.append("threads, busy % of each thread's samples:")
    for thread, row in summary["threads"].items():
        lines.append(
            f"  {row['busy_percent']:5.1f}  {thread} ({row['samples']} samples)"
        )
    lines += ["", "main thread, inclusive % of its wall time (idle included):"]
    for step, value in summary["main_thread_inclusive_percent_of_wall"].items():
        lines.append(f"  {value:5.1f}  {step}")
    lines += ["", "main thread, % of busy samples by asyncio task or callback:"]
    for task, value in summary["main_thread_percent_of_busy_by_task"].items():
        lines.append(f"  {value:5.1f}  {task}")
    lines += ["", "main thread, exclusive % of busy samples by area of the leaf:"]
    for area, value in summary["main_thread_exclusive_percent_of_busy_by_area"].items():
        lines.append(f"  {value:5.1f}  {area}")
    lines += ["", "main thread, top leaf functions, % of busy samples:"]
    for leaf, value in summary["main_thread_top_leaves_percent_of_busy"].items():
        lines.append(f"  {value:5.1f}  {leaf}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Sum up a py-spy raw profile of the riskstream worker."
    )
    parser.add_argument("profile", type=Path, help="py-spy --format raw output")
    args = parser.parse_args(argv)
    if not args.profile.is_file():
        parser.error(f"{args.profile}: no such file; run bench/worker.py --profile")
    print(render(summarise(args.profile)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
