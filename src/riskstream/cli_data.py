"""Data commands of the ``riskstream`` command line: synthetic data sets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson


def add_data_commands(commands: Any) -> None:
    """Register ``datasets`` and its subcommands on the main parser."""
    datasets = commands.add_parser("datasets", help="write event files from data sets")
    kinds = datasets.add_subparsers(dest="dataset", required=True, metavar="DATASET")

    synthetic = kinds.add_parser(
        "synthetic", help="simulated orders and payments, for load tests"
    )
    synthetic.add_argument("--customers", type=int, default=1000)
    synthetic.add_argument("--days", type=int, default=365)
    synthetic.add_argument("--seed", type=int, default=7)
    synthetic.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    synthetic.set_defaults(handler=_synthetic)


def _synthetic(args: argparse.Namespace) -> int:
    from riskstream.simulation import simulate, synthetic_orders

    orders = synthetic_orders(args.customers, days=args.days, seed=args.seed)
    count = 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("wb") as handle:
        for event in simulate(orders, seed=args.seed):
            handle.write(orjson.dumps(event) + b"\n")
            count += 1
    print(f"{args.out}: {count} simulated events for {args.customers} customers")
    return 0
