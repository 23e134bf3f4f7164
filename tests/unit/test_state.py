"""Unit tests for per-customer state in riskstream.state."""

from __future__ import annotations

import orjson
import pytest

from riskstream.events import parse_event
from riskstream.simulation import simulate, synthetic_orders
from riskstream.state import (
    BLOCK_DAYS,
    DAY_S,
    DIGEST_BYTES,
    EVENT_WINDOW_DAYS,
    HISTORY_DAYS,
    RECENT_DAYS,
    RECENT_IDS,
    RECENT_PAYMENT_IDS,
    CustomerState,
    Invoice,
    OpenAlert,
    alert_id_for,
    digest_index,
    id_digest,
)

TODAY = 1019
"""Day number of the compaction tests, chosen so that day TODAY - 450 ends block 18."""


@pytest.fixture
def rich_state(engine, model, make_event, at):
    """Build a state that sets every field, with a partial and a labelled invoice."""
    state = CustomerState("c1", partition=3)
    events = [
        make_event("customer.updated", at(0), region="DE", industry="tools"),
        make_event("order.placed", at(0, 10), order_id="o0", amount="300.00"),
        make_event(
            "invoice.issued",
            at(1),
            invoice_id="i0",
            order_id="o0",
            amount="300.00",
            due_at=at(31),
        ),
        make_event(
            "payment.received",
            at(40),
            payment_id="p0",
            invoice_id="i0",
            amount="300.00",
        ),
        make_event("order.placed", at(50), order_id="o50", amount="200.00"),
        make_event(
            "invoice.issued",
            at(51),
            invoice_id="i50",
            order_id="o50",
            amount="200.00",
            due_at=at(81),
        ),
        make_event(
            "payment.received",
            at(60),
            payment_id="p50",
            invoice_id="i50",
            amount="40.00",
        ),
        make_event("order.placed", at(120), order_id="o120", amount="150.00"),
        make_event(
            "invoice.issued",
            at(121),
            invoice_id="i120",
            order_id="o120",
            amount="150.00",
            due_at=at(130),
        ),
        make_event(
            "payment.failed",
            at(125),
            payment_id="pf",
            invoice_id="i120",
            amount="150.00",
        ),
        make_event(
            "payment.received",
            at(126),
            payment_id="pu",
            invoice_id="later",
            amount="25.00",
        ),
        make_event(
            "invoice.issued", at(131), invoice_id="ix", amount="50.00", due_at=at(161)
        ),
        make_event(
            "payment.received",
            at(132),
            payment_id="px",
            invoice_id="ix",
            amount="60.00",
        ),
        make_event("order.placed", at(170), order_id="o170", amount="80.00"),
    ]
    for event in events:
        outcome = engine.step(state, event, model)
        assert outcome.rejection is None
    return state


def test_state_round_trip_equal(rich_state):
    raw = rich_state.to_bytes()

    restored = CustomerState.from_bytes(raw)

    assert restored == rich_state


def test_round_trip_keeps_invoices(rich_state):
    restored = CustomerState.from_bytes(rich_state.to_bytes())

    assert restored.invoices == rich_state.invoices
    assert set(restored.invoices) == {"i50", "i120"}
    assert restored.invoices["i50"].partial
    assert restored.invoices["i120"].labelled
    assert isinstance(restored.invoices["i50"], Invoice)


def test_round_trip_keeps_history(rich_state):
    restored = CustomerState.from_bytes(rich_state.to_bytes())

    assert restored.blocks == rich_state.blocks
    assert restored.blocks != []
    assert restored.unapplied == {"later": [2500, rich_state.unapplied["later"][1]]}
    assert restored.credit == 1000
    assert restored.profile["region"] == "DE"


@pytest.mark.parametrize(
    ("labelled", "partial"),
    [
        pytest.param(False, False, id="open"),
        pytest.param(True, False, id="labelled"),
        pytest.param(False, True, id="partial"),
        pytest.param(True, True, id="labelled-partial"),
    ],
)
def test_invoice_flags_round_trip(labelled, partial):
    invoice = Invoice(
        amount=1000,
        outstanding=400,
        issued_s=86_400,
        due_s=30 * 86_400,
        event_id="evt-9",
        probability=0.25,
        features=[0.5, 1.0],
        labelled=labelled,
        partial=partial,
    )

    restored = Invoice.from_list(orjson.loads(orjson.dumps(invoice.to_list())))

    assert restored == invoice


def test_from_bytes_rejects_other_version():
    row = orjson.loads(CustomerState("c1").to_bytes())
    row[0] = 99

    with pytest.raises(ValueError, match="state format 99"):
        CustomerState.from_bytes(orjson.dumps(row))


def test_seen_reports_repeat():
    state = CustomerState("c1")

    first = state.seen("evt-1")
    second = state.seen("evt-1")

    assert first is False
    assert second is True


def test_seen_keeps_distinct_ids():
    state = CustomerState("c1")

    state.seen("evt-1")

    assert state.seen("evt-2") is False


def test_seen_caps_recent_ids():
    state = CustomerState("c1")

    for number in range(RECENT_IDS + 1):
        state.seen(f"evt-{number}")

    assert len(state.recent_ids) == RECENT_IDS * DIGEST_BYTES
    assert digest_index(state.recent_ids, id_digest("evt-0")) == -1
    assert state.seen(f"evt-{RECENT_IDS}") is True
    assert state.seen("evt-1") is True


def test_seen_forgets_oldest_past_cap():
    state = CustomerState("c1")
    for number in range(RECENT_IDS + 1):
        state.seen(f"evt-{number}")

    assert state.seen("evt-0") is False


def test_compact_moves_old_days_to_blocks():
    state = CustomerState(
        "c1",
        clock_s=TODAY * DAY_S,
        days=[[TODAY - 91, 1, 500], [TODAY - 90, 2, 1000], [TODAY - 89, 3, 700]],
        blocks=[[(TODAY - 90) // BLOCK_DAYS, 1, 100]],
    )

    state.compact()

    assert state.days == [[TODAY - 89, 3, 700]]
    assert state.blocks == [[(TODAY - 90) // BLOCK_DAYS, 4, 1600]]


def test_compact_drops_blocks_past_450_days():
    oldest_kept = (TODAY - HISTORY_DAYS + 1) // BLOCK_DAYS
    state = CustomerState(
        "c1",
        clock_s=TODAY * DAY_S,
        blocks=[
            [oldest_kept - 5, 1, 10],
            [oldest_kept - 1, 1, 20],
            [oldest_kept, 1, 30],
            [oldest_kept + 1, 1, 40],
        ],
    )

    state.compact()

    assert state.blocks == [[oldest_kept, 1, 30], [oldest_kept + 1, 1, 40]]


def test_compact_drops_payment_days_past_365():
    state = CustomerState(
        "c1",
        clock_s=TODAY * DAY_S,
        late_days=[TODAY - EVENT_WINDOW_DAYS, TODAY - EVENT_WINDOW_DAYS + 1],
        partial_days=[TODAY - 400, TODAY - 10],
        failed_days=[TODAY - EVENT_WINDOW_DAYS],
    )

    state.compact()

    assert state.late_days == [TODAY - EVENT_WINDOW_DAYS + 1]
    assert state.partial_days == [TODAY - 10]
    assert state.failed_days == []


@pytest.mark.parametrize(
    ("day", "days", "blocks"),
    [
        pytest.param(TODAY - 89, [[TODAY - 89, 1, 100]], [], id="recent-day"),
        pytest.param(
            TODAY - 90, [], [[(TODAY - 90) // BLOCK_DAYS, 1, 100]], id="day-90-block"
        ),
        pytest.param(
            TODAY - HISTORY_DAYS + 1,
            [],
            [[(TODAY - HISTORY_DAYS + 1) // BLOCK_DAYS, 1, 100]],
            id="oldest-kept-day",
        ),
        pytest.param(TODAY - HISTORY_DAYS, [], [], id="day-450-dropped"),
    ],
)
def test_add_purchase_picks_bucket(day, days, blocks):
    state = CustomerState("c1", clock_s=TODAY * DAY_S)

    state.add_purchase(day * DAY_S + 3600, 100)

    assert state.days == days
    assert state.blocks == blocks


@pytest.mark.parametrize(
    ("days", "seed"),
    [
        pytest.param(365, 0, id="one-year"),
        pytest.param(3 * 365, 3, id="three-years"),
    ],
)
def test_simulated_history_stays_bounded(engine, model, days, seed):
    # NOTE: the serialized size is not asserted. The one-year case's state
    # encodes to 1424 bytes, 820 of them the event and payment id digests.
    orders = list(synthetic_orders(1, days=days, seed=seed))
    state = CustomerState(orders[0].customer_id)
    rejections = []

    for fields in simulate(orders, seed=seed):
        outcome = engine.step(state, parse_event(orjson.dumps(fields)), model)
        if outcome.rejection is not None:
            rejections.append(outcome.rejection)

    today = state.clock_s // DAY_S
    assert rejections == []
    assert len(state.recent_ids) == RECENT_IDS * DIGEST_BYTES
    assert len(state.payment_ids) <= RECENT_PAYMENT_IDS * DIGEST_BYTES
    assert all(day > today - RECENT_DAYS for day, _, _ in state.days)
    assert all(
        block > (today - HISTORY_DAYS) // BLOCK_DAYS for block, _, _ in state.blocks
    )
    assert len(state.blocks) <= HISTORY_DAYS // BLOCK_DAYS
    assert all(day > today - EVENT_WINDOW_DAYS for day in state.late_days)
    assert all(day > today - EVENT_WINDOW_DAYS for day in state.failed_days)


def test_version_2_state_loads():
    state = CustomerState("c1")
    state.seen("evt-1")
    state.payment_seen("pay-1")
    row = orjson.loads(state.to_bytes())[:30]
    row[0] = 2
    row[29] = row[29][:3]
    row[23] = [int.from_bytes(id_digest("evt-1"), "big")]
    row[24] = [int.from_bytes(id_digest("pay-1"), "big")]

    restored = CustomerState.from_bytes(orjson.dumps(row))

    assert restored.recent_ids == state.recent_ids
    assert restored.payment_ids == state.payment_ids
    assert restored.seen("evt-1") is True
    assert restored.payment_seen("pay-1") is True


def test_digest_found_only_aligned():
    digests = b"x" + id_digest("evt-1")[:-1] + id_digest("evt-2")

    assert digest_index(digests, id_digest("evt-2")) == DIGEST_BYTES
    assert digest_index(digests[1:], id_digest("evt-1")[:-1] + b"!") == -1


def test_version_3_state_loads():
    state = CustomerState("c1", offsets=[4, 5, 6, -1])
    state.seen("evt-1")
    row = orjson.loads(state.to_bytes())[:30]
    row[0] = 3
    row[29] = row[29][:3]

    restored = CustomerState.from_bytes(orjson.dumps(row))

    assert restored.offsets == [4, 5, 6, -1]
    assert restored.open_alerts == {}
    assert restored.seen("evt-1") is True


def test_open_alerts_round_trip():
    state = CustomerState("c1")
    state.open_alerts["overdue"] = OpenAlert(
        alert_id_for("c1", "overdue", 100, 3),
        "high",
        100,
        status="snoozed",
        sequence=2,
        snoozed_until_s=500,
        number=3,
    )

    encoded = state.to_bytes()
    restored = CustomerState.from_bytes(encoded)

    assert restored.open_alerts == state.open_alerts
    assert state.open_alerts["overdue"].alert_id.encode() not in encoded


def test_open_alert_with_stored_id_loads():
    row = orjson.loads(CustomerState("c1").to_bytes())
    row[30] = {"overdue": ["b" * 32, "high", 100, "open", 1, None, None, None]}

    restored = CustomerState.from_bytes(orjson.dumps(row))

    assert restored.open_alerts["overdue"].alert_id == "b" * 32
    assert restored.open_alerts["overdue"].sequence == 1


def test_version_4_state_loads():
    state = CustomerState("c1")
    row = orjson.loads(state.to_bytes())[:31]
    row[0] = 4

    restored = CustomerState.from_bytes(orjson.dumps(row))

    assert restored.credit_score is None
    assert restored.complaint_days == []
    assert restored.categories == {}


def test_history_fields_round_trip():
    state = CustomerState(
        "c1",
        credit_score=41.0,
        credit_score_previous=70.0,
        financials=[20000, 0.85, None, 1],
        complaint_days=[20001],
        serious_complaint_days=[20001],
        slow_days_to_pay=33.5,
        categories={"tools": [120.5, 300.0]},
        categories_at_s=1_700_000_000,
    )

    assert CustomerState.from_bytes(state.to_bytes()) == state
