"""Benchmark the transport-free core on one CPU core, per event.

Measures, on simulated events (``riskstream.simulation``):

* ``parse``: :func:`riskstream.events.parse_event` alone;
* ``replay``: the whole :func:`riskstream.drivers.replay.replay` path, which
  parses, routes, merges by event time, runs every partition and builds the
  final assessments;
* ``handle``: :meth:`riskstream.runner.PartitionRunner.handle` on events
  already parsed and merged, one new ``Batch`` per message as replay does;
* ``assessment``: :meth:`Engine.assessment` plus ``orjson.dumps``, which the
  worker runs for every rescored customer of a batch;
* ``state_encode`` / ``state_decode``: ``CustomerState.to_bytes`` on freshly
  decoded states and ``CustomerState.from_bytes``, which the worker runs per
  changed customer and batch;

and the encoded state size per customer after the simulated history.

Example::

    python bench/core.py --customers 2000 --days 365 --repeats 5
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from benchlib import (
    RESULTS,
    Contention,
    check_sources,
    log,
    machine,
    percentile,
    simulated_lines,
    spread,
    wait_for_quiet,
    write_json,
)

from riskstream.config import ScoringConfig, load_config
from riskstream.drivers.replay import MemoryStore, ReplayResult, replay
from riskstream.engine import Engine
from riskstream.errors import InvalidEvent
from riskstream.events import TOPIC_FOR_TYPE, parse_event, route
from riskstream.model import LatePaymentModel
from riskstream.ordering import INPUT_TOPICS_IN_ORDER, EventTimeMerger
from riskstream.partitioning import partition_for
from riskstream.runner import Batch, PartitionRunner, Source, sort_time, try_parse
from riskstream.settings import Settings
from riskstream.state import CustomerState

BUDGET_CORE_US = 50.0
"""Project budget: the core (full replay path) per event on one core."""
BUDGET_STATE_BYTES = 2048
"""Project budget: encoded state per customer with a year of history."""

HANDLE_BATCH = Settings.model_fields["batch_size"].default
Message = tuple[bytes, Source, Any]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time parse_event, replay and PartitionRunner.handle per event "
        "and measure the encoded state size per customer.",
    )
    parser.add_argument(
        "--customers", type=int, default=2000, help="simulated customers (2000)"
    )
    parser.add_argument(
        "--days", type=int, default=365, help="days of simulated history (365)"
    )
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (7)")

    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs of each measurement (5)"
    )
    parser.add_argument(
        "--partitions", type=int, default=4, help="partitions replay emulates (4)"
    )

    parser.add_argument("--rules-file", help="scoring rules YAML (default: packaged)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=1800.0,
        help="stop starting new repeats after this many seconds in total (1800)",
    )

    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.3,
        help="before each run, wait until other processes use fewer cores than "
        "this (0.3)",
    )
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        default=30.0,
        help="maximum wait in seconds for --quiet-cores before a run; 0 turns the "
        "wait off (30)",
    )

    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "core.json",
        help="JSON results file (bench/results/core.json)",
    )
    args = parser.parse_args(argv)
    for name in ("customers", "days", "repeats", "partitions"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: must be 1 or more, got {getattr(args, name)}")
    return args


def merged_partitions(lines: list[bytes], partitions: int) -> dict[int, list[Message]]:
    """Parse, route and merge ``lines`` the way replay does, untimed.

    Returns each partition's messages in the order replay hands them to
    :meth:`PartitionRunner.handle`.
    """
    mergers: dict[int, EventTimeMerger[Message]] = {}
    for number, raw in enumerate(lines):
        parsed = try_parse(raw)
        if isinstance(parsed, InvalidEvent):
            topic, key = route(raw)
        else:
            topic, key = TOPIC_FOR_TYPE[parsed.type], parsed.customer_id.encode()
        partition = 0 if key is None else partition_for(key.decode(), partitions)
        merger = mergers.setdefault(partition, EventTimeMerger(INPUT_TOPICS_IN_ORDER))
        merger.push(
            topic,
            (raw, Source(topic, partition, number, key), parsed),
            sort_time(parsed),
        )
    return {partition: list(m.drain()) for partition, m in sorted(mergers.items())}


def run_parse(lines: list[bytes]) -> None:
    for raw in lines:
        parse_event(raw)


def run_handle(ordered: dict[int, list[Message]], config: ScoringConfig) -> None:
    """Run the runners alone, from empty states and models.

    Messages go in batches of :data:`HANDLE_BATCH`, the worker's default
    ``batch_size``.
    """
    engine = Engine(config)
    store = MemoryStore()
    for partition, messages in ordered.items():
        runner = PartitionRunner(partition, engine, store, LatePaymentModel())
        handle = runner.handle
        for start in range(0, len(messages), HANDLE_BATCH):
            batch = Batch()
            for raw, source, parsed in messages[start : start + HANDLE_BATCH]:
                handle(raw, source, batch, parsed)


def run_assessment(states: list[CustomerState], engine: Engine) -> None:
    for state in states:
        orjson.dumps(engine.assessment(state))


def run_encode(states: list[CustomerState]) -> None:
    for state in states:
        state.to_bytes()


def run_decode(encoded: list[bytes]) -> None:
    for raw in encoded:
        CustomerState.from_bytes(raw)


def state_sizes(states: list[CustomerState]) -> dict[str, Any]:
    """Size statistics of ``to_bytes()`` per customer, with a field breakdown."""
    encoded = [state.to_bytes() for state in states]
    sizes = sorted(len(raw) for raw in encoded)
    names = ["format_version"] + [f.name for f in dataclasses.fields(CustomerState)]
    per_field: dict[str, list[int]] = {name: [] for name in names}
    for raw in encoded:
        for name, value in zip(names, orjson.loads(raw), strict=True):
            per_field[name].append(len(orjson.dumps(value)))
    mean = statistics.fmean(sizes)
    return {
        "customers": len(sizes),
        "median_bytes": statistics.median(sizes),
        "p95_bytes": percentile(sizes, 0.95),
        "max_bytes": sizes[-1],
        "mean_bytes": mean,
        "projected_bytes_per_million_customers": mean * 1_000_000,
        "key_bytes_median": statistics.median(len(s.customer_id) for s in states),
        "field_median_bytes": {
            name: statistics.median(values) for name, values in per_field.items()
        },
        "field_mean_bytes": {
            name: round(statistics.fmean(values), 1)
            for name, values in per_field.items()
        },
    }


def repeat(
    label: str,
    runs: int,
    deadline: float,
    work: Callable[[], object],
    count: int,
    quiet: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Run ``work`` up to ``runs`` times; return µs per item, wall and CPU.

    CPU time is this process's user plus system time, which other processes
    on the machine inflate less than the wall time.
    """
    wall_us: list[float] = []
    cpu_us: list[float] = []
    others: list[float] = []
    for index in range(runs):
        if index and time.monotonic() > deadline:
            log(f"{label}: --max-seconds reached, stopping after {index} runs")
            break
        if quiet is not None:
            wait_for_quiet(*quiet)
        gc.collect()
        contention = Contention()
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        others.append(contention.other_cores())
        wall_us.append(wall / count * 1e6)
        cpu_us.append(cpu / count * 1e6)
        log(
            f"{label} run {index + 1}/{runs}: {wall:.2f} s, {wall_us[-1]:.1f} µs "
            f"per item ({cpu_us[-1]:.1f} µs CPU), other processes used "
            f"{others[-1]:.2f} cores"
        )
    return {
        "items": count,
        "us_per_item": spread(wall_us),
        "cpu_us_per_item": spread(cpu_us),
        "other_processes_cores": spread(others),
    }


def print_table(timings: dict[str, dict[str, Any]], sizes: dict[str, Any]) -> None:
    print(
        f"{'measurement':<14} {'items':>9} {'median µs':>10} {'min µs':>9} "
        f"{'max µs':>9} {'CPU median µs':>14} {'other cores':>12} {'runs':>5}"
    )
    for name, row in timings.items():
        stats = row["us_per_item"]
        cpu = row["cpu_us_per_item"]
        print(
            f"{name:<14} {row['items']:>9} {stats['median']:>10.1f} "
            f"{stats['min']:>9.1f} {stats['max']:>9.1f} {cpu['median']:>14.1f} "
            f"{row['other_processes_cores']['median']:>12.2f} {stats['runs']:>5}"
        )
    print()
    print(
        f"state bytes per customer ({sizes['customers']} customers): "
        f"median {sizes['median_bytes']:.0f}, p95 {sizes['p95_bytes']}, "
        f"max {sizes['max_bytes']}, mean {sizes['mean_bytes']:.0f}"
    )
    projected_gb = sizes["projected_bytes_per_million_customers"] / 1e9
    print(
        f"projected state for 1,000,000 customers: {projected_gb:.2f} GB "
        "(mean size, values only)"
    )


def print_budgets(budgets: dict[str, dict[str, Any]]) -> None:
    core = budgets["core_us_per_event"]
    state = budgets["state_bytes_per_customer"]
    print()
    print(
        f"budget: core under {core['budget']:.0f} µs per event (replay median): "
        f"{core['measured']:.1f} µs, {'met' if core['met'] else 'MISSED'}; "
        f"CPU {core['measured_cpu']:.1f} µs, "
        f"{'met' if core['met_by_cpu'] else 'MISSED'}; handle alone "
        f"{core['handle_only']:.1f} µs, "
        f"{'met' if core['met_by_handle_only'] else 'MISSED'}"
    )
    print(
        f"budget: state under {state['budget']} bytes per customer: "
        f"median {state['measured_median']:.0f} "
        f"({'met' if state['met_by_median'] else 'MISSED'}), "
        f"p95 {state['measured_p95']} "
        f"({'met' if state['met_by_p95'] else 'MISSED'})"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    config = load_config(args.rules_file)
    deadline = time.monotonic() + args.max_seconds

    log(f"simulating {args.customers} customers x {args.days} days, seed {args.seed}")
    lines = simulated_lines(args.customers, args.days, args.seed)
    log(f"{len(lines)} events")
    ordered = merged_partitions(lines, args.partitions)
    # The input stays alive for the whole run, as in replay, which moves it
    # out of the collector's reach in the same way.
    gc.freeze()

    quiet = (args.quiet_cores, args.quiet_timeout) if args.quiet_timeout > 0 else None
    measure = functools.partial(repeat, quiet=quiet)
    timings: dict[str, dict[str, Any]] = {}
    timings["parse"] = measure(
        "parse", args.repeats, deadline, lambda: run_parse(lines), len(lines)
    )
    last: dict[str, ReplayResult] = {}

    def run_replay() -> None:
        last["result"] = replay(lines, config, partitions=args.partitions)

    timings["replay"] = measure(
        "replay", args.repeats, deadline, run_replay, len(lines)
    )
    result = last.pop("result")
    timings["handle"] = measure(
        "handle",
        args.repeats,
        deadline,
        lambda: run_handle(ordered, config),
        len(lines),
    )

    states = list(result.states.values())
    encoded = [state.to_bytes() for state in states]
    engine = Engine(config)
    timings["assessment"] = measure(
        "assessment",
        args.repeats,
        deadline,
        lambda: run_assessment(states, engine),
        len(states),
    )
    # The worker encodes states it decoded in the same batch, so the encode
    # runs on fresh copies: the replay's own states lie scattered in memory,
    # which made their encode several times slower in a trial run.
    decoded = [CustomerState.from_bytes(raw) for raw in encoded]
    timings["state_encode"] = measure(
        "state_encode",
        args.repeats,
        deadline,
        lambda: run_encode(decoded),
        len(decoded),
    )
    timings["state_decode"] = measure(
        "state_decode",
        args.repeats,
        deadline,
        lambda: run_decode(encoded),
        len(encoded),
    )

    sizes = state_sizes(states)
    events_by_type = Counter(kind for (_, kind) in result.consumed.elements())
    core_us = timings["replay"]["us_per_item"]["median"]
    core_cpu_us = timings["replay"]["cpu_us_per_item"]["median"]
    handle_us = timings["handle"]["us_per_item"]["median"]
    budgets = {
        "core_us_per_event": {
            "budget": BUDGET_CORE_US,
            "measured": core_us,
            "met": core_us < BUDGET_CORE_US,
            "measured_cpu": core_cpu_us,
            "met_by_cpu": core_cpu_us < BUDGET_CORE_US,
            "handle_only": handle_us,
            "met_by_handle_only": handle_us < BUDGET_CORE_US,
        },
        "state_bytes_per_customer": {
            "budget": BUDGET_STATE_BYTES,
            "measured_median": sizes["median_bytes"],
            "measured_p95": sizes["p95_bytes"],
            "met_by_median": sizes["median_bytes"] < BUDGET_STATE_BYTES,
            "met_by_p95": sizes["p95_bytes"] < BUDGET_STATE_BYTES,
        },
    }
    print_table(timings, sizes)
    print_budgets(budgets)

    info["load_average_at_end"] = os.getloadavg()
    check_sources(info)
    write_json(
        args.out,
        {
            "benchmark": "core",
            "command": " ".join(["python", "bench/core.py", *sys.argv[1:]]),
            "started": started,
            "machine": info,
            "parameters": vars(args) | {"out": str(args.out)},
            "events": len(lines),
            "events_by_type": dict(sorted(events_by_type.items())),
            "alerts": len(result.alerts),
            "timings": timings,
            "state_size": sizes,
            "budgets": budgets,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
