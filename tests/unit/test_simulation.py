"""Unit tests for the seeded payment simulation in riskstream.simulation."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from riskstream.errors import InvalidEvent
from riskstream.events import parse_event
from riskstream.simulation import Order, credit_limit, simulate, synthetic_orders

START = datetime(2025, 1, 1, tzinfo=UTC)


def simulated_bytes(customers, seed):
    orders = synthetic_orders(customers, days=200, seed=seed)
    return b"\n".join(orjson.dumps(event) for event in simulate(orders, seed=seed))


def erp_orders(customer, count):
    """Return ``count`` weekly orders of ``customer`` with the source of an ERP."""
    return [
        Order(
            customer,
            f"{customer}-{number}",
            START + timedelta(days=7 * number, hours=9),
            Decimal("250.00") + number,
            "EUR",
            "erp-export",
        )
        for number in range(count)
    ]


def test_same_seed_identical_bytes():
    first = simulated_bytes(customers=8, seed=42)
    second = simulated_bytes(customers=8, seed=42)

    assert first == second


def test_other_seed_other_bytes():
    first = simulated_bytes(customers=8, seed=42)
    second = simulated_bytes(customers=8, seed=43)

    assert first != second


def test_subset_gets_same_events():
    orders = list(synthetic_orders(6, days=300, seed=11))
    full = list(simulate(orders, seed=11))
    chosen = {"SIM-000001", "SIM-000004"}

    subset = list(simulate([o for o in orders if o.customer_id in chosen], seed=11))

    assert subset == [event for event in full if event["customer_id"] in chosen]
    assert subset != []


def test_non_order_events_say_simulated():
    orders = erp_orders("K1", 30) + erp_orders("K2", 30)

    events = list(simulate(orders, seed=3))

    others = [event for event in events if event["type"] != "order.placed"]
    assert others != []
    assert all(event["source"].startswith("simulated:") for event in others)


def test_orders_keep_their_source():
    orders = erp_orders("K1", 30)

    events = list(simulate(orders, seed=3))

    placed = [event for event in events if event["type"] == "order.placed"]
    assert len(placed) == 30
    assert {event["source"] for event in placed} == {"erp-export"}


def test_simulated_events_parse():
    orders = list(synthetic_orders(10, days=365, seed=8))
    failures = []

    for fields in simulate(orders, seed=8):
        try:
            parse_event(orjson.dumps(fields))
        except InvalidEvent as exc:
            failures.append((fields["event_id"], str(exc)))

    assert failures == []


def test_simulated_output_sorted_by_time():
    orders = list(synthetic_orders(10, days=365, seed=8))

    events = list(simulate(orders, seed=8))

    times = [parse_event(orjson.dumps(event)).occurred_at for event in events]
    assert times == sorted(times)


def test_payments_sum_to_invoice():
    orders = list(synthetic_orders(40, days=365, seed=21))
    invoiced = {}
    paid = defaultdict(Decimal)
    payments = defaultdict(int)

    for event in simulate(orders, seed=21):
        if event["type"] == "invoice.issued":
            invoiced[event["invoice_id"]] = Decimal(event["amount"])
        if event["type"] == "payment.received":
            paid[event["invoice_id"]] += Decimal(event["amount"])
            payments[event["invoice_id"]] += 1

    assert max(payments.values()) == 2
    assert {key: invoiced[key] for key in paid} == dict(paid)


def test_end_drops_later_events():
    orders = erp_orders("K1", 30)
    end = START + timedelta(days=100)

    events = list(simulate(orders, seed=3, end=end))

    times = [parse_event(orjson.dumps(event)).occurred_at for event in events]
    assert max(times) <= end
    assert len(events) < len(list(simulate(orders, seed=3)))


@pytest.mark.parametrize(
    ("first_order", "limit"),
    [
        pytest.param("12.49", "100", id="small-order-minimum"),
        pytest.param("180.10", "400", id="rounded-up"),
        pytest.param("50", "100", id="exactly-minimum"),
        pytest.param("75", "150", id="multiple-of-50"),
        pytest.param("200.01", "450", id="just-above-multiple"),
        pytest.param("0.01", "100", id="one-cent"),
        pytest.param("4200.50", "8450", id="sample-order"),
    ],
)
def test_credit_limit_from_first_order(first_order, limit):
    assert credit_limit(Decimal(first_order)) == Decimal(limit)
