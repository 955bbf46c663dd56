"""Budgets: alert rules with ``"action": "block"`` that the gateway enforces.

While such a rule fires, the gateway refuses calls of the rule's app and/or user with a
429 ``budget_exceeded``; the engine evaluates budgets again within about a second of a
call they cover being stored (``touches``), not only every ``--alert-interval``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gensight.alerts.rules import Rule, fmt_value
from gensight.model.records import CallRecord


@dataclass(frozen=True)
class Refusal:
    """A budget refusing a gateway call: the rule and the message the client gets."""

    rule_id: str
    message: str


def refusal(
    firing: Iterable[Rule],
    value_of: Callable[[str], float | None],
    app: str | None,
    user: str | None,
) -> Refusal | None:
    """The refusal of the first firing budget covering this app and user, if any."""
    for rule in firing:
        if rule.applies_to(app, user):
            value = fmt_value(value_of(rule.id))
            return Refusal(
                rule.id,
                f"Budget exceeded: rule {rule.name!r} ({rule.describe()}) stands at {value}."
                " Gensight refuses these calls until the rule resolves.",
            )
    return None


def touches(rules: Iterable[Rule], calls: Sequence[CallRecord]) -> bool:
    """Whether a priced call of these stored calls is one a budget covers."""
    rules = list(rules)
    for call in calls:
        if call.cost_usd and any(r.applies_to(call.app, call.user) for r in rules):
            return True
    return False
