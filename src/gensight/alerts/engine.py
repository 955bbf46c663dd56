"""Alert rules, their evaluation on a schedule, webhook notifications, and budgets.

A rule watches one measure of the calls matching its filters over a window::

    {"name": "checkout spend", "measure": "cost_usd", "window": "1d",
     "filters": {"app": "checkout"}, "op": ">", "threshold": 50,
     "action": "notify", "webhook": "https://hooks.slack.com/…", "format": "slack"}

- ``measure``: cost_usd, calls, errors, error_rate (0–1), latency_p95_ms, ttft_p95_ms,
  input_tokens, output_tokens; measured with the store's overview totals (the same SQL
  as ``/api/stats/overview``, so an alert and the dashboard never disagree).
- ``window``: a duration (``5m``, ``1h``, ``1d``, ``30d``) ending now, or ``day`` /
  ``month``: the current UTC calendar day or month (budgets that reset at midnight or
  on the 1st).
- ``filters``: app, model, provider, user, session, error_class, status, environment,
  operation, source (the call filters of ``/api/calls``).
- ``action``: ``notify`` (default), or ``block``: a budget. Only for ``cost_usd`` with
  ``>``/``>=`` and an ``app`` and/or ``user`` filter (and no other): while the rule
  fires, the gateway refuses that app's/user's calls with a 429 ``budget_exceeded``.
- ``webhook`` (optional) and ``format``: ``json`` (the whole transition) or ``slack``
  (``{"text": …}``, also understood by Mattermost, Rocket.Chat and Teams workflows).

Rules come from ``POST /api/alert-rules`` and from ``gensight serve --alert-rules
FILE.toml`` (``[[rule]]`` tables, same fields; re-read at every start, identified by
``id`` or by name, so restarts replace rather than duplicate them). They are kept in the
store, so every server on a shared store (ClickHouse replicas) sees the same rules.

Each server evaluates every rule every ``--alert-interval`` (default 30s), and budgets
also within about a second of a matching call being stored. A rule is ``ok`` or
``firing``; each transition is appended to the store's alert history and, when the rule
has a webhook, notified once (firing, then resolved). Because the last transition is
read back from the store, a restart does not notify again, and replicas on one store
mostly agree on who already notified (two replicas evaluating the same transition in
the same instant can both send it). Deliveries run on their own thread, are retried with
exponential backoff, and their failures show in ``/api/alerts`` and ``/api/health``;
evaluation and delivery never touch the ingest path.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import operator
import os
import re
import socket
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from gensight.model.records import CallRecord, SpanRecord
from gensight.pipeline.worker import Worker
from gensight.query.params import ParamError, call_filters, parse_duration
from gensight.store.base import CallFilters

log = logging.getLogger("gensight.alerts.engine")

#: Measure name → how to read it from the store's totals.
MEASURES: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "cost_usd": lambda t: t["cost_usd"],
    "calls": lambda t: t["calls"],
    "errors": lambda t: t["errors"],
    "error_rate": lambda t: t["error_rate"],
    "latency_p95_ms": lambda t: t["latency_ms"]["p95"],
    "ttft_p95_ms": lambda t: t["ttft_ms"]["p95"],
    "input_tokens": lambda t: t["input_tokens"],
    "output_tokens": lambda t: t["output_tokens"],
}
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
ACTIONS = ("notify", "block")
FORMATS = ("json", "slack")
FILTER_KEYS = (
    "app", "model", "provider", "user", "session", "error_class", "status",
    "environment", "operation", "source",
)  # fmt: skip
CALENDAR_WINDOWS = ("day", "month")
FIELDS = ("name", "measure", "window", "filters", "op", "threshold", "action", "webhook", "format")
#: Fields a rule read from the API carries and a client may send back unchanged.
READ_ONLY = ("created_at", "source")
MAX_WINDOW = timedelta(days=400)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class RuleError(ValueError):
    """A bad rule definition; ``field`` names the offending field (``filters.app``…)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"invalid rule field {field_name!r}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class Rule:
    """One validated alert rule."""

    id: str
    name: str
    measure: str
    window: str
    op: str
    threshold: float
    filters: dict[str, str] = field(default_factory=dict)
    action: str = "notify"
    webhook: str | None = None
    format: str = "json"
    source: str = "api"  # "api" or "file"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def definition(self) -> dict[str, Any]:
        """The rule as its author wrote it (what the store keeps)."""
        return {name: getattr(self, name) for name in FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """The rule as the API shows it."""
        return {
            "id": self.id,
            **self.definition(),
            "source": self.source,
            "created_at": self.created_at.isoformat(),
        }

    def window_range(self, now: datetime) -> tuple[datetime, datetime]:
        """``(since, until)`` of the window ending ``now``."""
        if self.window == "day":
            return now.replace(hour=0, minute=0, second=0, microsecond=0), now
        if self.window == "month":
            return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), now
        return now - parse_duration(self.window), now

    def call_filters(self, now: datetime) -> CallFilters:
        """The call filters of one evaluation."""
        since, until = self.window_range(now)
        return replace(call_filters(**self.filters), since=since, until=until)

    def applies_to(self, app: str | None, user: str | None) -> bool:
        """Whether a block rule covers a gateway call of this app and user."""
        want_app, want_user = self.filters.get("app"), self.filters.get("user")
        return (want_app is None or want_app == app) and (want_user is None or want_user == user)

    def describe(self) -> str:
        """``cost_usd over 1d > 50 for app=checkout``."""
        where = ", ".join(f"{k}={v}" for k, v in self.filters.items())
        window = f"this {self.window} (UTC)" if self.window in CALENDAR_WINDOWS else self.window
        text = f"{self.measure} over {window} {self.op} {_num(self.threshold)}"
        return f"{text} for {where}" if where else text


def _num(value: float | None) -> str:
    if value is None:
        return "no data"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6g}"


def parse_rule(data: Any, *, source: str = "api", rule_id: str | None = None) -> Rule:
    """Validate a rule definition (a JSON object or TOML table); RuleError names a bad field."""
    if not isinstance(data, dict):
        raise RuleError("rule", "must be a JSON object")
    for key in data:
        if key not in FIELDS and key not in READ_ONLY and key != "id":
            raise RuleError(key, f"unknown field; a rule has {', '.join(FIELDS)}")
    given_id = data.get("id")
    if given_id is not None and (not isinstance(given_id, str) or not _ID.match(given_id)):
        raise RuleError("id", "must be 1-64 letters, digits, '_', '.' or '-'")

    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RuleError("name", "required: a non-empty string")
    if len(name) > 200:
        raise RuleError("name", "at most 200 characters")

    measure = data.get("measure")
    if measure not in MEASURES:
        raise RuleError("measure", f"required: one of {', '.join(MEASURES)}")

    window = data.get("window", "5m")
    if not isinstance(window, str):
        raise RuleError("window", "must be a string like 5m, 1h, 1d, or day / month")
    window = window.strip()
    if window not in CALENDAR_WINDOWS:
        try:
            span = parse_duration(window)
        except ValueError as e:
            raise RuleError("window", f"{e}, or day / month") from None
        if span < timedelta(seconds=1) or span > MAX_WINDOW:
            raise RuleError("window", "must be between 1s and 400d")

    op = data.get("op", ">")
    if op not in OPS:
        raise RuleError("op", f"must be one of {', '.join(OPS)}")

    threshold = data.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise RuleError("threshold", "required: a number")
    threshold = float(threshold)
    if not math.isfinite(threshold) or threshold < 0:
        raise RuleError("threshold", "must be a finite number, 0 or more")
    if measure == "error_rate" and threshold > 1:
        raise RuleError("threshold", "error_rate is a ratio from 0 to 1 (0.05 is 5%)")

    filters = data.get("filters") or {}
    if not isinstance(filters, dict):
        raise RuleError("filters", "must be an object of call filters")
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            raise RuleError(f"filters.{key}", f"unknown filter; one of {', '.join(FILTER_KEYS)}")
        if not isinstance(value, str) or not value:
            raise RuleError(f"filters.{key}", "must be a non-empty string")
    try:
        call_filters(**filters)
    except ParamError as e:
        raise RuleError(f"filters.{e.param}", str(e).partition(": ")[2]) from None

    action = data.get("action", "notify")
    if action not in ACTIONS:
        raise RuleError("action", f"must be one of {', '.join(ACTIONS)}")
    if action == "block":
        if measure != "cost_usd":
            raise RuleError("action", "block (a budget) is only for measure cost_usd")
        if op not in (">", ">="):
            raise RuleError("op", "a block rule refuses calls above its threshold: use > or >=")
        if not ({"app", "user"} & filters.keys()):
            raise RuleError("filters", "a block rule needs an app or user filter")
        for key in filters:
            if key not in ("app", "user"):
                raise RuleError(
                    f"filters.{key}", "a block rule filters only by app and user, as the gateway"
                )

    webhook = data.get("webhook")
    if webhook is not None and (
        not isinstance(webhook, str) or not re.match(r"^https?://[^/\s]+", webhook)
    ):
        raise RuleError("webhook", "must be an http(s) URL or null")
    fmt = data.get("format", "json")
    if fmt not in FORMATS:
        raise RuleError("format", f"must be one of {', '.join(FORMATS)}")

    return Rule(
        id=given_id or rule_id or uuid.uuid4().hex[:16],
        name=name.strip(),
        measure=measure,
        window=window,
        op=op,
        threshold=threshold,
        filters=dict(filters),
        action=action,
        webhook=webhook,
        format=fmt,
        source=source,
    )


def load_rules_file(path: Path) -> list[Rule]:
    """Rules of a TOML file (``[[rule]]`` tables); ValueError naming the rule and field."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: {e}") from None
    tables = data.get("rule", data.get("rules", []))
    if not isinstance(tables, list):
        raise ValueError(f"{path}: write rules as [[rule]] tables")
    rules: list[Rule] = []
    for n, table in enumerate(tables, start=1):
        slug = re.sub(r"[^a-z0-9]+", "-", str(table.get("name", "")).lower()).strip("-")
        try:
            rule = parse_rule(table, source="file", rule_id=f"file-{slug[:50] or n}")
        except RuleError as e:
            raise ValueError(f"{path}: rule {n} ({table.get('name', '?')!r}): {e}") from None
        rules.append(rule)
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: two rules share an id (give them distinct names or ids)")
    return rules


def _rule_from_row(row: dict[str, Any]) -> Rule:
    created = datetime.fromisoformat(row["created_at"])
    rule = parse_rule(row["rule"], source=row["source"], rule_id=row["id"])
    return replace(rule, id=row["id"], created_at=created)


# -- notifications ---------------------------------------------------------------------


@dataclass
class Delivery:
    """How the last notification of a rule went."""

    event: str  # "firing" | "resolved"
    status: str = "pending"  # pending | retrying | delivered | failed | dropped
    attempts: int = 0
    last_error: str | None = None
    at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "at": self.at,
        }


@dataclass(order=True)
class _Job:
    due: float
    seq: int
    rule_id: str = field(compare=False)
    url: str = field(compare=False)
    body: bytes = field(compare=False)
    delivery: Delivery = field(compare=False)


class Notifier(Worker):
    """Delivers webhook bodies on its own thread; retries with exponential backoff.

    A failed attempt (connection error, timeout, 408, 429, 5xx) is tried again after
    ``backoff``, doubling up to 60 s, ``attempts`` times in all; other answers fail
    at once. Jobs wait in a time-ordered heap, so one slow webhook delays no other.
    """

    def __init__(
        self,
        *,
        attempts: int = 6,
        backoff: float = 1.0,
        timeout: float = 5.0,
        max_pending: int = 1000,
    ) -> None:
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.max_pending = max_pending
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        super().__init__()
        self.deliveries: dict[str, Delivery] = {}
        self.sent = 0
        self.failed = 0
        self.retries = 0
        self.dropped = 0

    thread_name = "gensight-notify"

    def send(self, rule_id: str, url: str, body: bytes, event: str) -> None:
        """Queue one notification (never blocks; counted as dropped when the queue is full)."""
        delivery = Delivery(event)
        self.deliveries[rule_id] = delivery
        with self._cond:
            if len(self._heap) >= self.max_pending:
                delivery.status = "dropped"
                self.dropped += 1
                return
            heapq.heappush(
                self._heap, _Job(time.monotonic(), next(self._seq), rule_id, url, body, delivery)
            )
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            while True:
                with self._cond:
                    while not self._stopping and (
                        not self._heap or self._heap[0].due > time.monotonic()
                    ):
                        wait = self._heap[0].due - time.monotonic() if self._heap else None
                        self._cond.wait(wait)
                    if self._stopping:
                        return
                    job = heapq.heappop(self._heap)
                self._attempt(client, job)

    def _attempt(self, client: httpx.Client, job: _Job) -> None:
        d = job.delivery
        d.attempts += 1
        error: str | None = None
        retry = False
        try:
            resp = client.post(
                job.url,
                content=job.body,
                headers={"content-type": "application/json", "user-agent": "gensight-alerts"},
            )
            if resp.status_code < 300:
                d.status, d.last_error = "delivered", None
                d.at = datetime.now(UTC).isoformat()
                self.sent += 1
                return
            error = f"HTTP {resp.status_code}: {resp.text[:200]}"
            retry = resp.status_code in (408, 429) or resp.status_code >= 500
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
            retry = True
        d.last_error = error
        d.at = datetime.now(UTC).isoformat()
        if retry and d.attempts < self.attempts:
            d.status = "retrying"
            self.retries += 1
            delay = min(self.backoff * 2 ** (d.attempts - 1), 60.0)
            job.due = time.monotonic() + delay
            with self._cond:
                heapq.heappush(self._heap, job)
            return
        d.status = "failed"
        self.failed += 1
        log.warning(
            "alert webhook for rule %s failed after %d attempts: %s", job.rule_id, d.attempts, error
        )


def notification_body(rule: Rule, event: dict[str, Any]) -> bytes:
    """The webhook body of one transition, in the rule's format."""
    firing = event["state"] == "firing"
    head = "[FIRING]" if firing else "[RESOLVED]"
    text = (
        f"{head} {rule.name}: {rule.measure} = {_num(event['value'])}"
        f" ({'rule' if firing else 'was'}: {rule.describe()})"
    )
    if rule.action == "block":
        who = ", ".join(f"{k} {v}" for k, v in rule.filters.items())
        text += (
            f". The gateway refuses calls of {who}."
            if firing
            else f". Calls of {who} are allowed again."
        )
    if rule.format == "slack":
        return orjson.dumps({"text": text})
    return orjson.dumps(
        {
            "rule_id": rule.id,
            "name": rule.name,
            "event": "firing" if firing else "resolved",
            "state": event["state"],
            "previous": event["detail"].get("previous"),
            "value": event["value"],
            "measure": rule.measure,
            "op": rule.op,
            "threshold": rule.threshold,
            "window": rule.window,
            "filters": rule.filters,
            "action": rule.action,
            "since": event["ts"].isoformat(),
            "text": text,
        }
    )


# -- evaluation ------------------------------------------------------------------------


@dataclass
class RuleState:
    """What this server knows of one rule right now."""

    state: str = "ok"
    since: datetime | None = None  # the last transition (or the rule's creation)
    value: float | None = None
    evaluated_at: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Refusal:
    """A budget refusing a gateway call: the rule and the message the client gets."""

    rule_id: str
    message: str


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
    ) -> None:
        self.store = store
        self.interval = interval
        self.file_rules = list(file_rules)
        self.notifier = notifier or Notifier()
        self.budget_delay = budget_delay
        self._rules: dict[str, Rule] = {}
        self._states: dict[str, RuleState] = {}
        self._blocking: tuple[Rule, ...] = ()
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
                rules[row["id"]] = _rule_from_row(row)
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
        """Store a rule (replacing one with its id) and evaluate it at once."""
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
        self._blocking = tuple(r for r in self._blocking if r.id != rule_id)
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
            for rule in rules.values():
                if only_blocking and rule.action != "block":
                    continue
                self._evaluate_rule(rule, latest.get(rule.id), now)
            self._blocking = tuple(
                r
                for r in rules.values()
                if r.action == "block" and self._states.get(r.id, RuleState()).state == "firing"
            )
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
        try:
            value = MEASURES[rule.measure](self.store.totals(rule.call_filters(now)))
        except Exception as e:
            st.error = f"{type(e).__name__}: {e}"
            self._note_error(f"rule {rule.id}: {st.error}")
            return
        if value is not None and isinstance(value, float) and math.isnan(value):
            value = None  # a percentile of no calls
        st.value, st.error = value, None
        st.evaluated_at = now.isoformat()
        new = "firing" if value is not None and OPS[rule.op](value, rule.threshold) else "ok"
        if new == st.state:
            return
        event = {
            "ts": now,
            "rule_id": rule.id,
            "name": rule.name,
            "state": new,
            "value": value,
            "threshold": rule.threshold,
            "detail": {"previous": st.state, "rule": rule.definition()},
        }
        st.state, st.since = new, now
        if not self.leader:
            return  # the leading server records it and notifies; we adopt it from the store
        try:
            self.store.add_alert_event({**event, "detail": orjson.dumps(event["detail"]).decode()})
        except Exception as e:  # notify anyway: the history is second to the message
            self._note_error(f"could not record the transition of {rule.id}: {e}")
        log.info("alert %r is %s (%s = %s)", rule.name, new, rule.measure, _num(value))
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
                    "threshold": rule.threshold,
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
        for rule in self._blocking:
            if rule.applies_to(app, user):
                st = self._states.get(rule.id)
                value = _num(st.value if st else None)
                return Refusal(
                    rule.id,
                    f"Budget exceeded: rule {rule.name!r} ({rule.describe()}) stands at {value}."
                    " Gensight refuses these calls until the rule resolves.",
                )
        return None

    def observe(self, calls: Sequence[CallRecord], spans: Sequence[SpanRecord]) -> None:
        """Pipeline observer: a stored call that a budget covers brings its check forward."""
        blocks = [r for r in self._rules.values() if r.action == "block"]
        if blocks and _touches(blocks, calls):
            self._budget_wake.set()


def _touches(rules: Iterable[Rule], calls: Sequence[CallRecord]) -> bool:
    for call in calls:
        if call.cost_usd and any(r.applies_to(call.app, call.user) for r in rules):
            return True
    return False
