"""The transport-free core: apply one event or the passage of time to a state.

:class:`Engine` is deterministic: the same state, event and model give the same
new state and outputs, whichever driver calls it. Time comes only from event
times (``occurred_at``) and from the crossing times that :meth:`Engine.next_due`
computes, never from the wall clock.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from riskstream.config import SEVERITY_ORDER, Rule, ScoringConfig
from riskstream.crossings import (
    COUNT_WINDOWS,
    checks_for,
    count_flip,
    count_limits,
    ratio_flip,
    threshold_offsets,
)
from riskstream.currency import from_minor, minor_units, to_minor
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
from riskstream.features import (
    AGEING_OFFSETS_DAYS,
    AMOUNT,
    ANOMALY_WINDOW_DAYS,
    ORDERS,
    compute_signals,
    expected_purchases,
    model_inputs,
    next_baseline_change,
)
from riskstream.history import (
    add_order_lines,
    apply_complaint,
    apply_credit_report,
    apply_financials,
    blend_days_to_pay,
    score_order,
)
from riskstream.lifecycle import ActionRejected, AlertBook, Update, update_id_for
from riskstream.model import LATE_DAYS, MODEL_NAME, MODEL_VERSION, LatePaymentModel
from riskstream.playbook import RISK_LEVEL_KIND
from riskstream.scoring import apportion
from riskstream.state import (
    DAY_S,
    MAX_OPEN_INVOICES,
    MAX_OPEN_ORDERS,
    MAX_UNAPPLIED,
    RECENT_DAYS,
    CustomerState,
    Invoice,
)

ADP_SMOOTHING = 0.3
"""Weight of the newest payment in the average days to pay (an EMA)."""
MAX_CROSSINGS = 10_000
NEVER = 2**62
LATE_S = LATE_DAYS * DAY_S
MONEY_SIGNALS = (
    "overdue_amount",
    "exposure",
    "volume_30d",
    "volume_90d",
    "overdue_1_30d",
    "overdue_31_60d",
    "overdue_61_90d",
    "overdue_over_90d",
)
AGEING_SIGNALS = (
    "overdue_1_30d",
    "overdue_31_60d",
    "overdue_61_90d",
    "overdue_over_90d",
)
MODEL_SIGNAL_KIND = "late_payment_model"
"""The signal kind of the model's entry in an alert's reasons."""


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


def to_iso(at_s: int) -> str:
    """Format epoch seconds as RFC 3339 UTC.

    >>> to_iso(86400)
    '1970-01-02T00:00:00Z'
    """
    return datetime.fromtimestamp(at_s, UTC).isoformat().replace("+00:00", "Z")


class Engine:
    """Scores customers with the configured rules and the late-payment model."""

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config
        # Crossing offsets in seconds, ascending, so the first one after the
        # clock is the next of its group.
        self._due_offsets = threshold_offsets(config.thresholds_for("days_past_due"))
        self._since_offsets = threshold_offsets(
            config.thresholds_for("days_since_last_order")
        )
        self._gap_ratios = sorted(config.thresholds_for("gap_ratio"))
        # Only crossings that can change a rule's outcome are scheduled. The
        # others would only refresh the published signals.
        read = {rule.signal for rule in config.rules}
        if "overdue_amount" in read:
            self._due_offsets = sorted({1, *self._due_offsets})
        # Each ageing bucket changes when an invoice enters or leaves it.
        bucket_edges = [1, *(days * DAY_S for days in AGEING_OFFSETS_DAYS), None]
        for index, name in enumerate(AGEING_SIGNALS):
            if name in read:
                edges = {bucket_edges[index], bucket_edges[index + 1]} - {None}
                self._due_offsets = sorted({*edges, *self._due_offsets})
        self._count_checks = [
            (attr, window, count_limits(checks_for(config, signal)))
            for signal, (attr, window) in COUNT_WINDOWS.items()
            if signal in read
        ]
        self._window_30 = bool(read & {"volume_30d", "orders_30d"})
        self._window_90 = bool(read & {"volume_90d", "orders_90d"})
        # The anomaly signal ends 30 days after the order, which changes only
        # rules that fire on it.
        self._anomaly_checks = checks_for(config, "order_anomaly")
        self._industry_weights = dict(config.profile_weights.industry)
        self._region_weights = dict(config.profile_weights.region)
        self._ratio_checks = checks_for(config, "volume_ratio_90d")
        self._frequency_checks = checks_for(config, "order_frequency_ratio")
        self._money_read = [name for name in MONEY_SIGNALS if name in read]
        self._checks = [
            (rule, rule.signal, rule.op == ">=", rule.threshold)
            for rule in config.rules
        ]
        self._scales: dict[str | None, int] = {}
        levels = config.levels
        self._level_floors = (levels.medium, levels.high, levels.critical)
        self._model_threshold = config.model.threshold
        self._model_points = config.model.points
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
            return Outcome(rejection=Rejection("alert_id", exc.rule, exc.message))
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
            state.open_orders.pop(event.order_id, None)
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
        """Return the next time after the state's clock at which a signal changes.

        A crossing is a time at which a rule's outcome can change without a
        new event. An invoice reaches a days-past-due threshold, or the
        expected order does not arrive. A count of late, partial or failed
        payments, or the purchase volume, passes a threshold as days leave
        its window. The purchase baseline moves on by a block. The model's
        30-day label is a crossing too. Signals that no rule reads change
        between crossings without one.
        """
        clock = state.clock_s
        best = NEVER
        for invoice in state.invoices.values():
            if invoice.outstanding > 0:
                due = invoice.due_s
                for offset in self._due_offsets:
                    at = due + offset
                    if at > clock:
                        best = min(best, at)
                        break
                if not invoice.labelled:
                    at = due + LATE_S
                    if clock < at < best:
                        best = at
        last = state.last_order_s
        if last is not None:
            for offset in self._since_offsets:
                at = last + offset
                if at > clock:
                    best = min(best, at)
                    break
            if state.orders_total >= 3 and self._gap_ratios:
                mean_gap = max(1.0, state.gap_sum_days / (state.orders_total - 1))
                for ratio in self._gap_ratios:
                    at = last + math.ceil(ratio * mean_gap * DAY_S)
                    # The evaluation computes the ratio in floating point, so
                    # the crossing is the first second at which the rule fires.
                    while (at - last) / DAY_S / mean_gap < ratio:
                        at += 1
                    if at > clock:
                        best = min(best, at)
                        break
        today = clock // DAY_S
        for attr, window, limits in self._count_checks:
            days = getattr(state, attr)
            if not days:
                continue
            at = count_flip(days, today - window, limits)
            if at is not None:
                at = (at + window) * DAY_S
                if clock < at < best:
                    best = at
        if self._window_30:
            for bucket in state.days:
                if bucket[0] > today - 30:
                    at = (bucket[0] + 30) * DAY_S
                    if clock < at < best:
                        best = at
                    break
        if (
            self._anomaly_checks
            and state.last_order_s is not None
            and _fires_any(self._anomaly_checks, state.order_anomaly)
        ):
            at = state.last_order_s + ANOMALY_WINDOW_DAYS * DAY_S
            if clock < at < best:
                best = at
        if self._window_90 and state.days:
            at = (state.days[0][0] + RECENT_DAYS) * DAY_S
            if clock < at < best:
                best = at
        if (
            self._ratio_checks or self._frequency_checks
        ) and state.first_order_s is not None:
            at = next_baseline_change(today) * DAY_S
            if at < best:
                best = at
            orders, volume = expected_purchases(state, today)
            for checks, expected, column in (
                (self._ratio_checks, volume, AMOUNT),
                (self._frequency_checks, orders, ORDERS),
            ):
                day = None
                if checks:
                    day = ratio_flip(state, today, checks, expected, column)
                if day is not None:
                    at = (day + RECENT_DAYS) * DAY_S
                    if clock < at < best:
                        best = at
        at = self.alert_book.next_due(state)
        if at is not None and at < best:
            best = at
        return None if best == NEVER else best

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
        signals = compute_signals(state, state.clock_s)
        signals["profile_weight"] = self._profile_weight(state)
        scale = self._scale(state.currency)
        for name in self._money_read:
            value = signals[name]
            if value is not None:
                signals[name] = value / scale
        firing = []
        names = []
        score = 0
        for rule, signal, at_least, threshold in self._checks:
            value = signals[signal]
            if value is not None and (
                value >= threshold if at_least else value <= threshold
            ):
                firing.append(rule)
                names.append(rule.name)
                score += rule.points
        probability = _model_probability(state)
        if probability >= self._model_threshold:
            score += self._model_points * probability
        score = round(min(100.0, score), 1)
        level = self._level_for(score)

        previous = (state.score, state.level)
        state.score, state.level, state.firing = score, level, names
        updates = list(first) + self.alert_book.review(state, firing, level)

        outcome = Outcome(rescored=True)
        if updates:
            reasons = self.reasons(firing, signals, probability, score)
            for update in updates:
                outcome.alerts.append(
                    self._alert(state, update, reasons, previous, event_ids, model)
                )
        return outcome

    def _profile_weight(self, state: CustomerState) -> float:
        """Return the industry weight times the region weight of the customer.

        A name missing from a table weighs 1. The tables are copied to plain
        dicts, because this runs at every evaluation.
        """
        profile = state.profile
        if not profile:
            return 1.0
        industry = self._industry_weights.get(profile.get("industry", ""), 1.0)
        region = self._region_weights.get(profile.get("region", ""), 1.0)
        return round(industry * region, 4)

    def _scale(self, currency: str | None) -> int:
        """Return how many minor units make one major unit of ``currency``."""
        scale = self._scales.get(currency)
        if scale is None:
            scale = self._scales[currency] = 10 ** (minor_units(currency or "EUR") or 0)
        return scale

    def _level_for(self, score: float) -> str:
        """Map a score to its level, as :meth:`Levels.level_for` does."""
        medium, high, critical = self._level_floors
        if score >= critical:
            return "critical"
        if score >= high:
            return "high"
        if score >= medium:
            return "medium"
        return "low"

    def signals(self, state: CustomerState) -> dict[str, float | None]:
        """Compute the signals at the state's clock, money in major units."""
        signals = compute_signals(state, state.clock_s)
        signals["profile_weight"] = self._profile_weight(state)
        scale = self._scale(state.currency)
        for name in MONEY_SIGNALS:
            value = signals[name]
            if value is not None:
                signals[name] = value / scale
        return signals

    def reasons(
        self,
        firing: list[Rule],
        signals: dict[str, float | None],
        probability: float,
        score: float,
    ) -> list[dict[str, Any]]:
        """Explain a score: each firing rule and the model, with its share.

        ``points`` is what a reason adds before the cap of 100, and
        ``contribution`` its share of ``score``; the contributions add up to
        the score exactly.
        """
        reasons = [_reason(rule, signals[rule.signal]) for rule in firing]
        points = [rule.points for rule in firing]
        if probability >= self._model_threshold:
            points.append(self._model_points * probability)
            reasons.append(
                {
                    "rule": "model_late_payment",
                    "signal": "late_payment_probability",
                    "signal_kind": MODEL_SIGNAL_KIND,
                    "severity": self.config.model.severity,
                    "value": round(probability, 4),
                    "op": ">=",
                    "threshold": self._model_threshold,
                    "points": round(points[-1], 2),
                }
            )
        for reason, share in zip(reasons, apportion(points, score), strict=True):
            reason["contribution"] = share
        return reasons

    def _alert(
        self,
        state: CustomerState,
        update: Update,
        reasons: list[dict[str, Any]],
        previous: tuple[float, str],
        event_ids: list[str],
        model: LatePaymentModel,
    ) -> dict[str, Any]:
        """Build the message of one alert update for ``risk.alerts``."""
        alert, kind = update.alert, update.signal_kind
        playbook = self.config.playbook
        leading = sorted(
            update.rules,
            key=lambda rule: (SEVERITY_ORDER[rule.severity], rule.points),
            reverse=True,
        )
        if update.status in ("opened", "escalated", "snooze_ended"):
            plays = [playbook.play(rule.signal_kind, rule.severity) for rule in leading]
            if kind == RISK_LEVEL_KIND:
                plays.append(playbook.play(kind, alert.severity))
        else:
            plays = []
        actions: list[str] = []
        for play in plays:
            actions.extend(a for a in play.actions if a not in actions)
        owner = (plays[0] if plays else playbook.play(kind, alert.severity)).owner
        alert.sequence += 1
        return {
            "alert_id": alert.alert_id,
            "update_id": update_id_for(alert.alert_id, alert.sequence),
            "sequence": alert.sequence,
            "status": update.status,
            "signal_kind": kind,
            "customer_id": state.customer_id,
            "raised_at": to_iso(state.clock_s),
            "opened_at": to_iso(alert.opened_s),
            "kind": "level_raised" if kind == RISK_LEVEL_KIND else "rule_fired",
            "severity": alert.severity,
            "risk_score": state.score,
            "previous_score": previous[0],
            "level": state.level,
            "previous_level": previous[1],
            "rules_fired": [rule.name for rule in update.rules],
            "reasons": reasons,
            "recommended_actions": actions,
            "owner": owner,
            "acted_by": update.acted_by,
            "event_ids": event_ids,
            "model": {
                "name": MODEL_NAME,
                "version": MODEL_VERSION,
                "updates": model.updates,
            },
        }

    def assessment(self, state: CustomerState) -> dict[str, Any]:
        """Describe the customer's latest score, for the ``risk.scores`` topic."""
        signals = self.signals(state)
        firing = [r for r in self.config.rules if r.name in state.firing]
        reasons = self.reasons(firing, signals, _model_probability(state), state.score)
        currency = state.currency
        owed = sum(invoice.outstanding for invoice in state.invoices.values())
        return {
            "customer_id": state.customer_id,
            "assessed_at": to_iso(state.clock_s),
            "risk_score": state.score,
            "level": state.level,
            "firing": list(state.firing),
            "reasons": reasons,
            "currency": currency,
            "outstanding": str(from_minor(owed, currency)) if currency else "0",
            "open_invoices": len(state.invoices),
            "signals": {
                key: None if value is None else round(value, 4)
                for key, value in signals.items()
            },
        }


def _fires_any(checks: list[tuple[bool, float]], value: float | None) -> bool:
    """Tell whether any of the rule comparisons fires on ``value``."""
    if value is None:
        return False
    return any(
        value >= limit if at_least else value <= limit for at_least, limit in checks
    )


def _model_probability(state: CustomerState) -> float:
    """Return the highest late-payment probability of an open invoice, or -1."""
    highest = -1.0
    for invoice in state.invoices.values():
        if invoice.outstanding > 0 and invoice.probability > highest:
            highest = invoice.probability
    return highest


def _reason(rule: Rule, value: float | None) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "signal": rule.signal,
        "signal_kind": rule.signal_kind,
        "severity": rule.severity,
        "value": None if value is None else round(value, 4),
        "op": rule.op,
        "threshold": rule.threshold,
        "points": rule.points,
    }
