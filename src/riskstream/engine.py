"""The transport-free core: apply one event or the passage of time to a state.

:class:`Engine` is deterministic: the same state, event and model give the same
new state and outputs, whichever driver calls it. Time comes only from event
times (``occurred_at``) and from the crossing times that :meth:`Engine.next_due`
computes, never from the wall clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from riskstream.config import ScoringConfig
from riskstream.crossings import CrossingSchedule
from riskstream.currency import to_minor
from riskstream.events import (
    AlertAction,
    ComplaintLogged,
    CreditReportReceived,
    CustomerUpdated,
    Event,
    FinancialsReported,
    InvoiceIssued,
    OrderCancelled,
    OrderPlaced,
    PaymentFailed,
    PaymentReceived,
)
from riskstream.features import model_inputs
from riskstream.history import (
    add_order_lines,
    apply_complaint,
    apply_credit_report,
    apply_financials,
    blend_days_to_pay,
    score_order,
)
from riskstream.lifecycle import ActionRejected, AlertBook, Update
from riskstream.model import LATE_DAYS, LatePaymentModel
from riskstream.scoring import Scorer
from riskstream.state import (
    DAY_S,
    MAX_OPEN_INVOICES,
    MAX_OPEN_ORDERS,
    MAX_UNAPPLIED,
    CustomerState,
    Invoice,
)

ADP_SMOOTHING = 0.3
"""Weight of the newest payment in the average days to pay (an EMA)."""
MAX_CROSSINGS = 10_000


@dataclass(slots=True, frozen=True)
class Rejection:
    """An event that is valid JSON but cannot be applied to the customer."""

    field: str
    rule: str
    message: str


@dataclass(slots=True)
class Outcome:
    """Outputs of one call to the engine."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    rescored: bool = False
    """The customer was evaluated, so its assessment is to be published."""
    rejection: Rejection | None = None
    duplicate: bool = False
    model_changed: bool = False
    """The partition's classifier or order anomaly detector learned."""
    next_due_s: int | None = None
    """After :meth:`Engine.advance`: the state's next crossing time."""

    def extend(self, other: Outcome) -> None:
        """Append the outputs of a later call."""
        self.alerts.extend(other.alerts)
        self.rescored = self.rescored or other.rescored
        self.model_changed = self.model_changed or other.model_changed


class Engine:
    """Scores customers with the configured rules and the late-payment model."""

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config
        self.crossings = CrossingSchedule(config)
        self.scorer = Scorer(config)
        self.alert_book = AlertBook(round(config.alerts.clear_for_hours * 3600))

    # -- events -----------------------------------------------------------

    def apply(
        self,
        state: CustomerState,
        event: Event,
        model: LatePaymentModel,
        at_s: int | None = None,
    ) -> Outcome:
        """Apply one validated event at its own time.

        ``at_s`` is the event's time in whole seconds, when the caller has it.
        The caller fires the customer's crossings up to the event's time first,
        with :meth:`advance`; :class:`~riskstream.runner.PartitionRunner` does
        that for every customer of a partition, and :meth:`step` does both.
        """
        rejection = self._check_currency(state, event)
        if rejection is not None:
            return Outcome(rejection=rejection)
        if state.seen(event.event_id):
            return Outcome(duplicate=True)

        if at_s is None:
            at_s = int(event.occurred_at.timestamp())
        if isinstance(event, AlertAction):
            return self._act(state, event, at_s, model)
        outcome = Outcome()
        applied = self._dispatch(state, event, at_s, model, outcome)
        if isinstance(applied, Rejection):
            # A corrected event may be sent again under the same id.
            state.forget(event.event_id)
            outcome.rejection = applied
            return outcome
        if not applied:
            outcome.duplicate = True
            return outcome

        state.clock_s = max(state.clock_s, at_s)
        state.compact()
        outcome.extend(self.evaluate(state, model, [event.event_id]))
        return outcome

    def _act(
        self,
        state: CustomerState,
        action: AlertAction,
        at_s: int,
        model: LatePaymentModel,
    ) -> Outcome:
        """Apply an operator's action to an open alert, then score the state."""
        try:
            update = self.alert_book.act(state, action)
        except ActionRejected as exc:
            state.forget(action.event_id)
            return Outcome(rejection=Rejection(exc.field, exc.rule, exc.message))
        state.clock_s = max(state.clock_s, at_s)
        return self.evaluate(state, model, [action.event_id], first=[update])

    def step(
        self, state: CustomerState, event: Event, model: LatePaymentModel
    ) -> Outcome:
        """Fire the customer's crossings up to the event, then apply it."""
        outcome = self.advance(state, int(event.occurred_at.timestamp()), model)
        applied = self.apply(state, event, model)
        outcome.extend(applied)
        outcome.rejection = applied.rejection
        outcome.duplicate = applied.duplicate
        return outcome

    def _dispatch(
        self,
        state: CustomerState,
        event: Event,
        at_s: int,
        model: LatePaymentModel,
        outcome: Outcome,
    ) -> bool | Rejection:
        """Change the state for one event; False means a repeated business id."""
        if isinstance(event, OrderPlaced):
            return self._order_placed(state, event, at_s, model, outcome)
        if isinstance(event, OrderCancelled):
            return self._order_cancelled(state, event)
        if isinstance(event, InvoiceIssued):
            return self._invoice_issued(state, event, at_s, model, outcome)
        if isinstance(event, PaymentReceived):
            return self._payment_received(state, event, at_s, model, outcome)
        if isinstance(event, PaymentFailed):
            bisect.insort(state.failed_days, at_s // DAY_S)
            return True
        if isinstance(event, CreditReportReceived):
            return apply_credit_report(state, event)
        if isinstance(event, FinancialsReported):
            return apply_financials(state, event)
        if isinstance(event, ComplaintLogged):
            return apply_complaint(state, event, at_s)
        assert isinstance(event, CustomerUpdated)
        return self._customer_updated(state, event)

    def _check_currency(self, state: CustomerState, event: Event) -> Rejection | None:
        currency = getattr(event, "currency", None)
        if currency is None or state.currency in (None, currency):
            return None
        if isinstance(event, CustomerUpdated) and not (
            state.invoices or state.open_orders or state.unapplied
        ):
            return None
        return Rejection(
            "currency",
            "customer_currency",
            f"currency: {currency} differs from the customer's currency "
            f"{state.currency}; riskstream keeps one currency per customer, so "
            "convert amounts in the ERP before publishing",
        )

    def _order_placed(
        self,
        state: CustomerState,
        event: OrderPlaced,
        at_s: int,
        model: LatePaymentModel,
        outcome: Outcome,
    ) -> bool | Rejection:
        if event.order_id in state.open_orders:
            return False
        if len(state.open_orders) >= MAX_OPEN_ORDERS:
            return Rejection(
                "order_id",
                "too_many_open_orders",
                f"order_id: customer {event.customer_id!r} already has "
                f"{MAX_OPEN_ORDERS} orders that are not invoiced or cancelled; "
                "publish their invoice.issued or order.cancelled events first",
            )
        state.currency = event.currency
        amount = to_minor(event.amount, event.currency)
        learned = model.order_detector.orders
        score_order(state, model.order_detector, amount, at_s)
        if model.order_detector.orders != learned:
            outcome.model_changed = True
        state.add_purchase(at_s, amount)
        if not state.take_invoiced_early(event.order_id):
            state.open_orders[event.order_id] = [amount, at_s]
        if event.lines:
            add_order_lines(state, event.lines, event.currency, at_s)
        if state.first_order_s is None or at_s < state.first_order_s:
            state.first_order_s = at_s
        if state.last_order_s is None or at_s >= state.last_order_s:
            if state.last_order_s is not None:
                state.gap_sum_days += (at_s - state.last_order_s) / DAY_S
            state.last_order_s = at_s
        state.orders_total += 1
        return True

    def _order_cancelled(
        self, state: CustomerState, event: OrderCancelled
    ) -> bool | Rejection:
        order = state.open_orders.pop(event.order_id, None)
        if order is None:
            return Rejection(
                "order_id",
                "unknown_order",
                f"order_id: {event.order_id!r} is not an open order of customer "
                f"{event.customer_id!r} (unknown, or already invoiced); cancel "
                "the invoice in the ERP instead",
            )
        amount, placed_s = order
        state.add_purchase(placed_s, -amount, count=-1)
        return True

    def _invoice_issued(
        self,
        state: CustomerState,
        event: InvoiceIssued,
        at_s: int,
        model: LatePaymentModel,
        outcome: Outcome,
    ) -> bool | Rejection:
        if event.invoice_id in state.invoices:
            return False
        if len(state.invoices) >= MAX_OPEN_INVOICES:
            return Rejection(
                "invoice_id",
                "too_many_open_invoices",
                f"invoice_id: customer {event.customer_id!r} already has "
                f"{MAX_OPEN_INVOICES} open invoices; publish their payments first",
            )
        state.currency = event.currency
        if event.order_id is not None:
            order = state.open_orders.pop(event.order_id, None)
            if order is None:
                # The order may still come, from a topic read later than this
                # one; it must not stay open once it arrives.
                state.invoiced_early(event.order_id)
        amount = to_minor(event.amount, event.currency)
        features = self._model_features(state, at_s, amount, event)
        probability = -1.0
        if model.updates >= self.config.model.min_updates:
            probability = round(model.predict(features), 6)
        invoice = Invoice(
            amount=amount,
            outstanding=amount,
            issued_s=at_s,
            due_s=int(event.due_at.timestamp()),
            event_id=event.event_id,
            probability=probability,
            features=features,
        )
        state.invoices[event.invoice_id] = invoice
        held = state.unapplied.pop(event.invoice_id, None)
        if held is not None:
            self._settle(state, event.invoice_id, held[0], held[1], model, outcome)
        return True

    def _model_features(
        self, state: CustomerState, at_s: int, amount: int, event: InvoiceIssued
    ) -> list[float]:
        signals = model_inputs(state, at_s)
        limit = state.credit_limit or 0
        terms = (int(event.due_at.timestamp()) - at_s) / DAY_S
        values = [
            amount / limit if limit else 0.0,
            signals["utilisation"] or 0.0,
            signals["late_payments_90d"] or 0.0,
            signals["late_payments_365d"] or 0.0,
            signals["failed_payments_90d"] or 0.0,
            signals["partial_payments_90d"] or 0.0,
            signals["days_past_due"] or 0.0,
            signals["avg_days_to_pay"] or 0.0,
            terms,
            signals["orders_90d"] or 0.0,
        ]
        return [round(value, 4) for value in values]

    def _payment_received(
        self,
        state: CustomerState,
        event: PaymentReceived,
        at_s: int,
        model: LatePaymentModel,
        outcome: Outcome,
    ) -> bool | Rejection:
        unknown = event.invoice_id not in state.invoices
        full = len(state.unapplied) >= MAX_UNAPPLIED
        if unknown and full and event.invoice_id not in state.unapplied:
            return Rejection(
                "invoice_id",
                "unknown_invoice",
                f"invoice_id: {event.invoice_id!r} is unknown and payments for "
                f"{MAX_UNAPPLIED} unknown invoices are already held; publish "
                "the invoice.issued events first",
            )
        if state.payment_seen(event.payment_id):
            return False
        amount = to_minor(event.amount, event.currency)
        if unknown:
            held = state.unapplied.setdefault(event.invoice_id, [0, at_s])
            held[0] += amount
            return True
        self._settle(state, event.invoice_id, amount, at_s, model, outcome)
        return True

    def _settle(
        self,
        state: CustomerState,
        invoice_id: str,
        amount: int,
        at_s: int,
        model: LatePaymentModel,
        outcome: Outcome,
    ) -> None:
        """Apply a payment to an invoice; a full payment closes it."""
        invoice = state.invoices[invoice_id]
        paid = min(amount, invoice.outstanding)
        state.credit += amount - paid
        invoice.outstanding -= paid
        day = at_s // DAY_S
        if invoice.outstanding > 0:
            invoice.partial = True
            bisect.insort(state.partial_days, day)
            return

        days_to_pay = max(0.0, (at_s - invoice.issued_s) / DAY_S)
        if state.avg_days_to_pay is None:
            state.avg_days_to_pay = round(days_to_pay, 3)
        else:
            blended = ADP_SMOOTHING * days_to_pay
            blended += (1 - ADP_SMOOTHING) * state.avg_days_to_pay
            state.avg_days_to_pay = round(blended, 3)
        blend_days_to_pay(state, days_to_pay)
        state.paid_count += 1
        if at_s > invoice.due_s:
            bisect.insort(state.late_days, day)
        if not invoice.labelled:
            late = at_s >= invoice.due_s + LATE_DAYS * DAY_S
            model.learn(invoice.features, late, invoice.probability)
            outcome.model_changed = True
        del state.invoices[invoice_id]

    def _customer_updated(self, state: CustomerState, event: CustomerUpdated) -> bool:
        state.currency = event.currency
        state.credit_limit = to_minor(event.credit_limit, event.currency)
        state.terms_days = event.payment_terms_days
        profile = {
            "name": event.name,
            "industry": event.industry,
            "region": event.region,
            "account_manager": event.account_manager,
        }
        state.profile = {key: value for key, value in profile.items() if value}
        return True

    # -- time -------------------------------------------------------------

    def next_due(self, state: CustomerState) -> int | None:
        """Return the next time after the state's clock at which a rule can change.

        That is the state's next crossing (:class:`CrossingSchedule`), or the
        moment an open alert resolves or its snooze ends, whichever is first.
        """
        best = self.crossings.next_due(state)
        at = self.alert_book.next_due(state)
        if at is not None and (best is None or at < best):
            best = at
        return best

    def advance(
        self,
        state: CustomerState,
        until_s: int,
        model: LatePaymentModel,
        due_s: int | None = None,
    ) -> Outcome:
        """Fire every crossing up to ``until_s``, each at its own time.

        ``due_s`` is the state's :meth:`next_due` when the caller knows it.
        The returned outcome's ``next_due_s`` is the first crossing left.
        """
        outcome = Outcome()
        due = self.next_due(state) if due_s is None else due_s
        for _ in range(MAX_CROSSINGS):
            if due is None or due > until_s:
                break
            state.clock_s = due
            triggers = self._label_overdue(state, model, outcome)
            state.compact()
            outcome.extend(self.evaluate(state, model, triggers))
            due = self.next_due(state)
        outcome.next_due_s = due
        return outcome

    def _label_overdue(
        self, state: CustomerState, model: LatePaymentModel, outcome: Outcome
    ) -> list[str]:
        """Label invoices that just reached 30 days overdue; return their events."""
        overdue_ids = []
        for invoice in state.invoices.values():
            if invoice.outstanding <= 0 or invoice.due_s >= state.clock_s:
                continue
            overdue_ids.append(invoice.event_id)
            late_at = invoice.due_s + LATE_DAYS * DAY_S
            if not invoice.labelled and state.clock_s >= late_at:
                model.learn(invoice.features, True, invoice.probability)
                invoice.labelled = True
                outcome.model_changed = True
        return overdue_ids

    # -- scoring ----------------------------------------------------------

    def evaluate(
        self,
        state: CustomerState,
        model: LatePaymentModel,
        event_ids: list[str],
        first: Sequence[Update] = (),
    ) -> Outcome:
        """Score the state at its clock and publish the alert updates it causes.

        ``first`` are updates an operator's action already made, published
        before the ones the new score causes. Every evaluation marks the
        assessment for publishing, so the latest assessment a driver
        publishes always describes the latest state, whatever its batch
        boundaries.
        """
        signals, firing, names, score, level, probability = self.scorer.score(state)

        previous = (state.score, state.level)
        state.score, state.level, state.firing = score, level, names
        updates = list(first) + self.alert_book.review(state, firing, level)

        outcome = Outcome(rescored=True)
        if updates:
            scorer = self.scorer
            reasons = scorer.reasons(firing, signals, probability, score)
            for update in updates:
                outcome.alerts.append(
                    scorer.alert_message(
                        state, update, reasons, previous, event_ids, model
                    )
                )
        return outcome

    def signals(self, state: CustomerState) -> dict[str, float | None]:
        """Compute the signals at the state's clock, money in major units."""
        return self.scorer.signals(state)

    def assessment(self, state: CustomerState) -> dict[str, Any]:
        """Describe the customer's latest score, for the ``risk.scores`` topic."""
        return self.scorer.assessment(state)
