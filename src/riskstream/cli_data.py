"""Data commands of the ``riskstream`` command line.

``datasets synthetic`` and ``datasets cdnow`` write event files, ``demo``
scores the CDNOW data set and writes a report, and ``backtest`` measures
the purchase signals on CDNOW against a naive rule and the BG/NBD model.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

from riskstream.errors import UsageError


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return number


def add_data_commands(commands: Any) -> None:
    """Register ``datasets``, ``demo`` and ``backtest`` on the main parser."""
    datasets = commands.add_parser("datasets", help="write event files from data sets")
    kinds = datasets.add_subparsers(dest="dataset", required=True, metavar="DATASET")

    synthetic = kinds.add_parser(
        "synthetic", help="simulated orders and payments, for load tests"
    )
    synthetic.add_argument(
        "--customers",
        type=_positive_int,
        default=1000,
        help="simulated customers (1000)",
    )
    synthetic.add_argument(
        "--days",
        type=_positive_int,
        default=365,
        help="days of order history per customer (365)",
    )
    synthetic.add_argument(
        "--seed", type=int, default=7, help="seed of the simulation (7)"
    )
    synthetic.add_argument(
        "--out", type=Path, required=True, help="JSONL file to write"
    )
    synthetic.set_defaults(handler=_synthetic)

    cdnow = kinds.add_parser(
        "cdnow",
        help="real CDNOW purchases (1997-1998) with simulated invoices and payments; "
        "needs pip install 'riskstream[cdnow]'",
    )
    cdnow.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    _add_cdnow_selection(cdnow)
    cdnow.set_defaults(handler=_cdnow)

    _add_demo(commands)
    _add_backtest(commands)


def _add_cdnow_selection(parser: argparse.ArgumentParser) -> None:
    """Add the options that pick the CDNOW customers and the simulation seed."""
    parser.add_argument(
        "--seed", type=int, default=7, help="seed of the simulated payments (7)"
    )
    parser.add_argument(
        "--customers",
        type=_positive_int,
        help="keep only the N lowest CDNOW customer ids (default: all 23,570)",
    )


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="score the CDNOW data set and write alerts and an HTML report; "
        "needs pip install 'riskstream[cdnow,plots]'",
    )

    demo.add_argument(
        "--out",
        type=Path,
        default=Path("out/demo"),
        help="folder for the events, alerts.jsonl, scores.jsonl, report.html and "
        "the plots (default out/demo)",
    )
    demo.add_argument(
        "--broker",
        help="run the events through a Kafka worker at this URL (kafka://HOST:PORT) "
        "instead of in-process replay",
    )
    _add_cdnow_selection(demo)
    demo.add_argument("--rules-file", help="scoring rules YAML (default: packaged)")
    demo.add_argument(
        "--partitions",
        type=int,
        default=4,
        help="partitions of the replay, or of the topics with --broker (4)",
    )
    demo.add_argument(
        "--customer",
        help="customer id whose purchase history is plotted (default: the "
        "customer with the most alerts among the top 10)",
    )

    # Options of the Kafka path only.
    demo.add_argument(
        "--topic-prefix",
        help="with --broker: prefix of the topic names (default: demo-RANDOM-)",
    )
    demo.add_argument(
        "--app-id",
        help="with --broker: Faust app id of the worker (default: derived from the "
        "topic prefix)",
    )
    demo.add_argument(
        "--idle-timeout",
        type=_positive_float,
        default=30.0,
        help="with --broker: seconds without a new output message after which "
        "the worker counts as done (30)",
    )
    demo.add_argument(
        "--timeout",
        type=_positive_float,
        default=1800.0,
        help="with --broker: longest wait in seconds from the worker's start "
        "until reading ends (1800)",
    )
    demo.set_defaults(handler=_demo)


def _add_backtest(commands: Any) -> None:
    backtest = commands.add_parser(
        "backtest",
        help="measure the purchase signals on CDNOW, split at 1998-01-01; "
        "needs pip install 'riskstream[cdnow,plots]'",
    )
    backtest.add_argument(
        "--out",
        type=Path,
        default=Path("docs/backtest.md"),
        help="Markdown report to write; the plot goes next to it as "
        "NAME-pr.png (default docs/backtest.md)",
    )
    _add_cdnow_selection(backtest)
    backtest.add_argument(
        "--jobs",
        type=_positive_int,
        help="replays to run in parallel (default: the number of CPUs, at most "
        "the number of rule variants)",
    )
    backtest.set_defaults(handler=_backtest)


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


def _cdnow(args: argparse.Namespace) -> int:
    from riskstream.datasets.cdnow import convert, locate_master_file

    source = locate_master_file()
    stats = convert(args.out, seed=args.seed, customers=args.customers, path=source)
    print(f"read {stats.rows} purchases of {stats.customers} customers from {source}")
    print(
        f"skipped {stats.zero_value_rows} purchases worth 0.00 (orders need an "
        f"amount above 0); {stats.customers_without_orders} customers had only "
        "such purchases and get no events"
    )
    print(f"{args.out}: {stats.events} events")
    for kind, count in sorted(stats.events_by_type.items()):
        origin = "real" if kind == "order.placed" else "simulated"
        print(f"  {kind}: {count} ({origin})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from riskstream.demo import run_demo

    if args.broker is not None:
        # Check the broker before the data set is converted, which takes a
        # minute and writes 90 MB.
        import asyncio

        from pydantic import ValidationError

        from riskstream.kafka_io import cluster_id
        from riskstream.settings import Settings

        try:
            settings = Settings.model_validate({"broker": args.broker})
        except ValidationError as exc:
            message = str(exc.errors(include_url=False)[0]["msg"])
            raise UsageError(
                f"--broker: {message.removeprefix('Value error, ')}"
            ) from None
        asyncio.run(cluster_id(settings))
    run_demo(
        args.out,
        broker=args.broker,
        seed=args.seed,
        customers=args.customers,
        rules_file=args.rules_file,
        partitions=args.partitions,
        customer=args.customer,
        topic_prefix=args.topic_prefix,
        app_id=args.app_id,
        idle_timeout_s=args.idle_timeout,
        timeout_s=args.timeout,
    )
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from riskstream.backtest import run_backtest

    run_backtest(args.out, seed=args.seed, customers=args.customers, jobs=args.jobs)
    return 0
