"""Factory fixtures for unit tests: raw and parsed events, engine and model."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from riskstream.config import load_config
from riskstream.engine import Engine
from riskstream.events import Event, parse_event
from riskstream.model import LatePaymentModel

T0 = datetime(2026, 1, 1, tzinfo=UTC)
"""Start of every test timeline: day 0 of the ``at`` fixture."""

CUSTOMER = "c1"

EventFields = Callable[..., dict[str, Any]]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _type_fields(kind: str) -> dict[str, Any]:
    """Return valid type-specific fields for ``kind``, amounts in EUR."""
    if kind == "order.placed":
        return {"order_id": "o1", "amount": "100.00", "currency": "EUR"}
    if kind == "order.cancelled":
        return {"order_id": "o1"}
    if kind == "invoice.issued":
        return {
            "invoice_id": "i1",
            "amount": "100.00",
            "currency": "EUR",
            "due_at": _iso(T0 + timedelta(days=30)),
        }
    if kind == "payment.received":
        return {
            "payment_id": "p1",
            "invoice_id": "i1",
            "amount": "100.00",
            "currency": "EUR",
        }
    if kind == "payment.failed":
        return {
            "payment_id": "p1",
            "invoice_id": "i1",
            "amount": "100.00",
            "currency": "EUR",
            "reason": "bounced",
        }
    if kind == "customer.updated":
        return {
            "name": "Acme Tools GmbH",
            "account_manager": "j.keller",
            "credit_limit": "1000.00",
            "currency": "EUR",
            "payment_terms_days": 30,
        }
    if kind == "complaint.logged":
        return {"severity": "medium", "category": "delivery"}
    if kind == "credit_report.received":
        return {"bureau": "acme", "score": 60}
    if kind == "financials.reported":
        return {
            "period_end": "2025-12-31",
            "total_assets": "1000000",
            "total_liabilities": "500000",
            "current_assets": "300000",
            "current_liabilities": "200000",
            "operating_cash_flow": "25000",
        }
    if kind == "alert.action":
        return {"alert_id": "0" * 32, "action": "acknowledge", "by": "ops.jane"}
    raise ValueError(f"no default fields for event type {kind!r}")


@pytest.fixture
def at() -> Callable[..., datetime]:
    """Build a UTC datetime ``days`` days and ``hours`` hours after :data:`T0`."""

    def build(days: float = 0, hours: float = 0) -> datetime:
        return T0 + timedelta(days=days, hours=hours)

    return build


@pytest.fixture
def event_fields() -> EventFields:
    """Build the JSON object of a valid event of one type.

    Call it as ``event_fields(kind, occurred_at, **overrides)``. Event ids are
    ``evt-1``, ``evt-2`` and so on within one test, and the customer is ``c1``.
    Datetimes, ``occurred_at`` included, are written as RFC 3339 UTC strings,
    and strings are kept as given.
    """
    numbers = itertools.count(1)

    def build(
        kind: str, occurred_at: datetime | str = T0, **overrides: Any
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "event_id": f"evt-{next(numbers)}",
            "type": kind,
            "customer_id": CUSTOMER,
            "occurred_at": occurred_at,
            **_type_fields(kind),
        }
        fields.update(overrides)
        return {
            name: _iso(value) if isinstance(value, datetime) else value
            for name, value in fields.items()
        }

    return build


@pytest.fixture
def event_bytes(event_fields: EventFields) -> Callable[..., bytes]:
    """Build the raw message value of a valid event; arguments as ``event_fields``."""

    def build(kind: str, occurred_at: datetime | str = T0, **overrides: Any) -> bytes:
        return orjson.dumps(event_fields(kind, occurred_at, **overrides))

    return build


@pytest.fixture
def make_event(event_bytes: Callable[..., bytes]) -> Callable[..., Event]:
    """Build a parsed event; arguments as ``event_fields``."""

    def build(kind: str, occurred_at: datetime | str = T0, **overrides: Any) -> Event:
        return parse_event(event_bytes(kind, occurred_at, **overrides))

    return build


@pytest.fixture
def engine() -> Engine:
    """An engine with the packaged rules."""
    return Engine(load_config())


@pytest.fixture
def model() -> LatePaymentModel:
    """A late-payment model that has learned nothing."""
    return LatePaymentModel()


DeployedSettings = Callable[..., Any]


@pytest.fixture
def deployed_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Any:
    """Build settings as a container would, from its environment and settings file.

    Call it as ``deployed_settings(environment, config_text=None, argv=())``.
    The caller's own RISKSTREAM_* variables are removed first. With
    ``config_text``, the file is written to a temporary path and named by
    RISKSTREAM_CONFIG_FILE. ``argv`` is a ``riskstream`` command line whose
    options rank above both. Raises ConfigError like the worker would.
    """
    import os

    from riskstream.cli import build_parser
    from riskstream.cli_settings import settings_from_args

    def build(
        environment: dict[str, str],
        config_text: str | None = None,
        argv: tuple[str, ...] | list[str] = ("worker",),
    ) -> Any:
        for name in list(os.environ):
            if name.upper().startswith("RISKSTREAM_"):
                monkeypatch.delenv(name)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        if config_text is not None:
            path = tmp_path / "settings-under-test.yaml"
            path.write_text(config_text, encoding="utf-8")
            monkeypatch.setenv("RISKSTREAM_CONFIG_FILE", str(path))
        return settings_from_args(build_parser().parse_args(list(argv)))

    return build
