"""Benchmark the order anomaly detector against river's HalfSpaceTrees.

The inputs are what the core really hands its detector: a replay of
simulated customers (``riskstream.simulation``) records every order's
deviations from the customer's usual amount and gap. Each candidate then
scores and learns that same sequence, one order at a time:

* ``gaussian``: :class:`riskstream.model.OrderAnomalyDetector`, the two
  river ``GaussianScorer`` models the core uses;
* ``hst_default``: river ``anomaly.HalfSpaceTrees`` at its defaults (25
  trees of height 15, window 250), on the two deviations scaled to [0, 1];
* ``hst_small``: the same with 10 trees of height 6.

Reported per order: the median, min and max over the repeats of the wall and
CPU time, and each candidate's pickled size after the run.

Example::

    python bench/anomaly.py --customers 1000 --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import pickle
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import RESULTS, log, machine, simulated_lines, spread, write_json
from core import merged_partitions
from river import anomaly

from riskstream.config import load_config
from riskstream.drivers.replay import MemoryStore
from riskstream.engine import Engine
from riskstream.model import LatePaymentModel, OrderAnomalyDetector
from riskstream.runner import Batch, PartitionRunner

DEVIATION_RANGE = 3.0
"""HalfSpaceTrees needs features in [0, 1]: deviations are clipped to +-3
(natural log units, a factor of 20) and scaled."""

Deviation = tuple[float, float | None]


class RecordingDetector(OrderAnomalyDetector):
    """The core's detector, keeping every input it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[Deviation] = []

    def score_and_learn(
        self, amount_deviation: float, gap_deviation: float | None
    ) -> float | None:
        """Record the deviations, then score and learn them as the core does."""
        self.inputs.append((amount_deviation, gap_deviation))
        return super().score_and_learn(amount_deviation, gap_deviation)


def recorded_inputs(customers: int, days: int, seed: int) -> list[Deviation]:
    """Run simulated customers through the core; return each scored order's input."""
    engine = Engine(load_config())
    store = MemoryStore()
    inputs: list[Deviation] = []
    lines = simulated_lines(customers, days, seed)
    for partition, messages in merged_partitions(lines, 1).items():
        model = LatePaymentModel()
        recorder = model.order_detector = RecordingDetector()
        runner = PartitionRunner(partition, engine, store, model)
        batch = Batch()
        for raw, source, parsed in messages:
            runner.handle(raw, source, batch, parsed)
        inputs.extend(recorder.inputs)
    return inputs


def scaled(value: float | None) -> float:
    """Map a deviation to [0, 1] for HalfSpaceTrees; a missing gap is the middle."""
    if value is None:
        return 0.5
    clipped = max(-DEVIATION_RANGE, min(DEVIATION_RANGE, value))
    return (clipped + DEVIATION_RANGE) / (2 * DEVIATION_RANGE)


def run_gaussian(inputs: list[Deviation]) -> Any:
    detector = OrderAnomalyDetector()
    for amount, gap in inputs:
        detector.score_and_learn(amount, gap)
    return detector


def run_hst(inputs: list[Deviation], **options: int) -> Any:
    model = anomaly.HalfSpaceTrees(seed=7, **options)
    for amount, gap in inputs:
        features = {"amount": scaled(amount), "gap": scaled(gap)}
        model.score_one(features)
        model.learn_one(features)
    return model


CANDIDATES: dict[str, Callable[[list[Deviation]], Any]] = {
    "gaussian": run_gaussian,
    "hst_default": run_hst,
    "hst_small": lambda inputs: run_hst(inputs, n_trees=10, height=6),
}


def measure(
    run: Callable[[list[Deviation]], Any], inputs: list[Deviation], repeats: int
) -> dict[str, Any]:
    """Time ``repeats`` runs over ``inputs``; return µs per order and model size."""
    wall_us: list[float] = []
    cpu_us: list[float] = []
    model = None
    for _ in range(repeats):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        model = run(inputs)
        wall_us.append((time.perf_counter() - wall) / len(inputs) * 1e6)
        cpu_us.append((time.process_time() - cpu) / len(inputs) * 1e6)
    return {
        "us_per_order": spread(wall_us),
        "cpu_us_per_order": spread(cpu_us),
        "pickled_bytes": len(pickle.dumps(model)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000, help="(1000)")
    parser.add_argument("--days", type=int, default=365, help="(365)")
    parser.add_argument("--seed", type=int, default=7, help="(7)")
    parser.add_argument("--repeats", type=int, default=5, help="(5)")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS / "anomaly.json",
        help="results JSON file (bench/results/anomaly.json)",
    )
    args = parser.parse_args(argv)
    if min(args.customers, args.days, args.repeats) < 1:
        parser.error("--customers, --days and --repeats must be 1 or more")

    log(f"replaying {args.customers} simulated customers to record the inputs")
    inputs = recorded_inputs(args.customers, args.days, args.seed)
    log(f"{len(inputs)} scored orders")
    results = {}
    for name, run in CANDIDATES.items():
        results[name] = measure(run, inputs, args.repeats)
        median = results[name]["us_per_order"]["median"]
        log(f"{name}: median {median:.1f} µs per order")

    print(f"{'candidate':<12} {'median µs':>10} {'min':>7} {'max':>7} {'bytes':>9}")
    for name, row in results.items():
        stats = row["us_per_order"]
        print(
            f"{name:<12} {stats['median']:>10.1f} {stats['min']:>7.1f} "
            f"{stats['max']:>7.1f} {row['pickled_bytes']:>9}"
        )
    gaps = sum(1 for _, gap in inputs if gap is not None)
    write_json(
        args.out,
        {
            "benchmark": "anomaly",
            "command": " ".join(["python", "bench/anomaly.py", *sys.argv[1:]]),
            "machine": machine(),
            "parameters": vars(args) | {"out": str(args.out)},
            "orders": len(inputs),
            "orders_with_gap": gaps,
            "median_abs_amount_deviation": statistics.median(
                abs(amount) for amount, _ in inputs
            ),
            "results": results,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
