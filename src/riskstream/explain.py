"""Explanations: a customer's current state, score, reasons and open alerts.

``riskstream explain`` prints one, from a replay of an events file or from a
worker's ``/customers/{customer_id}/`` HTTP endpoint, and both build it with
:func:`explain`, so the two show the same fields.
"""

from __future__ import annotations

from typing import Any

from riskstream.currency import from_minor
from riskstream.engine import Engine
from riskstream.model import LatePaymentModel
from riskstream.scoring import to_iso
from riskstream.state import DAY_S, CustomerState


def _money(amount: int | None, currency: str | None) -> str | None:
    if amount is None or currency is None:
        return None
    return str(from_minor(amount, currency))


def explain(
    engine: Engine, state: CustomerState, model: LatePaymentModel | None = None
) -> dict[str, Any]:
    """Describe a customer's state, score and open alerts at the state's clock.

    ``model`` is the customer's partition model, when the caller has it.
    """
    assessment = engine.assessment(state)
    clock, currency = state.clock_s, state.currency
    invoices = [
        {
            "invoice_id": invoice_id,
            "amount": _money(invoice.amount, currency),
            "outstanding": _money(invoice.outstanding, currency),
            "issued_at": to_iso(invoice.issued_s),
            "due_at": to_iso(invoice.due_s),
            "days_past_due": max(0, (clock - invoice.due_s) // DAY_S),
            "late_payment_probability": None
            if invoice.probability < 0
            else invoice.probability,
        }
        for invoice_id, invoice in sorted(
            state.invoices.items(), key=lambda item: item[1].due_s
        )
    ]
    alerts = [
        {
            "signal_kind": kind,
            "alert_id": alert.alert_id,
            "status": alert.status,
            "severity": alert.severity,
            "opened_at": to_iso(alert.opened_s),
            "updates": alert.sequence,
            "snoozed_until": None
            if alert.snoozed_until_s is None
            else to_iso(alert.snoozed_until_s),
            "rules_silent_since": None
            if alert.cleared_s is None
            else to_iso(alert.cleared_s),
            "acted_by": alert.acted_by,
        }
        for kind, alert in state.open_alerts.items()
    ]
    due = engine.next_due(state)
    return {
        "customer_id": state.customer_id,
        "partition": state.partition,
        "evaluated_at": to_iso(clock),
        "profile": state.profile,
        "currency": currency,
        "credit_limit": _money(state.credit_limit, currency),
        "payment_terms_days": state.terms_days,
        "risk_score": state.score,
        "level": state.level,
        "firing": list(state.firing),
        "reasons": assessment["reasons"],
        "signals": assessment["signals"],
        "outstanding": assessment["outstanding"],
        "open_invoices": invoices,
        "open_orders": len(state.open_orders),
        "held_payments": len(state.unapplied),
        "open_alerts": alerts,
        "next_check_at": None if due is None else to_iso(due),
        "model": None if model is None else model.describe(),
    }


def format_explanation(document: dict[str, Any]) -> list[str]:
    """Render an explanation as lines of text for a terminal."""
    name = document["profile"].get("name", "")
    lines = [
        f"customer {document['customer_id']} {name}".rstrip(),
        f"  evaluated at {document['evaluated_at']}, partition {document['partition']}",
        f"  score {document['risk_score']} ({document['level']}), outstanding "
        f"{document['outstanding']} {document['currency'] or ''}, credit limit "
        f"{document['credit_limit']}".rstrip(),
        "  reasons:",
    ]

    for reason in document["reasons"]:
        share = f"+{reason['contribution']} points"
        if reason["contribution"] != reason["points"]:
            share += f" ({reason['points']} before the cap of 100)"
        lines.append(
            f"    {reason['rule']}: {reason['signal']} {reason['value']} "
            f"{reason['op']} {reason['threshold']}, {share}"
        )
    if not document["reasons"]:
        lines.append("    none: no rule fires")

    lines.append("  open alerts:")
    for alert in document["open_alerts"]:
        extra = ""
        if alert["snoozed_until"]:
            extra = f", snoozed until {alert['snoozed_until']}"
        if alert["rules_silent_since"]:
            extra += f", rules silent since {alert['rules_silent_since']}"
        lines.append(
            f"    {alert['signal_kind']}: {alert['status']} {alert['severity']} "
            f"since {alert['opened_at']} (alert {alert['alert_id']}){extra}"
        )
    if not document["open_alerts"]:
        lines.append("    none")

    lines.append(f"  open invoices: {len(document['open_invoices'])}")
    for invoice in document["open_invoices"]:
        lines.append(
            f"    {invoice['invoice_id']}: {invoice['outstanding']} of "
            f"{invoice['amount']} due {invoice['due_at']}, "
            f"{invoice['days_past_due']} days past due"
        )

    lines.append(
        f"  open orders: {document['open_orders']}, payments held for unknown "
        f"invoices: {document['held_payments']}"
    )
    signals = ", ".join(
        f"{name} {value}" for name, value in document["signals"].items()
    )
    lines.append(f"  signals: {signals}")
    lines.append(f"  next time-driven check: {document['next_check_at'] or 'none'}")
    model = document["model"]
    if model is not None:
        quality = ", ".join(
            f"{name} {'not measured yet' if model[key] is None else model[key]}"
            for name, key in (
                ("ROC AUC", "roc_auc"),
                ("log loss", "log_loss"),
                ("mean error", "mean_error"),
            )
        )
        lines.append(
            f"  partition model: {model['name']} version {model['version']}, "
            f"{model['updates']} labels learned, {quality}, "
            f"{model['error_drifts']} error drifts detected"
        )
    return lines
