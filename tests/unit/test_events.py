"""Unit tests for the event contract in riskstream.events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from riskstream.errors import InvalidEvent
from riskstream.events import (
    TOPIC_CUSTOMERS,
    TOPIC_ORDERS,
    TOPIC_PAYMENTS,
    CustomerUpdated,
    InvoiceIssued,
    OrderCancelled,
    OrderPlaced,
    PaymentFailed,
    PaymentReceived,
    event_time,
    parse_event,
    route,
)

NUMBER_PLACEHOLDER = '"<number>"'


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        pytest.param("order.placed", OrderPlaced, id="order-placed"),
        pytest.param("order.cancelled", OrderCancelled, id="order-cancelled"),
        pytest.param("invoice.issued", InvoiceIssued, id="invoice-issued"),
        pytest.param("payment.received", PaymentReceived, id="payment-received"),
        pytest.param("payment.failed", PaymentFailed, id="payment-failed"),
        pytest.param("customer.updated", CustomerUpdated, id="customer-updated"),
    ],
)
def test_event_type_parses(event_bytes, kind, model):
    raw = event_bytes(kind)

    event = parse_event(raw)

    assert isinstance(event, model)
    assert event.type == kind
    assert event.customer_id == "c1"
    assert event.event_id == "evt-1"


def test_order_lines_parse(event_bytes):
    lines = [
        {"sku": "DRL-10", "category": "power-tools", "quantity": 3, "amount": "60.00"},
        {"sku": "BIT-2", "category": "accessories", "quantity": 1, "amount": "40.00"},
    ]
    raw = event_bytes("order.placed", lines=lines)

    event = parse_event(raw)

    assert [line.sku for line in event.lines] == ["DRL-10", "BIT-2"]
    assert [line.quantity for line in event.lines] == [3, 1]
    assert [line.amount for line in event.lines] == [Decimal("60.00"), Decimal("40.00")]


@pytest.mark.parametrize(
    ("kind", "field", "number", "expected"),
    [
        pytest.param(
            "order.placed",
            "amount",
            b"1234567.89",
            Decimal("1234567.89"),
            id="no-binary-fraction",
        ),
        pytest.param("order.placed", "amount", b"0.1", Decimal("0.1"), id="tenth"),
        pytest.param("order.placed", "amount", b"12.30", Decimal("12.30"), id="scale"),
        pytest.param(
            "invoice.issued", "amount", b"4200.50", Decimal("4200.50"), id="invoice"
        ),
        pytest.param(
            "customer.updated",
            "credit_limit",
            b"9999999999.99",
            Decimal("9999999999.99"),
            id="credit-limit-largest",
        ),
    ],
)
def test_json_number_amount_exact(event_bytes, kind, field, number, expected):
    raw = event_bytes(kind, **{field: "<number>"})
    raw = raw.replace(NUMBER_PLACEHOLDER.encode(), number)

    event = parse_event(raw)

    value = getattr(event, field)
    assert isinstance(value, Decimal)
    assert str(value) == str(expected)


def test_long_json_number_keeps_digits(event_bytes):
    # As a binary float this number is 0.1, which EUR would accept.
    raw = event_bytes("order.placed", amount="<number>")
    raw = raw.replace(NUMBER_PLACEHOLDER.encode(), b"0.1000000000000000055")

    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)

    assert caught.value.field == "amount"
    assert "0.1000000000000000055" in str(caught.value)


def test_occurred_at_normalised_to_utc(event_bytes):
    raw = event_bytes("order.placed", occurred_at="2026-01-05T09:30:00+02:00")

    event = parse_event(raw)

    assert event.occurred_at == datetime(2026, 1, 5, 7, 30, tzinfo=UTC)
    assert event.occurred_at.utcoffset().total_seconds() == 0
    assert event.occurred_at.tzinfo is UTC


def test_due_at_normalised_to_utc(event_bytes):
    raw = event_bytes("invoice.issued", due_at="2026-02-01T00:00:00-05:00")

    event = parse_event(raw)

    assert event.due_at == datetime(2026, 2, 1, 5, 0, tzinfo=UTC)
    assert event.due_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        pytest.param(
            b'{"type": "order.placed",', "body", "invalid_json", id="truncated"
        ),
        pytest.param(b"not json", "body", "invalid_json", id="not-json"),
        pytest.param(b"\xff\xfe", "body", "invalid_json", id="not-utf8"),
        pytest.param(b"[1, 2]", "body", "not_an_object", id="array"),
        pytest.param(b'"order.placed"', "body", "not_an_object", id="string"),
        pytest.param(b"{}", "type", "unknown_type", id="no-type"),
    ],
)
def test_invalid_body_rejected(raw, field, rule):
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)

    assert caught.value.field == field
    assert caught.value.rule == rule
    assert str(caught.value).startswith(f"{field}:")


@pytest.mark.parametrize(
    ("kind", "changes", "removed", "field", "rule"),
    [
        pytest.param(
            "order.placed",
            {"type": "order.shipped"},
            (),
            "type",
            "unknown_type",
            id="unknown-type",
        ),
        pytest.param(
            "order.placed", {}, ("order_id",), "order_id", "missing", id="no-order-id"
        ),
        pytest.param(
            "order.placed", {}, ("amount",), "amount", "missing", id="no-amount"
        ),
        pytest.param(
            "payment.received",
            {},
            ("customer_id",),
            "customer_id",
            "missing",
            id="no-customer-id",
        ),
        pytest.param(
            "order.placed",
            {"occurred_at": "2026-01-05T10:00:00"},
            (),
            "occurred_at",
            "timezone_aware",
            id="naive-occurred-at",
        ),
        pytest.param(
            "invoice.issued",
            {"due_at": "2026-02-05T10:00:00"},
            (),
            "due_at",
            "timezone_aware",
            id="naive-due-at",
        ),
        pytest.param(
            "order.placed",
            {"occurred_at": 1767607200},
            (),
            "occurred_at",
            "rfc3339_string",
            id="epoch-occurred-at",
        ),
        pytest.param(
            "invoice.issued",
            {"due_at": 1770285600.5},
            (),
            "due_at",
            "rfc3339_string",
            id="epoch-due-at",
        ),
        pytest.param(
            "order.placed",
            {"currency": "XYZ"},
            (),
            "currency",
            "unknown_currency",
            id="non-iso-currency",
        ),
        pytest.param(
            "customer.updated",
            {"currency": "ABC"},
            (),
            "currency",
            "unknown_currency",
            id="non-iso-limit-currency",
        ),
        pytest.param(
            "order.placed",
            {"currency": "eur"},
            (),
            "currency",
            "string_pattern_mismatch",
            id="lower-case-currency",
        ),
        pytest.param(
            "order.placed",
            {"amount": "10.001"},
            (),
            "amount",
            "too_many_decimals",
            id="eur-three-decimals",
        ),
        pytest.param(
            "order.placed",
            {"amount": "10.5", "currency": "JPY"},
            (),
            "amount",
            "too_many_decimals",
            id="jpy-decimals",
        ),
        pytest.param(
            "order.placed",
            {"amount": "1.10", "currency": "JPY"},
            (),
            "amount",
            "too_many_decimals",
            id="jpy-trailing-zero-decimals",
        ),
        pytest.param(
            "payment.received",
            {"amount": "-5.00"},
            (),
            "amount",
            "out_of_range",
            id="negative-amount",
        ),
        pytest.param(
            "invoice.issued",
            {"amount": "0"},
            (),
            "amount",
            "out_of_range",
            id="zero-amount",
        ),
        pytest.param(
            "customer.updated",
            {"credit_limit": "-1.00"},
            (),
            "credit_limit",
            "out_of_range",
            id="negative-credit-limit",
        ),
        pytest.param(
            "order.placed",
            {"amount": "NaN"},
            (),
            "amount",
            "decimal_string",
            id="nan-amount",
        ),
        pytest.param(
            "order.placed",
            {"amount": "1_000.00"},
            (),
            "amount",
            "decimal_string",
            id="underscore-amount",
        ),
        pytest.param(
            "order.placed",
            {"amount": " 10.00 "},
            (),
            "amount",
            "decimal_string",
            id="padded-amount",
        ),
        pytest.param(
            "order.placed",
            {"amount": "1e3"},
            (),
            "amount",
            "decimal_string",
            id="exponent-amount",
        ),
        pytest.param(
            "order.placed",
            {"amount": "184467440737095516.16"},
            (),
            "amount",
            "out_of_range",
            id="amount-beyond-state-range",
        ),
        pytest.param(
            "customer.updated",
            {"credit_limit": "10000000000.01"},
            (),
            "credit_limit",
            "out_of_range",
            id="credit-limit-too-large",
        ),
        pytest.param(
            "order.placed",
            {"occurred_at": "1772442000"},
            (),
            "occurred_at",
            "rfc3339_string",
            id="epoch-seconds-as-text",
        ),
        pytest.param(
            "alert.action",
            {"action": "snooze", "snooze_for": 3600},
            (),
            "snooze_for",
            "iso8601_duration",
            id="snooze-seconds",
        ),
        pytest.param(
            "alert.action",
            {"action": "snooze", "snooze_for": "04:00:00"},
            (),
            "snooze_for",
            "iso8601_duration",
            id="snooze-clock-time",
        ),
        pytest.param(
            "order.placed",
            {
                "lines": [
                    {"sku": "s1", "category": "c", "quantity": 0, "amount": "1.00"}
                ]
            },
            (),
            "lines.0.quantity",
            "greater_than",
            id="line-quantity-zero",
        ),
        pytest.param(
            "order.placed",
            {
                "lines": [
                    {"sku": "s1", "category": "c", "quantity": 1, "amount": "1.00"},
                    {"sku": "s2", "category": "c", "quantity": 1, "amount": "1.001"},
                ]
            },
            (),
            "lines.1.amount",
            "too_many_decimals",
            id="line-amount-decimals",
        ),
        pytest.param(
            "order.placed",
            {"event_id": ""},
            (),
            "event_id",
            "string_too_short",
            id="empty-event-id",
        ),
    ],
)
def test_invalid_field_rejected(event_fields, kind, changes, removed, field, rule):
    fields = event_fields(kind)
    fields.update(changes)
    for name in removed:
        del fields[name]
    raw = orjson.dumps(fields)

    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)

    assert caught.value.field == field
    assert caught.value.rule == rule
    assert str(caught.value).startswith(f"{field}:")


def test_list_type_is_invalid_event():
    raw = b'{"type": ["order.placed"], "customer_id": "c1"}'

    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)

    assert caught.value.field == "type"
    assert caught.value.rule == "unknown_type"


@pytest.mark.parametrize(
    ("kind", "topic"),
    [
        pytest.param("order.placed", TOPIC_ORDERS, id="order-placed"),
        pytest.param("order.cancelled", TOPIC_ORDERS, id="order-cancelled"),
        pytest.param("invoice.issued", TOPIC_PAYMENTS, id="invoice-issued"),
        pytest.param("payment.received", TOPIC_PAYMENTS, id="payment-received"),
        pytest.param("payment.failed", TOPIC_PAYMENTS, id="payment-failed"),
        pytest.param("customer.updated", TOPIC_CUSTOMERS, id="customer-updated"),
    ],
)
def test_route_by_event_type(event_bytes, kind, topic):
    raw = event_bytes(kind)

    assert route(raw) == (topic, b"c1")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b"{not json", (TOPIC_ORDERS, None), id="invalid-json"),
        pytest.param(b'["c1"]', (TOPIC_ORDERS, None), id="array"),
        pytest.param(
            b'{"type": "order.shipped", "customer_id": "c7"}',
            (TOPIC_ORDERS, b"c7"),
            id="unknown-type",
        ),
        pytest.param(
            b'{"type": "payment.failed", "customer_id": 42}',
            (TOPIC_PAYMENTS, None),
            id="numeric-customer-id",
        ),
        pytest.param(
            b'{"type": "customer.updated", "customer_id": "K\xc3\xbchne"}',
            (TOPIC_CUSTOMERS, "Kühne".encode()),
            id="utf8-key",
        ),
    ],
)
def test_route_of_unusual_message(raw, expected):
    assert route(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b'{"occurred_at": "1970-01-01T00:01:00Z"}', 60.0, id="utc"),
        pytest.param(
            b'{"occurred_at": "1970-01-01T02:00:00+02:00"}', 0.0, id="positive-offset"
        ),
        pytest.param(
            b'{"occurred_at": "2026-01-05T09:00:00Z"}', 1767603600.0, id="2026"
        ),
        pytest.param(b'{"occurred_at": "1970-01-01T00:01:00"}', None, id="naive"),
        pytest.param(b'{"occurred_at": "2026-01-05"}', None, id="date-only"),
        pytest.param(b'{"occurred_at": "soon"}', None, id="not-a-time"),
        pytest.param(b'{"occurred_at": 60}', None, id="number"),
        pytest.param(b'{"type": "order.placed"}', None, id="missing"),
        pytest.param(b'["1970-01-01T00:01:00Z"]', None, id="array"),
        pytest.param(b"{not json", None, id="invalid-json"),
    ],
)
def test_event_time_of_message(raw, expected):
    assert event_time(raw) == expected


@pytest.mark.parametrize(
    ("raw", "field", "rule"),
    [
        pytest.param(None, "body", "tombstone", id="tombstone"),
        pytest.param(
            b'{"event_id":"e","type":"order.placed","customer_id":"c",'
            b'"occurred_at":"9999-12-31T23:59:59-05:00","order_id":"o",'
            b'"amount":"1.00","currency":"EUR"}',
            "occurred_at",
            "out_of_range",
            id="year-overflow",
        ),
        pytest.param(
            b'{"event_id":"e","type":"order.placed","customer_id":"c",'
            b'"occurred_at":"2150-01-01T00:00:00Z","order_id":"o",'
            b'"amount":"1.00","currency":"EUR"}',
            "occurred_at",
            "out_of_range",
            id="far-future",
        ),
        pytest.param(
            b'{"event_id":"e","type":"invoice.issued","customer_id":"c",'
            b'"occurred_at":"2026-03-01T00:00:00Z","invoice_id":"i",'
            b'"amount":"1.00","currency":"EUR","due_at":"2025-01-01T00:00:00Z"}',
            "due_at",
            "before_issue",
            id="due-before-issue",
        ),
    ],
)
def test_implausible_input_rejected(raw, field, rule):
    with pytest.raises(InvalidEvent) as caught:
        parse_event(raw)

    assert caught.value.field == field
    assert caught.value.rule == rule
