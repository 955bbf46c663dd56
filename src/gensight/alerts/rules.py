"""Alert rules: what a rule is, its validation, and rules files.

A rule watches one measure of the calls matching its filters over a window::

    {"name": "checkout spend", "measure": "cost_usd", "window": "1d",
     "filters": {"app": "checkout"}, "op": ">", "threshold": 50,
     "action": "notify", "webhook": "https://hooks.slack.com/…", "format": "slack"}

- ``measure``: one of ``vocab.ALERT_MEASURES`` (cost_usd, calls, errors, error_rate
  (0–1), latency_p95_ms, ttft_p95_ms, input_tokens, output_tokens); measured with the
  query layer's totals (the numbers of ``/api/stats/overview``, so an alert and the
  dashboard never disagree).
- ``window``: a duration (``5m``, ``1h``, ``1d``, ``30d``) ending now, or ``day`` /
  ``month``: the current UTC calendar day or month (budgets that reset at midnight or
  on the 1st).
- ``filters``: the call filters of ``/api/calls`` (``vocab.RULE_FILTERS``).
- ``action``: ``notify`` (default), or ``block``: a budget. Only for ``cost_usd`` with
  ``>``/``>=`` and an ``app`` and/or ``user`` filter (and no other): while the rule
  fires, the gateway refuses that app's/user's calls with a 429 ``budget_exceeded``.
- ``kind``: ``threshold`` (default, the above), or ``anomaly`` (#19): no ``threshold``;
  the window (``1h`` usually) is compared with the same window of the past ``weeks``
  (default 4) and fires when more than ``k`` (default 3) spreads above (``op`` ``>``) or
  below (``<``) their median, with at least ``min_calls`` calls in the window and a
  deviation of at least ``floor`` (see ``gensight.query.anomaly``).
- ``webhook`` (optional) and ``format``: ``json`` (the whole transition) or ``slack``
  (``{"text": …}``, also understood by Mattermost, Rocket.Chat and Teams workflows).

Rules come from ``POST /api/alert-rules`` and from ``gensight serve --alert-rules
FILE.toml`` (``[[rule]]`` tables, same fields; re-read at every start, identified by
``id`` or by name, so restarts replace rather than duplicate them).
"""

from __future__ import annotations

import math
import operator
import re
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gensight.alerts.webhooks import WebhookError, check_url
from gensight.model import vocab
from gensight.model.units import parse_duration
from gensight.model.vocab import BUDGET_FILTERS, CALENDAR_WINDOWS, one_of
from gensight.query import anomaly
from gensight.query.params import ParamError, call_filters
from gensight.store.base import CallFilters


def _reader(path: tuple[str, ...]) -> Callable[[dict[str, Any]], float | None]:
    def read(totals: dict[str, Any]) -> float | None:
        value: Any = totals
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None  # score_mean: measured only for the rules that ask for it
            value = value[key]
        return value

    return read


#: Measure name → how to read it from the query layer's totals.
MEASURES: dict[str, Callable[[dict[str, Any]], float | None]] = {
    name: _reader(path) for name, path in vocab.ALERT_MEASURES.items()
}
_OPERATORS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
OPS: dict[str, Callable[[float, float], bool]] = {op: _OPERATORS[op] for op in vocab.ALERT_OPS}
ACTIONS = vocab.ALERT_ACTIONS
FORMATS = vocab.ALERT_FORMATS
FILTER_KEYS = vocab.RULE_FILTERS
FIELDS = (
    "name",
    "measure",
    "window",
    "filters",
    "op",
    "threshold",
    "action",
    "webhook",
    "format",
    "score",
)
#: Fields of an anomaly rule (#19): shown and stored for ``kind = "anomaly"`` only.
ANOMALY_FIELDS = ("kind", "k", "weeks", "min_calls", "floor", "min_change")
KINDS = ("threshold", "anomaly")
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
    threshold: float | None
    filters: dict[str, str] = field(default_factory=dict)
    action: str = "notify"
    webhook: str | None = None
    format: str = "json"
    score: str | None = None  # the score name measure score_mean averages (#20)
    source: str = "api"  # "api" or "file"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: ``anomaly`` (#19): no threshold; the window against the same window of past weeks
    kind: str = "threshold"
    k: float = anomaly.DEFAULT_K
    weeks: int = anomaly.DEFAULT_WEEKS
    min_calls: int = anomaly.DEFAULT_MIN_CALLS
    floor: float | None = None  # None: the measure's default (anomaly.DEFAULT_FLOORS)
    min_change: float = anomaly.DEFAULT_MIN_CHANGE

    def definition(self) -> dict[str, Any]:
        """The rule as its author wrote it (what the store keeps)."""
        names = FIELDS + ANOMALY_FIELDS if self.kind == "anomaly" else FIELDS
        out = {name: getattr(self, name) for name in names}
        if self.kind == "anomaly":
            out["floor"] = self.floor_value
            del out["threshold"]
        return out

    @property
    def floor_value(self) -> float:
        return anomaly.DEFAULT_FLOORS[self.measure] if self.floor is None else self.floor

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
        if self.kind == "anomaly":
            text = (
                f"{self.measure} over {window} {'above' if self.op[0] == '>' else 'below'} its"
                f" usual for the hour of week by more than {fmt_value(self.k)}x the spread"
                f" (median and MAD of {self.weeks} weeks; at least {self.min_calls} calls,"
                f" {fmt_value(self.floor_value)} and {fmt_value(self.min_change * 100)}% off)"
            )
            return f"{text} for {where}" if where else text
        text = f"{self.measure} over {window} {self.op} {fmt_value(self.threshold)}"
        return f"{text} for {where}" if where else text


def fmt_value(value: float | None) -> str:
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
        if key not in FIELDS + ANOMALY_FIELDS and key not in READ_ONLY and key != "id":
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
        raise RuleError("measure", f"required: {one_of(list(MEASURES))}")

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
        raise RuleError("op", one_of(list(OPS)))

    kind = data.get("kind", "threshold")
    if kind not in KINDS:
        raise RuleError("kind", one_of(KINDS))
    if kind == "anomaly":
        extra = _anomaly_fields(data, measure, window)
        threshold = None
        if data.get("threshold") is not None:
            raise RuleError("threshold", "an anomaly rule has no threshold (its baseline is one)")
    else:
        for key in ANOMALY_FIELDS[1:]:
            if key in data:
                raise RuleError(key, 'only for kind "anomaly"')
        extra = {}
        threshold = _number(data, "threshold", required=True)
    score = data.get("score")
    if measure == "score_mean":
        if not isinstance(score, str) or not score.strip() or len(score) > 200:
            raise RuleError("score", "required with score_mean: the score's name (helpful)")
        score = score.strip()
    elif score is not None:
        raise RuleError("score", "only for measure score_mean")
    if measure == "error_rate" and threshold is not None and threshold > 1:
        raise RuleError("threshold", "error_rate is a ratio from 0 to 1 (0.05 is 5%)")

    filters = data.get("filters") or {}
    if not isinstance(filters, dict):
        raise RuleError("filters", "must be an object of call filters")
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            raise RuleError(f"filters.{key}", f"unknown filter; {one_of(FILTER_KEYS)}")
        if not isinstance(value, str) or not value:
            raise RuleError(f"filters.{key}", "must be a non-empty string")
    try:
        call_filters(**filters)
    except ParamError as e:
        raise RuleError(f"filters.{e.param}", str(e).partition(": ")[2]) from None

    action = data.get("action", "notify")
    if action not in ACTIONS:
        raise RuleError("action", one_of(ACTIONS))
    if action == "block":
        if measure != "cost_usd":
            raise RuleError("action", "block (a budget) is only for measure cost_usd")
        if op not in (">", ">="):
            raise RuleError("op", "a block rule refuses calls above its threshold: use > or >=")
        if not (set(BUDGET_FILTERS) & filters.keys()):
            raise RuleError("filters", "a block rule needs an app or user filter")
        for key in filters:
            if key not in BUDGET_FILTERS:
                raise RuleError(
                    f"filters.{key}", "a block rule filters only by app and user, as the gateway"
                )

    webhook = data.get("webhook")
    if webhook is not None:
        if not isinstance(webhook, str) or len(webhook) > 2048:
            raise RuleError("webhook", "must be an http(s) URL (at most 2048 characters) or null")
        try:  # the form; the address class is checked by the engine, which knows the flag
            check_url(webhook, allow_private=True)
        except WebhookError as e:
            raise RuleError("webhook", f"webhook {e}") from None
    fmt = data.get("format", "json")
    if fmt not in FORMATS:
        raise RuleError("format", one_of(FORMATS))

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
        score=score,
        source=source,
        kind=kind,
        **extra,
    )


def _number(data: dict[str, Any], key: str, required: bool = False) -> float | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RuleError(key, "required: a number" if required else "must be a number")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise RuleError(key, "must be a finite number, 0 or more")
    return value


def _anomaly_fields(data: dict[str, Any], measure: str, window: str) -> dict[str, Any]:
    """``k``, ``weeks``, ``min_calls`` and ``floor`` of an anomaly rule, checked."""
    if measure not in anomaly.MEASURES:
        raise RuleError("measure", f"an anomaly rule watches {one_of(anomaly.MEASURES)}")
    if window in CALENDAR_WINDOWS or parse_duration(window) > timedelta(days=1):
        raise RuleError("window", "an anomaly rule's window is a duration up to 1d (1h: an hour)")
    if data.get("op", ">") not in (">", "<"):
        raise RuleError("op", "an anomaly rule fires above (>) or below (<) its usual value")
    out: dict[str, Any] = {}
    k = _number(data, "k")
    if k is not None:
        if k <= 0 or k > 100:
            raise RuleError("k", "must be more than 0 and at most 100 (spreads; 3 is usual)")
        out["k"] = k
    for key, low, high in (("weeks", 2, 12), ("min_calls", 0, 10**9)):
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RuleError(key, f"must be a whole number from {low} to {high}")
        out[key] = value
    floor = _number(data, "floor")
    if floor is not None:
        out["floor"] = floor
    change = _number(data, "min_change")
    if change is not None:
        if change > 100:
            raise RuleError("min_change", "a ratio of the usual value (0.25 is 25%), at most 100")
        out["min_change"] = change
    return out


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


def rule_from_row(row: dict[str, Any]) -> Rule:
    created = datetime.fromisoformat(row["created_at"])
    rule = parse_rule(row["rule"], source=row["source"], rule_id=row["id"])
    return replace(rule, id=row["id"], created_at=created)
