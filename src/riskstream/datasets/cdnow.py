"""The CDNOW purchase log as riskstream events.

CDNOW was an online music retailer. Its master file lists 69,659 purchases
by 23,570 customers who first bought in the first quarter of 1997, observed
until 1998-06-30. Each whitespace-separated row is one purchase: the customer
id, the date (YYYYMMDD), the number of CDs and the dollar value.
The file ships inside the ``lifetimes`` 0.11.3 wheel (MIT licence) as
``lifetimes/datasets/CDNOW_master.txt``; install it with
``pip install 'riskstream[cdnow]'``. It is located by path, so ``lifetimes``
is never imported here.

Each purchase with a value above zero becomes one ``order.placed`` event
with ``source`` ``cdnow``. The data has no time of day, so the k-th order of
a customer on a day (k = 0, 1, ...) is placed at 12:00 UTC plus k minutes.
Purchases worth 0.00 are skipped and counted: the event contract requires
an order amount above zero, and a free item creates no invoice to pay.
Invoices, payments and the customer's master data come from
:func:`riskstream.simulation.simulate` and carry ``simulated:...`` in
``source``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson

from riskstream.datasets import DatasetError
from riskstream.simulation import Order, simulate

SOURCE = "cdnow"
CURRENCY = "USD"
CUSTOMER_PREFIX = "CDNOW-"
MASTER_FILE = "lifetimes/datasets/CDNOW_master.txt"
INSTALL_HINT = "pip install 'riskstream[cdnow]'"
ORDER_TIME = time(12, 0)
"""Time of day (UTC) given to a customer's first order of a day."""
END = datetime(1998, 6, 30, 23, 59, 59, tzinfo=UTC)
"""End of the observation period; simulated events after it are left out."""
TERMS_DAYS = 30
DEFAULT_SEED = 7


@dataclass(frozen=True, slots=True)
class Purchase:
    """One row of the CDNOW master file."""

    customer_id: str
    """The five-digit CDNOW id, without :data:`CUSTOMER_PREFIX`."""
    day: date
    cds: int
    value: Decimal
    line: int
    """1-based line number in the file."""


@dataclass(slots=True)
class ConversionStats:
    """Counts of one conversion, for the command's output and the docs."""

    rows: int = 0
    customers: int = 0
    orders: int = 0
    zero_value_rows: int = 0
    customers_without_orders: int = 0
    """Customers whose every purchase was worth 0.00, so they have no events."""
    events_by_type: Counter[str] = field(default_factory=Counter)

    @property
    def events(self) -> int:
        """Total number of events written."""
        return sum(self.events_by_type.values())


def customer_key(cdnow_id: str) -> str:
    """Return the riskstream ``customer_id`` of a CDNOW customer id.

    >>> customer_key("00042")
    'CDNOW-00042'
    """
    return f"{CUSTOMER_PREFIX}{cdnow_id}"


def locate_master_file() -> Path:
    """Find ``CDNOW_master.txt`` in the installed ``lifetimes`` distribution.

    Raises:
        DatasetError: ``lifetimes`` is not installed or lacks the file.
    """
    candidates: list[Path] = []
    try:
        distribution = importlib.metadata.distribution("lifetimes")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        candidates.append(Path(str(distribution.locate_file(MASTER_FILE))))
    spec = importlib.util.find_spec("lifetimes")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidates.append(Path(folder) / "datasets" / "CDNOW_master.txt")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if not candidates:
        raise DatasetError(
            "the CDNOW data set is missing: package 'lifetimes' is not installed; "
            f"run {INSTALL_HINT}"
        )
    raise DatasetError(
        f"the CDNOW data set is missing: {candidates[0]} not found in the "
        f"installed 'lifetimes'; reinstall it with {INSTALL_HINT}"
    )


def read_purchases(path: Path) -> Iterator[Purchase]:
    """Parse the rows of a CDNOW-format file, in file order.

    A first line starting with ``customer_id`` is a header and is skipped,
    as are blank lines.

    Raises:
        DatasetError: a row is malformed; the message names file and line.
    """
    with path.open(encoding="ascii", newline=None) as handle:
        for number, text in enumerate(handle, start=1):
            fields = text.split()
            if not fields:
                continue
            if number == 1 and fields[0] == "customer_id":
                continue
            yield _parse_row(path, number, fields)


def _parse_row(path: Path, number: int, fields: list[str]) -> Purchase:
    where = f"{path}:{number}"
    if len(fields) != 4:
        raise DatasetError(
            f"{where}: expected 4 fields (customer id, YYYYMMDD, CDs, dollar value), "
            f"got {len(fields)}"
        )
    customer, day_text, cds_text, value_text = fields
    if not customer.isdigit():
        raise DatasetError(f"{where}: customer id {customer!r} is not a number")
    try:
        day = datetime.strptime(day_text, "%Y%m%d").date()
    except ValueError:
        raise DatasetError(
            f"{where}: date {day_text!r} is not a valid YYYYMMDD date"
        ) from None
    if not cds_text.isdigit() or int(cds_text) < 1:
        raise DatasetError(f"{where}: number of CDs {cds_text!r} must be 1 or more")
    try:
        value = Decimal(value_text)
    except InvalidOperation:
        raise DatasetError(
            f"{where}: dollar value {value_text!r} is not a number"
        ) from None
    exponent = value.as_tuple().exponent
    if (
        not value.is_finite()
        or value < 0
        or (isinstance(exponent, int) and exponent < -2)
    ):
        raise DatasetError(
            f"{where}: dollar value {value_text!r} must be 0 or more with at most "
            "2 decimal places"
        )
    return Purchase(customer, day, int(cds_text), value, number)


def select_customers(
    purchases: Iterable[Purchase], customers: int | None = None
) -> list[Purchase]:
    """Sort purchases by customer and day, keeping the ``customers`` lowest ids.

    Rows of one customer on one day keep their file order. In the CDNOW
    master file the lowest ids are the first ones in the file.

    Raises:
        DatasetError: ``customers`` is less than 1.
    """
    rows = sorted(purchases, key=lambda p: (int(p.customer_id), p.day, p.line))
    if customers is None:
        return rows
    if customers < 1:
        raise DatasetError(f"customers: must be 1 or more, got {customers}")
    kept: set[str] = set()
    selected = []
    for purchase in rows:
        if purchase.customer_id not in kept:
            if len(kept) == customers:
                break
            kept.add(purchase.customer_id)
        selected.append(purchase)
    return selected


def to_orders(purchases: list[Purchase], stats: ConversionStats) -> Iterator[Order]:
    """Turn sorted purchases into orders, skipping and counting zero values.

    ``stats`` receives the counts of rows, customers and skipped rows once
    the iterator is exhausted.
    """
    ordered_customers: set[str] = set()
    seen_customers: set[str] = set()
    per_day: Counter[tuple[str, date]] = Counter()
    for purchase in purchases:
        stats.rows += 1
        seen_customers.add(purchase.customer_id)
        if purchase.value == 0:
            stats.zero_value_rows += 1
            continue
        key = (purchase.customer_id, purchase.day)
        index = per_day[key]
        per_day[key] += 1
        ordered_customers.add(purchase.customer_id)
        stats.orders += 1
        customer = customer_key(purchase.customer_id)
        placed_at = datetime.combine(purchase.day, ORDER_TIME, UTC)
        yield Order(
            customer_id=customer,
            order_id=f"{customer}-{purchase.day:%Y%m%d}-{index + 1}",
            placed_at=placed_at + timedelta(minutes=index),
            amount=purchase.value,
            currency=CURRENCY,
            source=SOURCE,
            lines=[
                {
                    "sku": "cd",
                    "category": "music",
                    "quantity": purchase.cds,
                    "amount": str(purchase.value),
                }
            ],
        )
    stats.customers = len(seen_customers)
    stats.customers_without_orders = len(seen_customers - ordered_customers)


def load_orders(
    *,
    customers: int | None = None,
    path: Path | None = None,
    stats: ConversionStats | None = None,
) -> list[Order]:
    """Read the master file and return its orders, grouped by customer.

    ``path`` defaults to the installed master file; ``stats`` receives the
    counts of rows, customers and skipped zero-value rows.
    """
    stats = stats if stats is not None else ConversionStats()
    rows = select_customers(read_purchases(path or locate_master_file()), customers)
    return list(to_orders(rows, stats))


def simulated_events(
    orders: Iterable[Order],
    *,
    seed: int = DEFAULT_SEED,
    stats: ConversionStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the orders with their simulated events, sorted by ``occurred_at``."""
    for event in simulate(orders, seed=seed, terms_days=TERMS_DAYS, end=END):
        if stats is not None:
            stats.events_by_type[str(event["type"])] += 1
        yield event


def events(
    *,
    seed: int = DEFAULT_SEED,
    customers: int | None = None,
    path: Path | None = None,
    stats: ConversionStats | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the events of the CDNOW data set, sorted by ``occurred_at``.

    The same seed, path and ``customers`` give the same events in the same
    order.
    """
    stats = stats if stats is not None else ConversionStats()
    orders = load_orders(customers=customers, path=path, stats=stats)
    yield from simulated_events(orders, seed=seed, stats=stats)


def convert(
    out: Path,
    *,
    seed: int = DEFAULT_SEED,
    customers: int | None = None,
    path: Path | None = None,
) -> ConversionStats:
    """Write the CDNOW events as JSONL to ``out``; return the counts.

    The file is written next to ``out`` under a temporary name and renamed
    into place, so a failed run leaves no partial file.
    """
    stats = ConversionStats()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        with partial.open("wb") as handle:
            for event in events(seed=seed, customers=customers, path=path, stats=stats):
                handle.write(orjson.dumps(event) + b"\n")
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return stats
