"""``gensight.score()``: quality feedback from the app, exported with its telemetry (#20).

.. code:: python

    gensight.score(call_id, "helpful", value=1.0, comment="solved it", source="user")
    gensight.score(None, "thumbs", label="down")   # about the current span's call
    gensight.score(trace_id, "resolved", label="yes")

The first argument names what is judged: a call id (the gateway's ``X-Gensight-Call-Id``,
or ``gensight.last_call_id()``: the SDK span of the last call this thread or task made), a
trace id (32 hex digits), or ``None``: the last call made here when it belongs to the
current trace (or there is no current span), else the current span. ``session=`` judges
a whole conversation instead. Through the Gensight gateway the call is the gateway's
record: score it by its ``X-Gensight-Call-Id`` or by the trace.

The score is an OpenTelemetry log event, the GenAI conventions' ``gen_ai.evaluation.result``
(``gen_ai.evaluation.name``, ``.score.value``, ``.score.label``, ``.explanation``, with
the judged span's context), plus ``gensight.score.*`` attributes for the rest (id, source,
author, an explicit target). It goes out with the app's other logs, in the background:
the call returns at once, never raises and never waits for the network. Returns the
score's id (idempotent: the server stores an id once), or None when it was not sent
(``init()`` not called, nothing to score, no name, neither value nor label).
"""

from __future__ import annotations

import contextvars
import logging
import math
import re
import uuid
from typing import Any

from gensight.model.scores import (
    EVAL_EVENT,
    EVAL_EXPLANATION,
    EVAL_LABEL,
    EVAL_NAME,
    EVAL_VALUE,
    SCORE_AUTHOR,
    SCORE_CALL_ID,
    SCORE_ID,
    SCORE_SESSION,
    SCORE_SOURCE,
    SCORE_TRACE_ID,
)
from gensight.model.vocab import SCORE_SOURCES

log = logging.getLogger("gensight.sdk")

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")

#: The span of the last call started in this context (thread or task).
_LAST_CALL: contextvars.ContextVar[Any] = contextvars.ContextVar("gensight_last_call")


def remember_call(span: Any) -> None:
    """Note the span of a call the SDK starts (what ``score(None, …)`` judges)."""
    _LAST_CALL.set(span)


def last_call_id() -> str | None:
    """The id of the last call this thread or task made through the SDK (its span id)."""
    span = _LAST_CALL.get(None)
    if span is None:
        return None
    ctx = span.get_span_context()
    return f"{ctx.span_id:016x}" if ctx.is_valid else None


def score(
    target_id: str | None = None,
    name: str | None = None,
    value: float | None = None,
    label: str | None = None,
    comment: str | None = None,
    *,
    source: str = "api",
    author: str | None = None,
    session: str | None = None,
    score_id: str | None = None,
) -> str | None:
    """Send a score about a call, a trace (``target_id``), a ``session``, or the current
    span; see the module docstring. Never raises."""
    try:
        return _score(target_id, name, value, label, comment, source, author, session, score_id)
    except Exception as e:  # the SDK never raises into the app
        log.warning("gensight.score: not sent (%s)", e)
        return None


def _score(
    target_id: str | None,
    name: str | None,
    value: float | None,
    label: str | None,
    comment: str | None,
    source: str,
    author: str | None,
    session: str | None,
    score_id: str | None,
) -> str | None:
    from opentelemetry import trace as otel_trace
    from opentelemetry.context import Context

    from gensight.sdk.setup import logger

    if not name:
        log.warning("gensight.score: a score needs a name")
        return None
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            log.warning("gensight.score: value must be a number, not %r", value)
            return None
        if not math.isfinite(value):
            log.warning("gensight.score: value must be finite")
            return None
    if value is None and not label:
        log.warning("gensight.score: %r needs a value or a label", name)
        return None
    emitter = logger()
    if emitter is None:
        log.warning("gensight.score: call gensight.init() first")
        return None
    attrs: dict[str, Any] = {EVAL_NAME: str(name), SCORE_SOURCE: source}
    if source not in SCORE_SOURCES:
        attrs[SCORE_SOURCE] = "api"
    if value is not None:
        attrs[EVAL_VALUE] = float(value)
    if label:
        attrs[EVAL_LABEL] = str(label)
    if comment:
        attrs[EVAL_EXPLANATION] = str(comment)
    if author:
        attrs[SCORE_AUTHOR] = str(author)
    # a named target: the app's current span (if any) is not what is judged
    context: Any = Context()
    if target_id:
        key = SCORE_TRACE_ID if _TRACE_ID.match(target_id) else SCORE_CALL_ID
        attrs[key] = target_id.lower()
    elif session:
        attrs[SCORE_SESSION] = str(session)
    else:
        current = otel_trace.get_current_span().get_span_context()
        last = _LAST_CALL.get(None)
        span = None
        if last is not None and (
            not current.is_valid or last.get_span_context().trace_id == current.trace_id
        ):
            span = last
        elif current.is_valid:
            span = otel_trace.get_current_span()
        if span is None:
            log.warning("gensight.score: no id given, and no call or span to score")
            return None
        context = otel_trace.set_span_in_context(span)
    attrs[SCORE_ID] = score_id or uuid.uuid4().hex
    emitter.emit(event_name=EVAL_EVENT, attributes=attrs, context=context)
    return attrs[SCORE_ID]
