"""Unit tests for the event-time merge in riskstream.ordering."""

from __future__ import annotations

from riskstream.events import TOPIC_CUSTOMERS, TOPIC_ORDERS, TOPIC_PAYMENTS
from riskstream.ordering import INPUT_TOPICS_IN_ORDER, EventTimeMerger


def caught_up_except(*lagging):
    """Return a ``caught_up`` callback that is false for the ``lagging`` topics."""
    return lambda topic: topic not in lagging


def test_merge_by_event_time():
    merger = EventTimeMerger(INPUT_TOPICS_IN_ORDER)
    merger.push(TOPIC_ORDERS, "order-30", 30.0)
    merger.push(TOPIC_PAYMENTS, "payment-10", 10.0)
    merger.push(TOPIC_CUSTOMERS, "customer-20", 20.0)
    merger.push(TOPIC_PAYMENTS, "payment-40", 40.0)

    released = list(merger.drain())

    assert released == ["payment-10", "customer-20", "order-30", "payment-40"]
    assert len(merger) == 0


def test_merge_keeps_topic_fifo():
    merger = EventTimeMerger(INPUT_TOPICS_IN_ORDER)
    merger.push(TOPIC_ORDERS, "order-50", 50.0)
    merger.push(TOPIC_ORDERS, "order-5", 5.0)
    merger.push(TOPIC_PAYMENTS, "payment-20", 20.0)

    released = list(merger.drain())

    assert released == ["payment-20", "order-50", "order-5"]


def test_merge_ties_follow_topic_order():
    merger = EventTimeMerger(INPUT_TOPICS_IN_ORDER)
    merger.push(TOPIC_PAYMENTS, "payment", 10.0)
    merger.push(TOPIC_ORDERS, "order", 10.0)
    merger.push(TOPIC_CUSTOMERS, "customer", 10.0)

    released = list(merger.drain())

    assert released == ["customer", "order", "payment"]


def test_merge_waits_for_lagging_topic():
    merger = EventTimeMerger(INPUT_TOPICS_IN_ORDER)
    merger.push(TOPIC_ORDERS, "order-30", 30.0)

    released = list(merger.pop_ready(caught_up_except(TOPIC_PAYMENTS)))

    assert released == []
    assert len(merger) == 1


def test_merge_resumes_when_topic_arrives():
    merger = EventTimeMerger(INPUT_TOPICS_IN_ORDER)
    merger.push(TOPIC_ORDERS, "order-30", 30.0)
    list(merger.pop_ready(caught_up_except(TOPIC_PAYMENTS)))
    merger.push(TOPIC_PAYMENTS, "payment-10", 10.0)

    released = list(merger.pop_ready(caught_up_except(TOPIC_PAYMENTS)))

    assert released == ["payment-10"]
    assert merger.oldest() == "order-30"


def test_merge_skips_caught_up_topic():
    merger = EventTimeMerger(INPUT_TOPICS_IN_ORDER)
    merger.push(TOPIC_ORDERS, "order-30", 30.0)
    merger.push(TOPIC_ORDERS, "order-40", 40.0)

    released = list(merger.pop_ready(caught_up_except()))

    assert released == ["order-30", "order-40"]


def test_untimed_message_goes_first():
    merger = EventTimeMerger(INPUT_TOPICS_IN_ORDER)
    merger.push(TOPIC_CUSTOMERS, "customer-1", 1.0)
    merger.push(TOPIC_ORDERS, "order-2", 2.0)
    merger.push(TOPIC_PAYMENTS, "untimed", None)

    released = list(merger.drain())

    assert released == ["untimed", "customer-1", "order-2"]


def test_untimed_keeps_topic_fifo():
    merger = EventTimeMerger(INPUT_TOPICS_IN_ORDER)
    merger.push(TOPIC_ORDERS, "order-5", 5.0)
    merger.push(TOPIC_ORDERS, "untimed", None)
    merger.push(TOPIC_PAYMENTS, "payment-9", 9.0)

    released = list(merger.drain())

    assert released == ["order-5", "untimed", "payment-9"]


def test_unknown_topic_added():
    merger = EventTimeMerger(INPUT_TOPICS_IN_ORDER)
    merger.push("erp.returns", "return-1", 1.0)
    merger.push(TOPIC_ORDERS, "order-2", 2.0)

    released = list(merger.drain())

    assert released == ["return-1", "order-2"]
    assert merger.topics[-1] == "erp.returns"


def test_clear_returns_queued():
    merger = EventTimeMerger(INPUT_TOPICS_IN_ORDER)
    merger.push(TOPIC_ORDERS, "order-2", 2.0)
    merger.push(TOPIC_PAYMENTS, "payment-1", 1.0)

    items = merger.clear()

    assert sorted(items) == ["order-2", "payment-1"]
    assert len(merger) == 0
    assert merger.oldest() is None
