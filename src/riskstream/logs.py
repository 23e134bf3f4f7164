"""structlog set-up: JSON lines in production, readable output in a terminal."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

TRANSIENT_KAFKA_ERRORS = (
    "GroupCoordinatorNotAvailableError",
    "Marking the coordinator dead",
)
"""Parts of aiokafka error lines that a consumer group logs while the broker
elects its group coordinator, usually in the first seconds of a start. The
client retries by itself, so these are logged at warning."""


class TransientKafkaErrors(logging.Filter):
    """Lower aiokafka's group coordinator errors, which it retries, to warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record, at warning when it is a retried coordinator error."""
        if record.levelno >= logging.ERROR and record.name.startswith("aiokafka"):
            message = record.getMessage()
            if any(part in message for part in TRANSIENT_KAFKA_ERRORS):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def identity_adder(
    identity: Mapping[str, Any],
) -> structlog.typing.Processor:
    """Return a processor that adds ``identity`` to lines that lack its keys.

    Context variables do not reach threads that libraries start, such as the
    Kafka client's, so the worker's identity is added here as well.
    """

    def add(
        logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in identity.items():
            event.setdefault(key, value)
        return event

    return add


def configure_logging(
    fmt: str = "auto", level: str = "INFO", identity: Mapping[str, Any] | None = None
) -> None:
    """Route structlog and the standard library's logging through one renderer.

    ``fmt`` is ``json``, ``console`` or ``auto`` (console when stderr is a
    terminal). ``identity`` is added to every line, from any thread.
    """
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer()
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if identity:
        shared.append(identity_adder(dict(identity)))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TransientKafkaErrors())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
