"""The risk score: rules and the model's points, reasons and alert messages.

:class:`Scorer` turns a customer's state into signals, firing rules, a score
and a level, and builds the explanations that alerts and assessments carry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from riskstream.config import SEVERITY_ORDER, Rule, ScoringConfig
from riskstream.currency import from_minor, minor_units
from riskstream.features import compute_signals
from riskstream.lifecycle import Update, update_id_for
from riskstream.model import MODEL_NAME, MODEL_VERSION, LatePaymentModel
from riskstream.playbook import RISK_LEVEL_KIND
from riskstream.state import CustomerState

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
MODEL_SIGNAL_KIND = "late_payment_model"
"""The signal kind of the model's entry in an alert's reasons."""


def to_iso(at_s: int) -> str:
    """Format epoch seconds as RFC 3339 UTC.

    >>> to_iso(86400)
    '1970-01-02T00:00:00Z'
    """
    return datetime.fromtimestamp(at_s, UTC).isoformat().replace("+00:00", "Z")


def apportion(points: Sequence[float], total: float) -> list[float]:
    """Split ``total`` over ``points`` in proportion, in tenths that add up exactly.

    The score is capped at 100 and rounded to a tenth, so the points of its
    reasons can add up to more than the score. Each reason's share is its
    points scaled to the score, rounded by the largest remainder method, so
    the shares add up to ``total`` to the tenth. Equal remainders go to the
    earlier reason.

    >>> apportion([25, 30, 10], 65.0)
    [25.0, 30.0, 10.0]
    >>> apportion([60, 60, 30], 100.0)
    [40.0, 40.0, 20.0]
    >>> apportion([1, 1, 1], 1.0)
    [0.4, 0.3, 0.3]
    >>> apportion([], 0.0)
    []
    """
    available = sum(points)
    if available <= 0:
        return [0.0] * len(points)
    tenths = round(total * 10)
    exact = [value * tenths / available for value in points]
    shares = [math.floor(value) for value in exact]
    left = tenths - sum(shares)
    by_remainder = sorted(
        range(len(points)), key=lambda index: shares[index] - exact[index]
    )
    for index in by_remainder[:left]:
        shares[index] += 1
    return [share / 10 for share in shares]


class Scorer:
    """Scores states with the configured rules and the late-payment model."""

    def __init__(self, config: ScoringConfig) -> None:
        self.config = config
        read = {rule.signal for rule in config.rules}
        self._industry_weights = dict(config.profile_weights.industry)
        self._region_weights = dict(config.profile_weights.region)
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

    def score(
        self, state: CustomerState
    ) -> tuple[dict[str, float | None], list[Rule], list[str], float, str, float]:
        """Score the state at its clock.

        Returns the signals (money in major units), the firing rules and
        their names, the score, the level and the model's probability.
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
        score: float = 0
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
        return signals, firing, names, score, level, probability

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

    def alert_message(
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
