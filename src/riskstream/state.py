"""Per-customer state: one compact record with bucketed windows.

Times are whole seconds since the Unix epoch (UTC) and days are
``seconds // 86400``. Money is an integer count of minor units of the
customer's single currency, so sums are exact.

Purchase history is kept in daily buckets for the last 90 days and in 30-day
blocks for the 360 days before that. Older history is dropped. Late, partial
and failed payments and complaints are kept as day numbers for 365 days.
Order line amounts per category decay exponentially, at most
:data:`MAX_CATEGORIES` of them. Event ids are kept
as 7-byte hashes of the last :data:`RECENT_IDS` events for deduplication, one
``bytes`` value written as base64.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

DAY_S = 86_400
RECENT_DAYS = 90
BLOCK_DAYS = 30
HISTORY_DAYS = 450
EVENT_WINDOW_DAYS = 365
RECENT_IDS = 64
RECENT_PAYMENT_IDS = 32
DIGEST_BYTES = 7
MAX_UNAPPLIED = 32
MAX_CATEGORIES = 16
"""Order line categories tracked per customer; the smallest goes first."""
MAX_OPEN_ORDERS = 1000
MAX_OPEN_INVOICES = 1000
"""Open orders and open invoices kept per customer. A table row goes to Kafka
as one message, and Kafka rejects messages over 1 MB by default. With both
lists full and every identifier 128 characters long, a state is 499 KB."""
RECENT_INVOICED_ORDERS = 32
"""Orders invoiced before their ``order.placed`` arrived that a state remembers."""
FORMAT_VERSION = 6


def id_digest(value: str) -> bytes:
    """Hash an identifier to 7 bytes, stable across processes and machines.

    >>> id_digest("e1") == id_digest("e1") and id_digest("e1") != id_digest("e2")
    True
    """
    return hashlib.blake2b(value.encode(), digest_size=DIGEST_BYTES).digest()


def digest_index(digests: bytes, digest: bytes) -> int:
    """Return the position of ``digest`` in a run of digests, or -1.

    >>> digest_index(b"abcdefg" + b"hijklmn", b"hijklmn")
    7
    >>> digest_index(b"xabcdefghijklm", b"abcdefg")
    -1
    """
    index = digests.find(digest)
    while index != -1 and index % DIGEST_BYTES:
        index = digests.find(digest, index + 1)
    return index


def remember(digests: bytes, digest: bytes, keep: int) -> bytes:
    """Append ``digest`` and keep the last ``keep`` digests."""
    return (digests + digest)[-keep * DIGEST_BYTES :]


@dataclass(slots=True)
class Invoice:
    """An invoice with money still owed, or owed until recently."""

    amount: int
    outstanding: int
    issued_s: int
    due_s: int
    event_id: str
    probability: float
    """Model probability of paying 30+ days late, at issue; -1 when not scored."""
    features: list[float]
    """Model features as they were at issue, kept for the delayed label."""
    labelled: bool = False
    partial: bool = False

    def to_list(self) -> list[Any]:
        """Encode as a positional list."""
        return [
            self.amount,
            self.outstanding,
            self.issued_s,
            self.due_s,
            self.event_id,
            self.probability,
            self.features,
            int(self.labelled) | int(self.partial) << 1,
        ]

    @classmethod
    def from_list(cls, row: list[Any]) -> Invoice:
        """Decode from :meth:`to_list`."""
        amount, outstanding, issued_s, due_s, event_id, probability, features = row[:7]
        flags = row[7]
        return cls(
            amount,
            outstanding,
            issued_s,
            due_s,
            event_id,
            probability,
            features,
            labelled=bool(flags & 1),
            partial=bool(flags & 2),
        )


def alert_id_for(customer_id: str, kind: str, opened_s: int, number: int) -> str:
    """Derive an alert's id from what opened it, so a replay gives the same id.

    ``number`` counts the customer's alerts, this one included.

    >>> len(alert_id_for("c1", "overdue", 86400, 1))
    32
    """
    seed = f"{customer_id}|{kind}|{opened_s}|{number}"
    return hashlib.sha256(seed.encode()).hexdigest()[:32]


@dataclass(slots=True)
class OpenAlert:
    """The alert of one signal kind that is open for a customer."""

    alert_id: str
    severity: str
    """The highest severity since the alert opened."""
    opened_s: int
    status: str = "open"
    """``open``, ``acknowledged``, ``snoozed``, or ``closed`` when an operator
    resolved it while its rules still fire."""
    sequence: int = 0
    """Number of updates published for the alert, the opening included."""
    snoozed_until_s: int | None = None
    cleared_s: int | None = None
    """When the alert's rules stopped firing, while it waits to resolve."""
    acted_by: str | None = None
    """The operator behind the latest acknowledge, snooze or resolve."""
    number: int = 0
    """The customer's alert count when this one opened; with the customer,
    the kind and ``opened_s`` it gives ``alert_id``, which is not stored."""

    def to_list(self) -> list[Any]:
        """Encode as a positional list without trailing nulls."""
        row = [
            self.number,
            self.severity,
            self.opened_s,
            self.status,
            self.sequence,
            self.snoozed_until_s,
            self.cleared_s,
            self.acted_by,
        ]
        while row[-1] is None:
            row.pop()
        return row

    @classmethod
    def from_list(cls, row: list[Any], customer_id: str, kind: str) -> OpenAlert:
        """Decode from :meth:`to_list`, or from the form that stored the id.

        The first states with open alerts stored the id in place of
        ``number``, so a row that starts with a string keeps it.
        """
        row = row + [None] * (8 - len(row))
        number, severity, opened_s, status, sequence, snoozed, cleared, by = row
        if isinstance(number, str):
            alert_id, number = number, 0
        else:
            alert_id = alert_id_for(customer_id, kind, opened_s, number)
        return cls(
            alert_id, severity, opened_s, status, sequence, snoozed, cleared, by, number
        )


@dataclass(slots=True)
class CustomerState:
    """Everything riskstream remembers about one customer."""

    customer_id: str
    partition: int = 0
    currency: str | None = None
    credit_limit: int | None = None
    terms_days: int | None = None
    profile: dict[str, str] = field(default_factory=dict)
    clock_s: int = 0
    """Latest event time at which the customer was evaluated."""
    first_order_s: int | None = None
    last_order_s: int | None = None
    orders_total: int = 0
    gap_sum_days: float = 0.0
    days: list[list[int]] = field(default_factory=list)
    """Daily purchase buckets ``[day, orders, amount]``, oldest first."""
    blocks: list[list[int]] = field(default_factory=list)
    """30-day purchase blocks ``[day // 30, orders, amount]``, oldest first."""
    open_orders: dict[str, list[int]] = field(default_factory=dict)
    """Orders not yet invoiced: ``order_id -> [amount, placed_s]``."""
    invoices: dict[str, Invoice] = field(default_factory=dict)
    unapplied: dict[str, list[int]] = field(default_factory=dict)
    """Payments for invoices not seen yet: ``invoice_id -> [amount, paid_s]``."""
    credit: int = 0
    """Overpaid money, which lowers exposure."""
    late_days: list[int] = field(default_factory=list)
    partial_days: list[int] = field(default_factory=list)
    failed_days: list[int] = field(default_factory=list)
    avg_days_to_pay: float | None = None
    paid_count: int = 0
    recent_ids: bytes = b""
    """Digests of the last :data:`RECENT_IDS` event ids, oldest first."""
    payment_ids: bytes = b""
    """Digests of the last :data:`RECENT_PAYMENT_IDS` payment ids."""
    score: float = 0.0
    level: str = "low"
    firing: list[str] = field(default_factory=list)
    alerts_raised: int = 0
    offsets: list[int] = field(default_factory=lambda: [-1, -1, -1, -1])
    """Offset of the last applied message from each input topic's partition,
    in the order customers, orders, payments, alert actions; a redelivered
    message is at or below it."""
    open_alerts: dict[str, OpenAlert] = field(default_factory=dict)
    """Open alerts by signal kind."""
    credit_score: float | None = None
    """Latest credit bureau score, 0 (worst) to 100."""
    credit_score_previous: float | None = None
    financials: list[Any] | None = None
    """Latest reported period: ``[period_end_day, debt_ratio, current_ratio,
    negative_cash_flow]``; the current ratio is None without current
    liabilities."""
    complaint_days: list[int] = field(default_factory=list)
    serious_complaint_days: list[int] = field(default_factory=list)
    """Days of complaints of high severity, for 365 days like the others."""
    slow_days_to_pay: float | None = None
    """Average days to pay with a long memory, to compare the recent one with."""
    categories: dict[str, list[float]] = field(default_factory=dict)
    """Order line amounts per category, decayed: ``[recent, long-term]``."""
    categories_at_s: int = 0
    """Time the category amounts were last decayed to."""
    log_amount_mean: float | None = None
    """Running mean of the log order amount, the anomaly detector's baseline."""
    order_anomaly: float | None = None
    """Anomaly score of the latest order; None before there is one."""
    invoiced_orders: bytes = b""
    """Digests of order ids that an invoice named before the order arrived,
    the last :data:`RECENT_INVOICED_ORDERS` of them."""

    def invoiced_early(self, order_id: str) -> None:
        """Record that an invoice billed ``order_id`` before the order arrived."""
        self.invoiced_orders = remember(
            self.invoiced_orders, id_digest(order_id), RECENT_INVOICED_ORDERS
        )

    def take_invoiced_early(self, order_id: str) -> bool:
        """Tell whether ``order_id`` was invoiced before it arrived, and forget it."""
        index = digest_index(self.invoiced_orders, id_digest(order_id))
        if index < 0:
            return False
        ids = self.invoiced_orders
        self.invoiced_orders = ids[:index] + ids[index + DIGEST_BYTES :]
        return True

    def seen(self, event_id: str) -> bool:
        """Record ``event_id`` and tell whether it was already recorded."""
        digest = id_digest(event_id)
        if digest_index(self.recent_ids, digest) >= 0:
            return True
        self.recent_ids = remember(self.recent_ids, digest, RECENT_IDS)
        return False

    def forget(self, event_id: str) -> None:
        """Remove ``event_id`` from the recorded ids."""
        index = digest_index(self.recent_ids, id_digest(event_id))
        if index >= 0:
            ids = self.recent_ids
            self.recent_ids = ids[:index] + ids[index + DIGEST_BYTES :]

    def payment_seen(self, payment_id: str) -> bool:
        """Record ``payment_id`` and tell whether it was already recorded."""
        digest = id_digest(payment_id)
        if digest_index(self.payment_ids, digest) >= 0:
            return True
        self.payment_ids = remember(self.payment_ids, digest, RECENT_PAYMENT_IDS)
        return False

    def add_purchase(self, at_s: int, amount: int, count: int = 1) -> None:
        """Add ``count`` orders worth ``amount`` to the bucket of ``at_s``.

        A cancelled order passes a negative amount and count.
        """
        day = at_s // DAY_S
        today = max(self.clock_s, at_s) // DAY_S
        if day <= today - RECENT_DAYS:
            block = day // BLOCK_DAYS
            if day > today - HISTORY_DAYS:
                _add_to_buckets(self.blocks, block, amount, count)
            return
        _add_to_buckets(self.days, day, amount, count)

    def compact(self) -> None:
        """Move daily buckets older than 90 days into blocks and drop old data."""
        today = self.clock_s // DAY_S
        while self.days and self.days[0][0] <= today - RECENT_DAYS:
            day, count, amount = self.days.pop(0)
            _add_to_buckets(self.blocks, day // BLOCK_DAYS, amount, count)
        oldest_block = (today - HISTORY_DAYS) // BLOCK_DAYS
        while self.blocks and self.blocks[0][0] <= oldest_block:
            self.blocks.pop(0)
        oldest_day = today - EVENT_WINDOW_DAYS
        for days in (
            self.late_days,
            self.partial_days,
            self.failed_days,
            self.complaint_days,
            self.serious_complaint_days,
        ):
            while days and days[0] <= oldest_day:
                days.pop(0)

    def to_bytes(self) -> bytes:
        """Encode as compact JSON."""
        return orjson.dumps(
            [
                FORMAT_VERSION,
                self.customer_id,
                self.partition,
                self.currency,
                self.credit_limit,
                self.terms_days,
                self.profile,
                self.clock_s,
                self.first_order_s,
                self.last_order_s,
                self.orders_total,
                self.gap_sum_days,
                self.days,
                self.blocks,
                self.open_orders,
                {key: inv.to_list() for key, inv in self.invoices.items()},
                self.unapplied,
                self.credit,
                self.late_days,
                self.partial_days,
                self.failed_days,
                self.avg_days_to_pay,
                self.paid_count,
                base64.b64encode(self.recent_ids).decode("ascii"),
                base64.b64encode(self.payment_ids).decode("ascii"),
                self.score,
                self.level,
                self.firing,
                self.alerts_raised,
                self.offsets,
                {kind: alert.to_list() for kind, alert in self.open_alerts.items()},
                self.credit_score,
                self.credit_score_previous,
                self.financials,
                self.complaint_days,
                self.serious_complaint_days,
                self.slow_days_to_pay,
                self.categories,
                self.categories_at_s,
                self.log_amount_mean,
                self.order_anomaly,
                base64.b64encode(self.invoiced_orders).decode("ascii"),
            ]
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> CustomerState:
        """Decode from :meth:`to_bytes`."""
        row = orjson.loads(raw)
        if row[0] == 2:
            # Version 2 kept the digests as lists of integers.
            for index in (23, 24):
                row[index] = b"".join(
                    value.to_bytes(DIGEST_BYTES, "big") for value in row[index]
                )
        elif row[0] in (3, 4, 5, FORMAT_VERSION):
            row[23] = base64.b64decode(row[23])
            row[24] = base64.b64decode(row[24])
        else:
            raise ValueError(f"state format {row[0]} is not {FORMAT_VERSION}")
        if row[0] < 4:
            # Before version 4 there was no alert-actions topic and no open
            # alert list.
            row[29] = [*row[29], -1]
            row.append({})
        if row[0] < 5:
            # Version 5 added credit, financial, complaint, payment-trend,
            # category and order anomaly history.
            row.extend([None, None, None, [], [], None, {}, 0, None, None])
        if row[0] < 6:
            # Version 6 added the orders invoiced before they arrived.
            row.append("")
        row[41] = base64.b64decode(row[41])
        state = cls(*row[1:])
        state.invoices = {
            key: Invoice.from_list(value) for key, value in row[15].items()
        }
        state.open_alerts = {
            kind: OpenAlert.from_list(value, state.customer_id, kind)
            for kind, value in row[30].items()
        }
        return state


def _add_to_buckets(
    buckets: list[list[int]], key: int, amount: int, count: int = 1
) -> None:
    """Add to the bucket ``key`` of a list kept sorted by key."""
    for index in range(len(buckets) - 1, -1, -1):
        bucket = buckets[index]
        if bucket[0] == key:
            bucket[1] += count
            bucket[2] += amount
            return
        if bucket[0] < key:
            buckets.insert(index + 1, [key, count, amount])
            return
    buckets.insert(0, [key, count, amount])
