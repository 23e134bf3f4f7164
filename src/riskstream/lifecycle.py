"""Alert lifecycle: one open alert per customer and signal kind.

An alert opens when a rule of its signal kind starts firing, or for the
``risk_level`` kind when the score level rises above ``low``. While it is
open, repeats only keep it open. A higher severity publishes an escalation
under the same ``alert_id``. Once none of its rules fire, the alert resolves
after ``clear_for_hours`` without a repeat (hysteresis), so a signal that
flaps around its threshold keeps one alert instead of raising many.

Operators act on open alerts through ``alert.action`` events: acknowledge,
snooze for a duration (escalations wait until the snooze ends, and the end
publishes a reminder while the alert is still open), or resolve. An alert an
operator resolved while its rules still fire stays closed until they stop
firing, or until its severity rises above the one it was closed at.

:class:`AlertBook` decides the transitions; the engine turns each into a
published update.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from riskstream.config import SEVERITY_ORDER, Rule
from riskstream.errors import RiskstreamError
from riskstream.events import AlertAction
from riskstream.playbook import RISK_LEVEL_KIND
from riskstream.state import CustomerState, OpenAlert, alert_id_for

STATUSES = (
    "opened",
    "escalated",
    "snooze_ended",
    "acknowledged",
    "snoozed",
    "resolved",
)
"""Values of an update's ``status``."""


@dataclass(slots=True)
class Update:
    """One transition of an open alert, to be published."""

    signal_kind: str
    alert: OpenAlert
    status: str
    rules: list[Rule] = field(default_factory=list)
    """The firing rules of the alert's kind; empty for a resolution."""
    acted_by: str | None = None


class ActionRejected(RiskstreamError):
    """An operator's action names no open alert of the customer, or cannot apply."""

    def __init__(self, rule: str, message: str, field: str = "alert_id") -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.field = field


def update_id_for(alert_id: str, sequence: int) -> str:
    """Derive the id of an alert's ``sequence``-th update."""
    return hashlib.sha256(f"{alert_id}|{sequence}".encode()).hexdigest()[:32]


class AlertBook:
    """Opens, escalates and resolves the alerts of a customer's state.

    Args:
        clear_for_s: seconds an alert's rules must stay silent before it
            resolves.
    """

    def __init__(self, clear_for_s: int) -> None:
        self.clear_for_s = clear_for_s

    def review(
        self, state: CustomerState, firing: list[Rule], level: str
    ) -> list[Update]:
        """Compare the open alerts with what fires now, at the state's clock."""
        now = state.clock_s
        if not firing and level == "low" and not state.open_alerts:
            return []
        by_kind: dict[str, list[Rule]] = {}
        for rule in firing:
            rules = by_kind.get(rule.signal_kind)
            if rules is None:
                by_kind[rule.signal_kind] = [rule]
            else:
                rules.append(rule)
        firing_kinds: dict[str, tuple[str, list[Rule]]] = {}
        for kind, rules in by_kind.items():
            severity: str = rules[0].severity
            for rule in rules:
                if SEVERITY_ORDER[rule.severity] > SEVERITY_ORDER[severity]:
                    severity = rule.severity
            firing_kinds[kind] = (severity, rules)
        if level != "low":
            firing_kinds[RISK_LEVEL_KIND] = (level, [])

        updates = []
        for kind, (severity, rules) in firing_kinds.items():
            update = self._firing(state, kind, severity, rules, now)
            if update is not None:
                updates.append(update)
        if not state.open_alerts:
            return updates
        for kind, alert in list(state.open_alerts.items()):
            if kind in firing_kinds:
                continue
            if alert.status == "closed":
                del state.open_alerts[kind]
                continue
            if alert.cleared_s is None:
                alert.cleared_s = now
            if now - alert.cleared_s >= self.clear_for_s:
                del state.open_alerts[kind]
                updates.append(Update(kind, alert, "resolved"))
            elif alert.status == "snoozed" and now >= (alert.snoozed_until_s or 0):
                # Nothing to remind of: the alert is waiting to resolve.
                alert.status, alert.snoozed_until_s = "open", None
        return updates

    def _firing(
        self,
        state: CustomerState,
        kind: str,
        severity: str,
        rules: list[Rule],
        now: int,
    ) -> Update | None:
        alert = state.open_alerts.get(kind)
        rank = SEVERITY_ORDER[severity]
        if alert is None or (
            alert.status == "closed" and rank > SEVERITY_ORDER[alert.severity]
        ):
            state.alerts_raised += 1
            number = state.alerts_raised
            alert = OpenAlert(
                alert_id_for(state.customer_id, kind, now, number),
                severity,
                now,
                number=number,
            )
            state.open_alerts[kind] = alert
            return Update(kind, alert, "opened", rules)
        alert.cleared_s = None
        if alert.status == "closed":
            return None
        escalated = rank > SEVERITY_ORDER[alert.severity]
        if escalated:
            alert.severity = severity
        if alert.status == "snoozed":
            if now < (alert.snoozed_until_s or 0):
                return None
            alert.status, alert.snoozed_until_s = "open", None
            return Update(kind, alert, "snooze_ended", rules)
        if not escalated:
            return None
        alert.status = "open"
        return Update(kind, alert, "escalated", rules)

    def act(self, state: CustomerState, action: AlertAction) -> Update:
        """Apply an operator's action to the open alert it names.

        Raises:
            ActionRejected: no open alert of the customer has that id, or an
                operator already resolved it.
        """
        found = next(
            (
                (kind, alert)
                for kind, alert in state.open_alerts.items()
                if alert.alert_id == action.alert_id
            ),
            None,
        )
        if found is None:
            raise ActionRejected(
                "unknown_alert",
                f"alert_id: {action.alert_id} is not an open alert of customer "
                f"{state.customer_id!r}; it may have resolved already, or the "
                "customer_id is wrong",
            )
        kind, alert = found
        acted_s = int(action.occurred_at.timestamp())
        if acted_s < alert.opened_s:
            opened = datetime.fromtimestamp(alert.opened_s, UTC).isoformat()
            raise ActionRejected(
                "action_before_alert",
                f"occurred_at: the action at {action.occurred_at.isoformat()} is "
                f"older than alert {action.alert_id}, which opened at {opened}; "
                "check the operator tool's clock",
                field="occurred_at",
            )
        if alert.status == "closed":
            raise ActionRejected(
                "alert_resolved",
                f"alert_id: {action.alert_id} was already resolved by {alert.acted_by}",
            )
        alert.acted_by = action.by
        if action.action == "acknowledge":
            alert.status, alert.snoozed_until_s = "acknowledged", None
            return Update(kind, alert, "acknowledged", acted_by=action.by)
        if action.action == "snooze":
            assert action.snooze_for is not None  # checked by the event model
            until = int((action.occurred_at + action.snooze_for).timestamp())
            alert.status, alert.snoozed_until_s = "snoozed", until
            return Update(kind, alert, "snoozed", acted_by=action.by)
        if alert.cleared_s is not None:
            # Its rules stopped firing already, so nothing keeps it.
            del state.open_alerts[kind]
        else:
            alert.status, alert.snoozed_until_s = "closed", None
        return Update(kind, alert, "resolved", acted_by=action.by)

    def next_due(self, state: CustomerState) -> int | None:
        """Return the next time an alert resolves or a snooze ends, or None."""
        clock = state.clock_s
        best: int | None = None
        for alert in state.open_alerts.values():
            for at in (
                None if alert.cleared_s is None else alert.cleared_s + self.clear_for_s,
                alert.snoozed_until_s,
            ):
                if at is not None and at > clock and (best is None or at < best):
                    best = at
        return best
