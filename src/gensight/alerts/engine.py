"""The alert engine: keeps the rules in the store, evaluates them on a schedule, records
and notifies transitions, and answers the gateway's budget question.

Rules are kept in the store, so every server on a shared store (ClickHouse replicas)
sees the same rules. Each server evaluates every rule every ``--alert-interval``
(default 30s), and budgets also within about a second of a matching call being stored.
A rule is ``ok`` or ``firing``; each transition is appended to the store's alert history
and, when the rule has a webhook, notified once (firing, then resolved). Because the last
transition is read back from the store, a restart does not notify again, and replicas on
one store mostly agree on who already notified (two replicas evaluating the same
transition in the same instant can both send it): only the holder of the ``alerts``
lease records and notifies. Evaluation and delivery never touch the ingest path.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from gensight.alerts.budget import Refusal, refusal, touches
from gensight.alerts.notify import Notifier, notification_body
from gensight.alerts.rules import MEASURES, OPS, Rule, RuleError, fmt_value, rule_from_row
from gensight.alerts.webhooks import WebhookError, check_url
from gensight.model.records import CallRecord, SpanRecord
from gensight.model.units import parse_duration
from gensight.query import anomaly, answers, forecast, quality

log = logging.getLogger("gensight.alerts.engine")


@dataclass
class RuleState:
    """What this server knows of one rule right now."""

    state: str = "ok"
    since: datetime | None = None  # the last transition (or the rule's creation)
    value: float | None = None
    evaluated_at: str | None = None
    error: str | None = None
    #: an anomaly rule's last verdict: usual, spread, deviation, bound (#19)
    verdict: dict[str, Any] | None = None


class AlertEngine:
    """Keeps the rules, evaluates them on a schedule, notifies transitions, and answers
    the gateway's budget question."""

    def __init__(
        self,
        store: Any,
        *,
        interval: float = 30.0,
        file_rules: Sequence[Rule] = (),
        notifier: Notifier | None = None,
        budget_delay: float = 1.0,
        allow_private_webhooks: bool = False,
    ) -> None:
        self.store = store
        self.interval = interval
        self.file_rules = list(file_rules)
        self.allow_private_webhooks = allow_private_webhooks
        self.notifier = notifier or Notifier(allow_private=allow_private_webhooks)
        self.budget_delay = budget_delay
        self._rules: dict[str, Rule] = {}
        self._states: dict[str, RuleState] = {}
        #: the block rules of the last evaluation; which of them refuse is read from
        #: ``_states`` at each call, so a rule refuses from the moment /api/alerts shows it
        #: firing
        self._budgets: tuple[Rule, ...] = ()
        self._wake = threading.Event()
        self._budget_wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one evaluation at a time
        #: who this server is among replicas sharing the store (see ``evaluate``)
        self.holder = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.leader = False
        self.evaluations = 0
        self.errors = 0
        self.last_error: str | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Store the file's rules, then evaluate now and every ``interval`` seconds."""
        for rule in self.file_rules:
            try:
                self.store.save_alert_rule(rule.id, rule.definition(), "file", rule.created_at)
            except Exception as e:  # the store may come back; the rules stay in memory
                self._note_error(f"could not store rule {rule.id}: {e}")
        self.notifier.start()
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="gensight-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.notifier.stop()

    def _run(self) -> None:
        next_full = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_full or self._wake.is_set():
                self._wake.clear()
                self._budget_wake.clear()
                next_full = now + self.interval
                self.evaluate()
            elif self._budget_wake.is_set():
                self._budget_wake.clear()
                self.evaluate(only_blocking=True)
                time.sleep(self.budget_delay)  # at most one budget-only pass a second
            wait = max(0.0, min(next_full - time.monotonic(), 0.2))
            self._wake.wait(wait)

    def wake(self) -> None:
        """Evaluate every rule now (after a rule is added or removed)."""
        self._wake.set()

    # -- rules -------------------------------------------------------------------------
    def _load_rules(self) -> dict[str, Rule]:
        rules: dict[str, Rule] = {}
        for row in self.store.alert_rules():
            try:
                rules[row["id"]] = rule_from_row(row)
            except (RuleError, ValueError, KeyError) as e:  # written by a newer version?
                log.warning("skipping stored alert rule %s: %s", row.get("id"), e)
        for rule in self.file_rules:  # the file's rules hold even while the store is away
            rules.setdefault(rule.id, rule)
        return rules

    def rules(self) -> list[Rule]:
        """Every rule, as stored (oldest first)."""
        rules = self._load_rules()
        self._rules = rules
        return list(rules.values())

    def get(self, rule_id: str) -> Rule | None:
        return self._load_rules().get(rule_id)

    def create(self, rule: Rule) -> Rule:
        """Store a rule (replacing one with its id) and evaluate it at once; ``RuleError``
        when its webhook points where webhooks may not go."""
        if rule.webhook:
            try:
                check_url(rule.webhook, self.allow_private_webhooks)
            except WebhookError as e:
                raise RuleError("webhook", f"webhook {e}") from None
        self.store.save_alert_rule(rule.id, rule.definition(), rule.source, rule.created_at)
        self.wake()
        return rule

    def delete(self, rule_id: str) -> bool:
        """Remove a rule; False when there is none with this id."""
        if rule_id not in self._load_rules():
            return False
        self.store.delete_alert_rule(rule_id)
        self.file_rules = [r for r in self.file_rules if r.id != rule_id]
        self._states.pop(rule_id, None)
        self._budgets = tuple(r for r in self._budgets if r.id != rule_id)
        self.wake()
        return True

    # -- evaluation --------------------------------------------------------------------
    def evaluate(self, only_blocking: bool = False, now: datetime | None = None) -> None:
        """Evaluate the rules once: measure, compare, record and notify transitions."""
        with self._lock:
            try:
                rules = self._load_rules()
                latest = self.store.latest_alert_events()
            except Exception as e:  # keep the last known states while the store is away
                self._note_error(f"could not read rules: {e}")
                return
            if not only_blocking:
                self._rules = rules
                for gone in set(self._states) - set(rules):
                    del self._states[gone]
            now = now or datetime.now(UTC)
            # Every server evaluates (each gateway enforces budgets itself); only the one
            # holding the lease records transitions and sends notifications.
            try:
                ttl = timedelta(seconds=max(3 * self.interval, 30.0))
                self.leader = self.store.hold_lease("alerts", self.holder, ttl)
            except Exception as e:
                self._note_error(f"could not renew the alerts lease: {e}")
                self.leader = False
            self._budgets = tuple(r for r in rules.values() if r.action == "block")
            for rule in rules.values():
                if only_blocking and rule.action != "block":
                    continue
                self._evaluate_rule(rule, latest.get(rule.id), now)
            self.evaluations += 1

    def _evaluate_rule(self, rule: Rule, last: dict[str, Any] | None, now: datetime) -> None:
        st = self._states.get(rule.id)
        if st is None:
            st = self._states[rule.id] = RuleState(since=rule.created_at)
        # Another server (or this one before a restart) may have recorded a transition.
        if last is not None:
            last_ts = datetime.fromisoformat(last["ts"])
            if last["state"] != st.state and (st.since is None or last_ts > st.since):
                st.state, st.since = last["state"], last_ts
        verdict = None
        try:
            filters = rule.call_filters(now)
            if rule.kind == "anomaly":
                verdict = anomaly.trailing(
                    self.store, filters, rule.measure, parse_duration(rule.window), now,
                    weeks=rule.weeks, k=rule.k, min_calls=rule.min_calls,
                    floor=rule.floor_value, min_change=rule.min_change, direction=rule.op,
                )  # fmt: skip
                value = verdict["value"]
            elif rule.measure == "forecast_month_usd":
                value = forecast.month_end(self.store, replace(filters, since=None), now)[
                    "forecast_usd"
                ]
            elif rule.measure == "score_mean":
                means = quality.score_totals(self.store, filters)
                value = means.get(rule.score or "", {}).get("mean")
            else:
                value = MEASURES[rule.measure](answers.totals(self.store, filters))
        except Exception as e:
            st.error = f"{type(e).__name__}: {e}"
            self._note_error(f"rule {rule.id}: {st.error}")
            return
        if value is not None and isinstance(value, float) and math.isnan(value):
            value = None  # a percentile of no calls
        st.value, st.error, st.verdict = value, None, verdict
        st.evaluated_at = now.isoformat()
        if verdict is not None:
            new = "firing" if verdict["anomalous"] else "ok"
        else:
            assert rule.threshold is not None
            new = "firing" if value is not None and OPS[rule.op](value, rule.threshold) else "ok"
        if new == st.state:
            return
        event = {
            "ts": now,
            "rule_id": rule.id,
            "name": rule.name,
            "state": new,
            "value": value,
            "threshold": verdict["bound"] if verdict is not None else rule.threshold,
            "detail": {"previous": st.state, "rule": rule.definition()},
        }
        if verdict is not None:
            event["detail"]["baseline"] = verdict
        st.state, st.since = new, now
        if not self.leader:
            return  # the leading server records it and notifies; we adopt it from the store
        try:
            self.store.add_alert_event({**event, "detail": orjson.dumps(event["detail"]).decode()})
        except Exception as e:  # notify anyway: the history is second to the message
            self._note_error(f"could not record the transition of {rule.id}: {e}")
        log.info("alert %r is %s (%s = %s)", rule.name, new, rule.measure, fmt_value(value))
        if rule.webhook:
            kind = "firing" if new == "firing" else "resolved"
            self.notifier.send(rule.id, rule.webhook, notification_body(rule, event), kind)

    def _note_error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        log.warning("alerts: %s", message)

    # -- answers -----------------------------------------------------------------------
    def states(self) -> list[dict[str, Any]]:
        """``/api/alerts``: every rule's state, value and last delivery."""
        try:
            rules = self._load_rules()
        except Exception:  # the store is away: the rules of the last evaluation
            rules = self._rules
        out = []
        for rule in rules.values():
            st = self._states.get(rule.id) or RuleState(since=rule.created_at)
            delivery = self.notifier.deliveries.get(rule.id)
            out.append(
                {
                    "rule_id": rule.id,
                    "name": rule.name,
                    "state": st.state,
                    "since": st.since.isoformat() if st.since else None,
                    "value": st.value,
                    "measure": rule.measure,
                    "op": rule.op,
                    "threshold": st.verdict["bound"] if st.verdict else rule.threshold,
                    "kind": rule.kind,
                    "window": rule.window,
                    "filters": rule.filters,
                    "action": rule.action,
                    "evaluated_at": st.evaluated_at,
                    "error": st.error,
                    "delivery": delivery.to_dict() if delivery else None,
                }
            )
        return out

    def history(self, rule_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Transitions, newest first."""
        return self.store.alert_events(rule_id, limit)

    def health(self) -> dict[str, Any]:
        """Counters for ``/api/health`` and ``/metrics``."""
        n = self.notifier
        return {
            "rules": len(self._rules),
            "leader": self.leader,
            "firing": sum(s.state == "firing" for s in self._states.values()),
            "evaluations": self.evaluations,
            "evaluation_errors": self.errors,
            "last_error": self.last_error,
            "notifications_sent": n.sent,
            "notifications_failed": n.failed,
            "notification_retries": n.retries,
            "notifications_dropped": n.dropped,
            "notifications_pending": n.pending(),
        }

    # -- budgets -----------------------------------------------------------------------
    def budget(self, app: str | None, user: str | None) -> Refusal | None:
        """The gateway's question for each call: is a budget of this app/user exceeded?"""
        firing = (r for r in self._budgets if self._state_of(r.id) == "firing")
        return refusal(firing, self._value, app, user)

    def _state_of(self, rule_id: str) -> str | None:
        st = self._states.get(rule_id)
        return st.state if st else None

    def _value(self, rule_id: str) -> float | None:
        st = self._states.get(rule_id)
        return st.value if st else None

    def observe(self, calls: Sequence[CallRecord], spans: Sequence[SpanRecord]) -> None:
        """Pipeline observer: a stored call that a budget covers brings its check forward."""
        blocks = [r for r in self._rules.values() if r.action == "block"]
        if blocks and touches(blocks, calls):
            self._budget_wake.set()
