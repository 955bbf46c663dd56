"""Alerts: rules (``rules``), their evaluation (``engine``), webhooks (``notify``) and
budgets the gateway enforces (``budget``)."""

from gensight.alerts.budget import Refusal
from gensight.alerts.engine import AlertEngine, RuleState
from gensight.alerts.notify import Delivery, Notifier, notification_body
from gensight.alerts.rules import (
    ACTIONS,
    FILTER_KEYS,
    FORMATS,
    MEASURES,
    OPS,
    Rule,
    RuleError,
    load_rules_file,
    parse_rule,
)

__all__ = [
    "ACTIONS",
    "FILTER_KEYS",
    "FORMATS",
    "MEASURES",
    "OPS",
    "AlertEngine",
    "Delivery",
    "Notifier",
    "Refusal",
    "Rule",
    "RuleError",
    "RuleState",
    "load_rules_file",
    "notification_body",
    "parse_rule",
]
