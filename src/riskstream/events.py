"""The event contract: one JSON object per Kafka message, keyed by ``customer_id``.

Every event carries ``event_id``, ``type``, ``customer_id`` and ``occurred_at``
(RFC 3339 with an offset). Amounts are JSON numbers or decimal strings and are
parsed exactly: the raw JSON is decoded by jiter in decimal mode, so no value
passes through a binary float. Each amount must fit the minor unit of its
ISO 4217 currency (two decimals for EUR, none for JPY).

:func:`parse_event` turns raw bytes into one of the models below or raises
:class:`~riskstream.errors.InvalidEvent` naming the field and the rule.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import jiter
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from riskstream.currency import minor_units
from riskstream.errors import InvalidEvent

TOPIC_ORDERS = "erp.orders"
TOPIC_PAYMENTS = "erp.payments"
TOPIC_CUSTOMERS = "erp.customers"
TOPIC_ALERT_ACTIONS = "risk.alert-actions"

Identifier = Annotated[str, Field(min_length=1, max_length=128)]
DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
"""A decimal string: digits, an optional point and fraction, an optional minus.
Exponents, underscores and spaces, which Python's Decimal accepts, are not."""
RFC3339_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
"""An RFC 3339 date and time; a missing offset is reported by its own rule."""
DURATION_TEXT = re.compile(
    r"P(?=[0-9T])([0-9]+W)?([0-9]+D)?(T(?=[0-9])([0-9]+H)?([0-9]+M)?([0-9]+S)?)?"
)
"""An ISO 8601 duration of weeks, days, hours, minutes and seconds."""
MAX_MINOR_UNITS = 10**12
"""The largest amount, in minor units of its currency, that an event may carry:
10,000,000,000.00 EUR. Sums of amounts in a customer's state must stay below
2**63 to be stored, so a single amount is bounded far below that."""


def _decimal_text(value: Any) -> Any:
    """Reject an amount string that is not plainly written digits."""
    if isinstance(value, str) and not DECIMAL_TEXT.fullmatch(value):
        raise PydanticCustomError(
            "decimal_string",
            "must be a decimal number such as 1250.00, written with digits "
            "and a point only",
        )
    if isinstance(value, bool):
        raise PydanticCustomError(
            "decimal_string", "must be a number, not true or false"
        )
    return value


class _DecimalTextSchema:
    """Give the string form of an amount its pattern in the JSON Schema."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        generated = handler.resolve_ref_schema(handler(schema))
        # pydantic leaves its own names of the bounds on the whole value,
        # which are no JSON Schema keywords, so they move to the number form.
        bounds = {
            keyword: generated.pop(name)
            for name, keyword in (("ge", "minimum"), ("gt", "exclusiveMinimum"))
            if name in generated
        }
        for branch in generated.get("anyOf", ()):
            if branch.get("type") == "string":
                branch["pattern"] = f"^{DECIMAL_TEXT.pattern}$"
            if branch.get("type") == "number":
                branch.update(bounds)
        # Not a JSON Schema keyword; the pattern and the description state it.
        generated.pop("max_digits", None)
        generated["description"] = "a decimal number, at most 24 digits"
        return generated


Money = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    Field(allow_inf_nan=False, max_digits=24),
    _DecimalTextSchema,
]
"""An exact amount; 24 digits keep minor-unit arithmetic inside Decimal's 28."""


def _require_text(value: Any) -> Any:
    """Reject a time given as a number or as anything but RFC 3339 text."""
    if isinstance(value, str) and RFC3339_TEXT.fullmatch(value):
        return value
    raise PydanticCustomError(
        "rfc3339_string",
        "must be an RFC 3339 string with a UTC offset such as 2026-01-05T09:00:00Z",
    )


def _require_duration(value: Any) -> Any:
    """Reject a duration that is not ISO 8601 text such as PT4H."""
    if value is None or (isinstance(value, str) and DURATION_TEXT.fullmatch(value)):
        return value
    raise PydanticCustomError(
        "iso8601_duration", "must be an ISO 8601 duration such as PT4H or P2D"
    )


EventTime = Annotated[AwareDatetime, BeforeValidator(_require_text)]
"""An RFC 3339 time with its UTC offset; epoch numbers are rejected."""


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
"""Event times outside [EARLIEST, LATEST) are rejected as implausible: one
such event would move its partition's event clock by centuries."""


def to_utc(value: datetime, field: str) -> datetime:
    """Convert an aware time to UTC, rejecting one outside the plausible range."""
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment < LATEST:
        raise PydanticCustomError(
            "out_of_range",
            f"{field}: {value.isoformat()} is outside {EARLIEST.year} to "
            f"{LATEST.year - 1}",
        )
    return moment


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    event_id: Identifier
    customer_id: Identifier
    occurred_at: EventTime
    source: str | None = Field(
        default=None,
        max_length=128,
        description="Producer of the event; simulated events start with simulated:",
    )

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return to_utc(value, "occurred_at")


class _Priced(_Event):
    amount: Money
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]

    @model_validator(mode="after")
    def _amount_fits_currency(self) -> _Priced:
        check_amount(self.amount, self.currency, "amount", positive=True)
        return self


class OrderLine(BaseModel):
    """One line of an order."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sku: Identifier
    category: Annotated[str, Field(min_length=1, max_length=64)]
    quantity: Annotated[int, Field(gt=0)]
    amount: Money


class OrderPlaced(_Priced):
    """A customer placed an order; ``amount`` is the order total."""

    type: Literal["order.placed"]
    order_id: Identifier
    lines: list[OrderLine] | None = None

    @model_validator(mode="after")
    def _lines_fit_currency(self) -> OrderPlaced:
        for index, line in enumerate(self.lines or ()):
            check_amount(line.amount, self.currency, f"lines.{index}.amount")
        return self


class OrderCancelled(_Event):
    """An order that is not yet invoiced was cancelled."""

    type: Literal["order.cancelled"]
    order_id: Identifier


class InvoiceIssued(_Priced):
    """An invoice was issued; ``order_id`` links it to the order it bills."""

    type: Literal["invoice.issued"]
    invoice_id: Identifier
    order_id: Identifier | None = None
    due_at: EventTime

    @field_validator("due_at")
    @classmethod
    def _due_to_utc(cls, value: datetime) -> datetime:
        return to_utc(value, "due_at")

    @model_validator(mode="after")
    def _due_after_issue(self) -> InvoiceIssued:
        if self.due_at < self.occurred_at:
            raise PydanticCustomError(
                "before_issue",
                f"due_at: {self.due_at.isoformat()} is before occurred_at "
                f"{self.occurred_at.isoformat()}; an invoice falls due after it "
                "is issued",
            )
        return self


class PaymentReceived(_Priced):
    """Money arrived for an invoice; less than the open amount is a partial one."""

    type: Literal["payment.received"]
    payment_id: Identifier
    invoice_id: Identifier


class PaymentFailed(_Priced):
    """A payment attempt was refused, bounced or lacked funds."""

    type: Literal["payment.failed"]
    payment_id: Identifier
    invoice_id: Identifier
    reason: Annotated[str, Field(min_length=1, max_length=64)]


class CustomerUpdated(_Event):
    """Master data of a customer, including the credit limit."""

    type: Literal["customer.updated"]
    name: Annotated[str, Field(min_length=1, max_length=256)]
    industry: str | None = Field(default=None, max_length=64)
    region: str | None = Field(default=None, max_length=64)
    account_manager: str | None = Field(default=None, max_length=128)
    credit_limit: Money
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    payment_terms_days: Annotated[int, Field(ge=0, le=365)]

    @model_validator(mode="after")
    def _limit_fits_currency(self) -> CustomerUpdated:
        check_amount(self.credit_limit, self.currency, "credit_limit")
        return self


class CreditReportReceived(_Event):
    """A credit bureau reported a score for the customer, 0 (worst) to 100."""

    type: Literal["credit_report.received"]
    bureau: Annotated[str, Field(min_length=1, max_length=64)]
    score: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
    rating: str | None = Field(default=None, max_length=16)


class FinancialsReported(_Event):
    """The customer's balance sheet and cash flow for one reporting period.

    Amounts are decimal numbers in any one currency: only their ratios are
    used, so the currency is not given.
    """

    type: Literal["financials.reported"]
    period_end: Annotated[date, Field(description="last day of the period")]
    total_assets: Annotated[Money, Field(gt=0)]
    total_liabilities: Annotated[Money, Field(ge=0)]
    current_assets: Annotated[Money, Field(ge=0)]
    current_liabilities: Annotated[Money, Field(ge=0)]
    operating_cash_flow: Money


class ComplaintLogged(_Event):
    """The customer complained, about a delivery, an invoice or the service."""

    type: Literal["complaint.logged"]
    severity: Literal["low", "medium", "high"]
    category: Annotated[str, Field(min_length=1, max_length=64)]


MAX_SNOOZE = timedelta(days=90)


class AlertAction(_Event):
    """An operator acknowledged, snoozed or resolved an open alert.

    ``customer_id`` is the alert's customer: it keys the message, so the
    action reaches the worker that owns the customer's alerts.
    """

    type: Literal["alert.action"]
    alert_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    action: Literal["acknowledge", "snooze", "resolve"]
    by: Identifier
    snooze_for: Annotated[timedelta | None, BeforeValidator(_require_duration)] = Field(
        default=None,
        description="How long a snooze lasts, as an ISO 8601 duration such as "
        "PT4H or P2D; required for snooze, at most 90 days",
    )
    note: str | None = Field(default=None, max_length=512)

    @model_validator(mode="after")
    def _snooze_has_duration(self) -> AlertAction:
        if self.action == "snooze":
            if self.snooze_for is None:
                raise PydanticCustomError(
                    "snooze_duration",
                    "snooze_for: required for a snooze, as an ISO 8601 duration "
                    "such as PT4H",
                )
            if not timedelta(0) < self.snooze_for <= MAX_SNOOZE:
                raise PydanticCustomError(
                    "snooze_duration",
                    f"snooze_for: must be more than 0 and at most "
                    f"{MAX_SNOOZE.days} days, got "
                    f"{self.snooze_for.total_seconds() / 86400:g} days",
                )
        elif self.snooze_for is not None:
            raise PydanticCustomError(
                "snooze_duration",
                f"snooze_for: only a snooze takes a duration, not {self.action}",
            )
        return self


Event = Annotated[
    OrderPlaced
    | OrderCancelled
    | InvoiceIssued
    | PaymentReceived
    | PaymentFailed
    | CustomerUpdated
    | CreditReportReceived
    | FinancialsReported
    | ComplaintLogged
    | AlertAction,
    Field(discriminator="type"),
]
CUSTOM_RULES = {
    "unknown_currency",
    "out_of_range",
    "too_many_decimals",
    "before_issue",
    "snooze_duration",
}
"""Rules of the validators here whose messages start with the field name."""
EVENT_TYPES: dict[str, type[BaseModel]] = {
    "order.placed": OrderPlaced,
    "order.cancelled": OrderCancelled,
    "invoice.issued": InvoiceIssued,
    "payment.received": PaymentReceived,
    "payment.failed": PaymentFailed,
    "customer.updated": CustomerUpdated,
    "credit_report.received": CreditReportReceived,
    "financials.reported": FinancialsReported,
    "complaint.logged": ComplaintLogged,
    "alert.action": AlertAction,
}
TOPIC_FOR_TYPE = {
    "order.placed": TOPIC_ORDERS,
    "order.cancelled": TOPIC_ORDERS,
    "invoice.issued": TOPIC_PAYMENTS,
    "payment.received": TOPIC_PAYMENTS,
    "payment.failed": TOPIC_PAYMENTS,
    "customer.updated": TOPIC_CUSTOMERS,
    "credit_report.received": TOPIC_CUSTOMERS,
    "financials.reported": TOPIC_CUSTOMERS,
    "complaint.logged": TOPIC_CUSTOMERS,
    "alert.action": TOPIC_ALERT_ACTIONS,
}
_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def check_amount(
    amount: Decimal, currency: str, field: str, *, positive: bool = False
) -> None:
    """Check that ``amount`` is finite, not negative and fits the currency.

    Raises:
        PydanticCustomError: naming ``field``; its type is the rule that failed.
    """
    places = minor_units(currency)
    if places is None:
        raise PydanticCustomError(
            "unknown_currency", f"currency: {currency!r} is not an ISO 4217 code"
        )
    if amount < 0 or (positive and amount == 0):
        rule = "greater than 0" if positive else "0 or more"
        raise PydanticCustomError(
            "out_of_range", f"{field}: must be {rule}, got {amount}"
        )
    if amount.scaleb(places) > MAX_MINOR_UNITS:
        largest = Decimal(MAX_MINOR_UNITS).scaleb(-places)
        raise PydanticCustomError(
            "out_of_range",
            f"{field}: must be at most {largest:,f} {currency}, got {amount}",
        )
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        # Trailing zeros do not count: 10.500 has one decimal place.
        exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise PydanticCustomError(
            "too_many_decimals",
            f"{field}: {currency} allows at most {places} decimal places, got {amount}",
        )


def parse_event(raw: bytes | None) -> Event:
    """Decode and validate one message value.

    Raises:
        InvalidEvent: the bytes are not JSON, the ``type`` is unknown, or a
            field is missing or breaks its rule; the message names the field.

    >>> parse_event(b'{"event_id": "e1", "type": "order.cancelled",'
    ...     b' "customer_id": "c1", "occurred_at": "2026-01-05T09:00:00+01:00",'
    ...     b' "order_id": "o1"}').occurred_at.isoformat()
    '2026-01-05T08:00:00+00:00'
    """
    if not isinstance(raw, bytes):
        raise InvalidEvent(
            "body", "tombstone", "body: the message has no value (a tombstone)"
        )
    try:
        document = jiter.from_json(raw, float_mode="decimal")
    except ValueError as exc:
        raise InvalidEvent(
            "body", "invalid_json", f"body: not valid JSON ({exc})"
        ) from None
    if not isinstance(document, dict):
        raise InvalidEvent(
            "body",
            "not_an_object",
            f"body: must be a JSON object, got {type(document).__name__}",
        )
    kind = document.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        known = ", ".join(sorted(EVENT_TYPES))
        raise InvalidEvent(
            "type", "unknown_type", f"type: {str(kind)[:80]!r} is not one of {known}"
        )
    try:
        return _adapter.validate_python(document)
    except ValidationError as exc:
        raise _describe(exc) from None


def route(raw: bytes) -> tuple[str, bytes | None]:
    """Pick the topic and key of one raw event as an ERP would.

    Lines whose ``type`` is unknown or that are not JSON go to the orders
    topic, so that the worker dead-letters them with the reason.

    >>> route(b'{"type": "payment.failed", "customer_id": "c9"}')
    ('erp.payments', b'c9')
    """
    try:
        document = jiter.from_json(raw, float_mode="decimal")
    except ValueError:
        return TOPIC_ORDERS, None
    if not isinstance(document, dict):
        return TOPIC_ORDERS, None
    customer = document.get("customer_id")
    key = customer.encode() if isinstance(customer, str) else None
    return TOPIC_FOR_TYPE.get(str(document.get("type")), TOPIC_ORDERS), key


def event_time(raw: bytes) -> float | None:
    """Return the ``occurred_at`` of a raw event in epoch seconds, or None.

    Used only to order messages; validation happens in :func:`parse_event`.

    >>> event_time(b'{"occurred_at": "1970-01-01T00:01:00+00:00"}')
    60.0
    >>> event_time(b'{"occurred_at": "1970-01-01T00:01:00"}') is None
    True
    """
    try:
        document = jiter.from_json(raw, float_mode="decimal")
        text = document["occurred_at"]
        moment = datetime.fromisoformat(text)
    except (ValueError, TypeError, KeyError):
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def _describe(exc: ValidationError) -> InvalidEvent:
    first = exc.errors(include_url=False)[0]
    location = [str(part) for part in first["loc"][1:]] or ["body"]
    field = ".".join(location)
    message = str(first["msg"])
    if first["type"] == "value_error":
        # Our own validators already start the message with the field name.
        message = message.removeprefix("Value error, ")
        field = message.split(":", 1)[0]
        return InvalidEvent(field, "invalid_value", message)
    rule = str(first["type"])
    message_text = str(first["msg"])
    if rule in CUSTOM_RULES:
        return InvalidEvent(message_text.split(":", 1)[0], rule, message_text)
    if rule == "timezone_aware":
        message = "must be RFC 3339 with a UTC offset such as +00:00 or Z"
    value: Any = first.get("input")
    shown = "" if rule == "missing" else f" (got {str(value)[:80]!r})"
    return InvalidEvent(field, rule, f"{field}: {message}{shown}")
