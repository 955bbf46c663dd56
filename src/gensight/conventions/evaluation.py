"""The GenAI ``gen_ai.evaluation.result`` event → ``Score`` (#20).

The semantic conventions define one event per evaluation of a GenAI operation, sent as
an OTLP log record (event name in ``LogRecord.event_name`` or the ``event.name``
attribute) or as a span event, with

* ``gen_ai.evaluation.name`` (required): the score's name (``relevance``, ``helpful``);
* ``gen_ai.evaluation.score.value`` (a number) and/or ``gen_ai.evaluation.score.label``;
* ``gen_ai.evaluation.explanation``: the comment;
* the evaluated span's context: the log record's trace and span ids (or, for a span
  event, its span): the span id is the call's id, so the score joins the call.

Gensight's own SDK adds ``gensight.score.id`` (idempotent resends), ``.source``,
``.author`` and, when the app named what it scores rather than being inside its span,
``gensight.score.call_id`` / ``.trace_id`` / ``.session``. Without an id, the id is a
digest of the event's trace, span, time and name, so a resent batch stores it once.
A score from an evaluation event is ``source=eval`` unless it says otherwise.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any

from gensight.conventions.otlp_values import any_value, attributes, hex_id, nanos_to_datetime
from gensight.model.records import Score
from gensight.model.scores import (
    EVAL_EVENT,
    EVAL_EXPLANATION,
    EVAL_LABEL,
    EVAL_NAME,
    EVAL_VALUE,
    MAX_COMMENT,
    MAX_TEXT,
    SCORE_AUTHOR,
    SCORE_CALL_ID,
    SCORE_ID,
    SCORE_SESSION,
    SCORE_SOURCE,
    SCORE_TRACE_ID,
)
from gensight.model.vocab import SCORE_SOURCES

EVENT = EVAL_EVENT
NAME, VALUE, LABEL, EXPLANATION = EVAL_NAME, EVAL_VALUE, EVAL_LABEL, EVAL_EXPLANATION
ID, SOURCE, AUTHOR = SCORE_ID, SCORE_SOURCE, SCORE_AUTHOR
CALL_ID, TRACE_ID, SESSION = SCORE_CALL_ID, SCORE_TRACE_ID, SCORE_SESSION


def _str(value: Any, limit: int = MAX_TEXT) -> str | None:
    if value is None or value == "":
        return None
    return str(value)[:limit]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def score_from_event(
    attrs: dict[str, Any],
    trace_id: str | None,
    span_id: str | None,
    ns: int,
    app: str | None,
) -> Score | None:
    """The score one evaluation event carries (None: no name, no value or label, or
    nothing to attach it to)."""
    name = _str(attrs.get(NAME))
    value = _number(attrs.get(VALUE))
    label = _str(attrs.get(LABEL))
    if name is None or (value is None and label is None):
        return None
    call_id = _str(attrs.get(CALL_ID))
    explicit_trace = _str(attrs.get(TRACE_ID))
    session = _str(attrs.get(SESSION))
    trace = (explicit_trace or trace_id or "").lower() or None
    if call_id:
        target, target_id = "call", call_id.lower()
    elif explicit_trace:
        target, target_id = "trace", explicit_trace.lower()
    elif session:
        target, target_id = "session", session
    elif span_id:
        target, target_id = "call", span_id
    elif trace_id:
        target, target_id = "trace", trace_id
    else:
        return None
    source = _str(attrs.get(SOURCE))
    score_id = _str(attrs.get(ID))
    if score_id is None:
        key = f"{trace_id}|{span_id}|{ns}|{name}|{target}|{target_id}"
        score_id = hashlib.sha256(key.encode()).hexdigest()[:32]
    return Score(
        id=score_id,
        ts=nanos_to_datetime(ns) if ns else datetime.now(UTC),
        target=target,
        target_id=target_id,
        name=name,
        value=value,
        label=label,
        comment=_str(attrs.get(EXPLANATION), MAX_COMMENT),
        source=source if source in SCORE_SOURCES else "eval",
        author=_str(attrs.get(AUTHOR)),
        app=app,
        trace_id=trace,
    )


def log_to_score(record: Any, app: str | None) -> Score | None:
    """The score of one OTLP ``LogRecord`` (None when it is not an evaluation result)."""
    attrs = attributes(record.attributes)
    name = record.event_name or attrs.get("event.name")
    if name != EVENT:
        return None
    if record.HasField("body"):
        body = any_value(record.body)
        if isinstance(body, dict):  # some producers put the fields in the body
            attrs = {**{k: v for k, v in body.items() if isinstance(k, str)}, **attrs}
    ns = record.time_unix_nano or record.observed_time_unix_nano
    return score_from_event(attrs, hex_id(record.trace_id), hex_id(record.span_id), ns, app)


def span_scores(span: Any, app: str | None) -> list[Score]:
    """The scores of an OTLP span's ``gen_ai.evaluation.result`` events (about that span)."""
    out = []
    for e in span.events:
        if e.name != EVENT:
            continue
        ns = e.time_unix_nano or span.end_time_unix_nano
        score = score_from_event(
            attributes(e.attributes), hex_id(span.trace_id), hex_id(span.span_id), ns, app
        )
        if score is not None:
            out.append(score)
    return out
