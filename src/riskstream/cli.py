"""The ``riskstream`` command: worker, replay, produce, topics, drill, explain."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog

from riskstream.cli_settings import (
    add_config_option,
    add_setting_options,
    add_settings_command,
    settings_from_args,
)
from riskstream.config import load_config
from riskstream.errors import RiskstreamError, UsageError
from riskstream.settings import Settings

DEFAULT_MAX_FUTURE_S = Settings.model_fields["max_future_s"].default
"""The worker's default limit on future event times, which replay and explain
apply too, so that they dead-letter what a worker would."""


def _add_broker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        help="Kafka bootstrap URL, kafka://HOST:PORT (default kafka://localhost:9092, "
        "or RISKSTREAM_BROKER)",
    )
    parser.add_argument("--topic-prefix", help="prefix of every topic name")
    parser.add_argument("--partitions", type=int, help="partitions of new topics (4)")


def _add_playbook(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--playbook-file",
        help="playbook YAML: owner and actions per signal kind and severity "
        "(default: packaged)",
    )


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"{value}: no such file; pass a JSONL file of events, one per line"
        )
    return path


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="riskstream",
        description="Score ERP customers for credit risk from Kafka events.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser(
        "worker",
        help="run the Faust worker",
        description="Run the Faust worker. Every setting is also an option "
        "below; docs/configuration.md lists them with their defaults.",
    )
    add_config_option(worker)
    _add_broker(worker)
    worker.add_argument("--app-id", help="Faust app id and consumer group")
    worker.add_argument("--store", help="table store, rocksdb:// or memory://")
    worker.add_argument("--data-dir", help="folder for the worker's local tables")
    worker.add_argument("--rules-file", help="scoring rules YAML (default: packaged)")
    _add_playbook(worker)
    worker.add_argument(
        "--clock",
        choices=["wall", "event"],
        help="what drives overdue checks between events (default wall)",
    )
    worker.add_argument(
        "--web-port", type=int, help="port of Faust's web server (6066)"
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="port of the Prometheus metrics endpoint (9108); 0 turns it off",
    )
    add_setting_options(worker)

    replay = commands.add_parser(
        "replay", help="run the core in-process on a JSONL file, no broker"
    )
    replay.add_argument("file", type=_existing_file, help="JSONL file of events")
    replay.add_argument(
        "--out",
        type=Path,
        default=Path("out/replay"),
        help="folder for alerts.jsonl, scores.jsonl, deadletter.jsonl, "
        "summary.json (default out/replay)",
    )
    replay.add_argument("--rules-file", help="scoring rules YAML (default: packaged)")
    _add_playbook(replay)
    replay.add_argument(
        "--partitions",
        type=int,
        default=4,
        help="partitions to emulate; match the topics' count to agree with a worker",
    )

    produce = commands.add_parser(
        "produce", help="publish a JSONL file of events to the ERP topics"
    )
    produce.add_argument("file", type=_existing_file, help="JSONL file of events")
    add_config_option(produce)
    _add_broker(produce)

    topics = commands.add_parser("topics", help="create the topics riskstream uses")
    add_config_option(topics)
    _add_broker(topics)
    topics.add_argument(
        "--replication-factor", type=int, help="replicas of new topics (1)"
    )

    explain = commands.add_parser(
        "explain",
        help="show a customer's state, score, reasons and open alerts",
    )
    explain.add_argument("customer_id", help="the customer to explain")
    source = explain.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--events",
        type=_existing_file,
        help="replay this JSONL file of events in process and explain the result",
    )
    source.add_argument(
        "--worker",
        help="ask a running worker's web server, such as http://127.0.0.1:6066",
    )
    explain.add_argument("--rules-file", help="scoring rules YAML (default: packaged)")
    _add_playbook(explain)
    explain.add_argument(
        "--partitions",
        type=int,
        default=4,
        help="partitions to emulate with --events (4)",
    )
    explain.add_argument(
        "--json", action="store_true", help="print the explanation as JSON"
    )

    drill = commands.add_parser(
        "drill",
        help="replay a scenario of events and check the alerts and actions it raises",
    )
    drill.add_argument(
        "scenario",
        nargs="?",
        help="scenario YAML file, or the name of a packaged scenario (see --list)",
    )
    drill.add_argument(
        "--list", action="store_true", help="list the packaged scenarios and exit"
    )
    drill.add_argument("--rules-file", help="scoring rules YAML (default: packaged)")
    _add_playbook(drill)
    drill.add_argument(
        "--no-check",
        action="store_true",
        help="print the alerts without comparing them with the scenario's expect list",
    )

    from riskstream.cli_data import add_data_commands

    add_data_commands(commands)
    add_settings_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        partitions = getattr(args, "partitions", None)
        if partitions is not None and partitions < 1:
            raise UsageError("--partitions: must be 1 or more")
        handlers = {
            "worker": _worker,
            "replay": _replay,
            "produce": _produce,
            "topics": _topics,
            "drill": _drill,
            "explain": _explain,
        }
        handler = handlers.get(args.command, getattr(args, "handler", None))
        if handler is None:
            raise UsageError(f"{args.command}: unknown command; see riskstream --help")
        return int(handler(args))
    except RiskstreamError as exc:
        print(f"riskstream: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not type(exc).__module__.startswith("aiokafka"):
            raise
        # aiokafka is imported only by the commands that talk to Kafka.
        broker = getattr(args, "broker", None) or "the configured broker"
        print(
            f"riskstream: {args.command}: the Kafka request failed ({exc}); check "
            f"that {broker} is running and reachable, or pass another --broker",
            file=sys.stderr,
        )
        return 1


def _replay(args: argparse.Namespace) -> int:
    from riskstream.drivers.replay import read_lines, replay, write_outputs
    from riskstream.progress import progress_bar

    config = load_config(args.rules_file, args.playbook_file)
    total = sum(1 for _ in read_lines(args.file))
    with progress_bar(total, "replay") as advance:
        result = replay(
            read_lines(args.file),
            config,
            partitions=args.partitions,
            on_message=advance,
            max_future_s=DEFAULT_MAX_FUTURE_S,
        )
    paths = write_outputs(result, args.out)
    summary = result.summary()
    summary.pop("models")
    print(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode())
    for name, path in paths.items():
        print(f"{name}: {path}")
    if result.messages and not result.states:
        print(
            f"riskstream: {args.file}: none of its {result.messages} lines is a "
            f"valid event, so all went to {paths['dead_letters']}; pass a JSONL "
            "file with one event per line (see docs/contract.md)",
            file=sys.stderr,
        )
        return 1
    return 0


def _explain(args: argparse.Namespace) -> int:
    from riskstream.explain import explain, format_explanation

    if args.worker is not None:
        document = _fetch_explanation(args.worker, args.customer_id)
    else:
        from riskstream.drivers.replay import read_lines, replay
        from riskstream.engine import Engine

        config = load_config(args.rules_file, args.playbook_file)
        result = replay(
            read_lines(args.events),
            config,
            partitions=args.partitions,
            max_future_s=DEFAULT_MAX_FUTURE_S,
        )
        state = result.states.get(args.customer_id)
        if state is None:
            raise UsageError(
                f"explain: customer {args.customer_id!r} has no valid event in "
                f"{args.events}; check the id"
            )
        model = result.models.get(state.partition)
        document = explain(Engine(config), state, model)
    if args.json:
        print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    else:
        for line in format_explanation(document):
            print(line)
    return 0


def _fetch_explanation(base_url: str, customer_id: str) -> dict[str, Any]:
    """GET a worker's explanation, following it once to the owning worker."""
    import urllib.error
    import urllib.parse
    import urllib.request

    url = f"{base_url.rstrip('/')}/customers/{urllib.parse.quote(customer_id)}/"
    for _ in range(2):
        try:
            with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310
                return dict(orjson.loads(response.read()))
        except urllib.error.HTTPError as exc:
            body = orjson.loads(exc.read() or b"{}")
            owner = body.get("owner_url")
            if exc.code == 404 and owner and owner != url:
                url = owner
                continue
            raise UsageError(
                f"explain: {url} answered {exc.code}: {body.get('error', exc.reason)}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise UsageError(
                f"explain: cannot reach the worker at {url} ({exc}); check "
                "--worker and that the worker runs with that --web-port"
            ) from None
    raise UsageError(f"explain: no worker owns customer {customer_id!r}")


def _drill(args: argparse.Namespace) -> int:
    from riskstream.drill import (
        format_drill,
        load_scenario,
        packaged_scenarios,
        run_drill,
    )

    if args.list:
        for name in packaged_scenarios():
            print(name)
        return 0
    if args.scenario is None:
        raise UsageError(
            "drill: pass a scenario file or a packaged scenario's name; "
            "riskstream drill --list shows the packaged ones"
        )
    config = load_config(args.rules_file, args.playbook_file)
    scenario = load_scenario(args.scenario)
    if args.no_check:
        scenario = scenario.model_copy(update={"expect": None})
    drill = run_drill(scenario, config)
    for line in format_drill(drill):
        print(line)
    return 0 if drill.passed else 1


def _produce(args: argparse.Namespace) -> int:
    from riskstream.drivers.replay import read_lines
    from riskstream.kafka_io import produce_lines

    settings = settings_from_args(args)
    counts = asyncio.run(produce_lines(settings, read_lines(args.file)))
    for topic, count in sorted(counts.items()):
        print(f"{topic}: {count} messages")
    return 0


def _topics(args: argparse.Namespace) -> int:
    from riskstream.kafka_io import ensure_topics

    created = asyncio.run(ensure_topics(settings_from_args(args)))
    print("created: " + (", ".join(created) if created else "none, all exist"))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from faust.worker import Worker as FaustWorker
    from riskstream_agents.app import create_worker

    from riskstream.kafka_io import cluster_id, ensure_topics
    from riskstream.localstore import check_cluster
    from riskstream.logs import configure_logging

    settings = settings_from_args(args)
    identity = {"app_id": settings.app_id, "worker_url": settings.web_url_or_default()}
    configure_logging(settings.log_format, settings.log_level, identity)
    # Every log line of the process carries the worker's identity: asyncio
    # tasks inherit the context variables bound here, and the logging set-up
    # adds it to lines from other threads.
    structlog.contextvars.bind_contextvars(**identity)
    log = structlog.get_logger("riskstream.cli")
    log.info(
        "worker_starting",
        broker=settings.broker,
        topic_prefix=settings.topic_prefix,
        partitions=settings.partitions,
        clock=settings.clock,
        store=settings.store,
        data_dir=settings.data_dir,
        config_file=settings.config_file,
    )
    load_config(settings.rules_file, settings.playbook_file)
    # The endpoint starts first, so a port in use fails before any Kafka work.
    _start_metrics_server(settings.metrics_host, settings.metrics_port)
    created = asyncio.run(ensure_topics(settings, tables=True))
    if created:
        log.info("topics_created", topics=created)
    if settings.store.startswith("rocksdb"):
        check_cluster(
            settings.data_dir, settings.app_id, asyncio.run(cluster_id(settings))
        )
    worker = create_worker(settings)
    try:
        FaustWorker(
            worker.app,
            loglevel=settings.log_level,
            quiet=True,
            override_logging=False,
        ).execute_from_commandline()
    finally:
        log.info("worker_stopped")
    return 0


def _start_metrics_server(host: str, port: int) -> None:
    """Serve the Prometheus metrics on ``host:port``; port 0 serves none."""
    if not port:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise UsageError(
            f"metrics_port: failed to listen on {host}:{port} ({exc}); choose a "
            "free port with --metrics-port, or 0 to turn the endpoint off"
        ) from None
    structlog.get_logger("riskstream.cli").info(
        "metrics_server_started", host=host, port=port
    )
