"""Scores (#20) as users send them: validation that names the bad field, and the filter.

A score arrives as a JSON object (``POST /api/scores``, an import, the UI's form):

    {"call_id": "…" | "trace_id": "…" | "session": "…", "name": "helpful",
     "value": 0.9, "label": "good", "comment": "…", "source": "user",
     "author": "…", "app": "…", "id": "…", "ts": "2026-12-03T09:00:00Z"}

``name`` and a ``value`` or ``label`` are required, and one target: ``call_id`` (the
``X-Gensight-Call-Id`` the gateway answered with, or an SDK span's id), else
``trace_id``, else ``session``. A score without an ``id`` gets a new one; sending an
``id`` makes a retry harmless (idempotent by id). The stored form (``target``,
``target_id``) is accepted too, so an export imports back as it was.

The ``score`` call filter: ``helpful`` (has such a score), ``helpful:<0.5`` (a value
compared with ``<``, ``<=``, ``>``, ``>=``, ``=``, ``!=``) or ``helpful:=good`` (a label).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gensight.model.records import Score
from gensight.model.vocab import SCORE_OPS, SCORE_SOURCES, SCORE_TARGETS, one_of

#: The GenAI semantic conventions' evaluation event and its attributes (#20), and
#: Gensight's own additions (``gensight.conventions.evaluation`` reads them; the SDK's
#: ``gensight.score`` writes them).
EVAL_EVENT = "gen_ai.evaluation.result"
EVAL_NAME = "gen_ai.evaluation.name"
EVAL_VALUE = "gen_ai.evaluation.score.value"
EVAL_LABEL = "gen_ai.evaluation.score.label"
EVAL_EXPLANATION = "gen_ai.evaluation.explanation"
SCORE_ID = "gensight.score.id"
SCORE_SOURCE = "gensight.score.source"
SCORE_AUTHOR = "gensight.score.author"
SCORE_CALL_ID = "gensight.score.call_id"
SCORE_TRACE_ID = "gensight.score.trace_id"
SCORE_SESSION = "gensight.score.session"

#: Longest name, label or id a score may carry, and the longest comment.
MAX_TEXT = 200
MAX_COMMENT = 10_000
#: Scores one request may carry.
MAX_BATCH = 1000

_FIELDS = (
    "id",
    "ts",
    "call_id",
    "trace_id",
    "session",
    "target",
    "target_id",
    "name",
    "value",
    "label",
    "comment",
    "source",
    "author",
    "app",
)


class ScoreError(ValueError):
    """A score that cannot be kept; ``field`` names what is wrong (``scores[2].value``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def new_score_id() -> str:
    """A fresh score id (32 hex digits)."""
    return uuid.uuid4().hex


def _text(d: dict[str, Any], key: str, where: str, limit: int = MAX_TEXT) -> str | None:
    value = d.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ScoreError(where + key, f"must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise ScoreError(where + key, f"longer than {limit} characters")
    return value


def _ts(d: dict[str, Any], where: str, now: datetime) -> datetime:
    value = d.get("ts")
    if value is None or value == "":
        return now
    if not isinstance(value, str):
        raise ScoreError(where + "ts", "must be an ISO 8601 time")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ScoreError(where + "ts", f"{value!r} is not an ISO 8601 time") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def score_from_dict(
    d: Any, *, where: str = "", now: datetime | None = None, app: str | None = None
) -> Score:
    """A ``Score`` from its JSON object; ScoreError naming the first bad field.

    ``where`` prefixes field names (``scores[3].``); ``app``, when given (a key bound to
    an app), is the score's app whatever the object says."""
    if not isinstance(d, dict):
        raise ScoreError(where.rstrip(".") or "body", "a score must be a JSON object")
    for key in d:
        if key not in _FIELDS:
            raise ScoreError(where + str(key), f"unknown field; {one_of(_FIELDS)}")
    name = _text(d, "name", where)
    if name is None:
        raise ScoreError(where + "name", "required (e.g. helpful, correct, thumbs)")
    value = d.get("value")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ScoreError(where + "value", f"must be a number, not {type(value).__name__}")
        value = float(value)
        if not math.isfinite(value):
            raise ScoreError(where + "value", "must be a finite number")
    label = _text(d, "label", where)
    if value is None and label is None:
        raise ScoreError(where + "value", "a score needs a value or a label")
    source = d.get("source") or "api"
    if source not in SCORE_SOURCES:
        raise ScoreError(where + "source", one_of(SCORE_SOURCES))
    target, target_id = _target(d, where)
    trace_id = _text(d, "trace_id", where)
    return Score(
        id=_text(d, "id", where) or new_score_id(),
        ts=_ts(d, where, now or datetime.now(UTC)),
        target=target,
        target_id=target_id.lower() if target != "session" else target_id,
        name=name,
        value=value,
        label=label,
        comment=_text(d, "comment", where, MAX_COMMENT),
        source=source,
        author=_text(d, "author", where),
        app=app or _text(d, "app", where),
        trace_id=trace_id.lower() if trace_id else None,
    )


def _target(d: dict[str, Any], where: str) -> tuple[str, str]:
    stored = _text(d, "target", where)
    if stored is not None:
        if stored not in SCORE_TARGETS:
            raise ScoreError(where + "target", one_of(SCORE_TARGETS))
        target_id = _text(d, "target_id", where)
        if target_id is None:
            raise ScoreError(where + "target_id", "required with target")
        return stored, target_id
    for key, target in (("call_id", "call"), ("trace_id", "trace"), ("session", "session")):
        value = _text(d, key, where)
        if value is not None:
            return target, value
    raise ScoreError(where + "call_id", "a score needs a call_id, a trace_id or a session")


def scores_from_body(doc: Any, *, app: str | None = None) -> list[Score]:
    """One score (an object) or a batch (a list, or ``{"scores": [...]}``)."""
    if isinstance(doc, dict) and "scores" in doc and "name" not in doc:
        doc = doc["scores"]
        prefix = "scores"
    else:
        prefix = "body"
    if isinstance(doc, dict):
        return [score_from_dict(doc, app=app)]
    if not isinstance(doc, list):
        raise ScoreError(prefix, "a score object or a list of them")
    if not doc:
        raise ScoreError(prefix, "no scores")
    if len(doc) > MAX_BATCH:
        raise ScoreError(prefix, f"more than {MAX_BATCH} scores: send smaller batches")
    return [score_from_dict(d, where=f"{prefix}[{i}].", app=app) for i, d in enumerate(doc)]


@dataclass(frozen=True)
class ScoreFilter:
    """``name``, and optionally ``op`` with a ``value`` (a number) or a ``label``."""

    name: str
    op: str | None = None
    value: float | None = None
    label: str | None = None


def parse_score_filter(text: str) -> ScoreFilter:
    """``helpful``, ``helpful:<0.5``, ``helpful:=good``; ValueError saying what is wrong."""
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ValueError("needs a score name, e.g. helpful or helpful:<0.5")
    if not sep:
        return ScoreFilter(name)
    rest = rest.strip()
    op = next((o for o in SCORE_OPS if rest.startswith(o)), None)
    if op is None:
        raise ValueError(f"after {name}: comes an operator, {one_of(SCORE_OPS)}")
    operand = rest[len(op) :].strip()
    if not operand:
        raise ValueError(f"{name}:{op} needs a value or a label")
    try:
        number = float(operand)
    except ValueError:
        number = None
    if number is not None and math.isfinite(number):
        return ScoreFilter(name, op, value=number)
    if op not in ("=", "!="):
        raise ValueError(f"{op} compares numbers; {operand!r} is not one (labels take = or !=)")
    return ScoreFilter(name, op, label=operand)
