"""The alert rules', alert events' and leases' SQL, for every backend (the alert
engine's state: ``gensight.alerts``; a lease names the one replica that evaluates)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gensight.store.dialect import Dialect, Query
from gensight.store.sql import _cols

# -- alert rules and their history ---------------------------------------------------
ALERT_EVENT_COLUMNS = ["ts", "rule_id", "name", "state", "value", "threshold", "detail"]


def alert_rules(d: Dialect) -> Query:
    """Every stored alert rule, oldest first."""
    q = Query(d)
    q.sql = "SELECT id, created_at, source, rule FROM alert_rules ORDER BY created_at, id"
    return q


def delete_alert_rule(d: Dialect, rule_id: str) -> Query:
    q = Query(d)
    q.sql = f"DELETE FROM alert_rules WHERE id = {d.param(q, rule_id)}"
    return q


def insert_alert_rule(
    d: Dialect, rule_id: str, created_at: datetime, source: str, rule: str
) -> Query:
    q = Query(d)
    values = [d.param(q, rule_id), d.param_ts(q, created_at), d.param(q, source), d.param(q, rule)]
    q.sql = f"INSERT INTO alert_rules (id, created_at, source, rule) VALUES ({', '.join(values)})"
    return q


def insert_alert_event(d: Dialect, event: dict[str, Any]) -> Query:
    """One state transition of a rule (the history ``/api/alerts/history`` shows)."""
    q = Query(d)
    values = [
        d.param_ts(q, event["ts"]) if name == "ts" else d.param(q, event[name])
        for name in ALERT_EVENT_COLUMNS
    ]
    q.sql = f"INSERT INTO alert_events ({_cols(ALERT_EVENT_COLUMNS)}) VALUES ({', '.join(values)})"
    return q


def alert_events(d: Dialect, rule_id: str | None, limit: int) -> Query:
    """Transitions, newest first (of one rule, or of all)."""
    q = Query(d)
    w = f"rule_id = {d.param(q, rule_id)}" if rule_id else "1 = 1"
    q.sql = (
        f"SELECT {_cols(ALERT_EVENT_COLUMNS)} FROM alert_events WHERE {w}"
        f" ORDER BY ts DESC, rule_id LIMIT {int(limit)}"
    )
    return q


def latest_alert_events(d: Dialect) -> Query:
    """Each rule's last transition: its current state as every replica sees it."""
    q = Query(d)
    cols = _cols(ALERT_EVENT_COLUMNS, "e")
    q.sql = (
        f"SELECT {cols} FROM alert_events e JOIN (SELECT rule_id AS rid, max(ts) AS mts"
        " FROM alert_events GROUP BY rule_id) m ON e.rule_id = m.rid AND e.ts = m.mts"
    )
    return q


def current_lease(d: Dialect, name: str, now: datetime) -> Query:
    """The unexpired claim on a lease that wins: the latest expiry, then the lowest holder
    (every replica reading the same rows agrees on it)."""
    q = Query(d)
    q.sql = (
        f"SELECT holder, expires_at FROM leases WHERE name = {d.param(q, name)}"
        f" AND expires_at > {d.param_ts(q, now)} ORDER BY expires_at DESC, holder LIMIT 1"
    )
    return q


def claim_lease(d: Dialect, name: str, holder: str, expires_at: datetime) -> Query:
    q = Query(d)
    q.sql = (
        "INSERT INTO leases (name, holder, expires_at) VALUES"
        f" ({d.param(q, name)}, {d.param(q, holder)}, {d.param_ts(q, expires_at)})"
    )
    return q


def prune_leases(d: Dialect, before: datetime) -> Query:
    q = Query(d)
    q.sql = f"DELETE FROM leases WHERE expires_at < {d.param_ts(q, before)}"
    return q
