"""Scores forwarded over OTLP (#20): each stored score as a ``gen_ai.evaluation.result``
event, the GenAI semantic conventions' evaluation event, in an OTLP/HTTP logs request.

A forwarded score is one log record with ``event_name = "gen_ai.evaluation.result"`` and

* ``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value``,
  ``gen_ai.evaluation.score.label``, ``gen_ai.evaluation.explanation`` (the comment);
* the evaluated span's context: a call's score carries the call's trace and span ids (so
  the other backend shows it under the forwarded call's span), a trace's score its trace
  id; a score whose call is not stored yet goes without and names the call instead;
* ``gensight.score.id``, ``.source``, ``.author`` and ``gensight.score.call_id`` /
  ``.trace_id`` / ``.session``: what another Gensight needs to store it as it was
  (idempotent by id, joined to the same call);

under a resource whose ``service.name`` is the score's app (else its call's). The URL is
the forwarding target's, with ``/v1/logs`` in place of ``/v1/traces``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs

from gensight.export.otlp_encode import kvs
from gensight.model.records import Score
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

#: A call's ``(trace id, span id, app)`` by call id, as the store knows them.
Contexts = Mapping[str, tuple[str, str, str | None]]

_TARGET_KEY = {"call": SCORE_CALL_ID, "trace": SCORE_TRACE_ID, "session": SCORE_SESSION}


def logs_url(url: str) -> str:
    """The OTLP/HTTP logs URL beside a forwarding URL (``…/v1/logs``)."""
    url = url.rstrip("/")
    if url.endswith("/v1/traces"):
        url = url[: -len("/v1/traces")]
    return url if url.endswith("/v1/logs") else url + "/v1/logs"


def _raw(hex_id: str | None, n: int) -> bytes:
    try:
        b = bytes.fromhex(hex_id or "")
    except ValueError:
        return b""
    return b if len(b) == n else b""


def score_attributes(score: Score) -> dict[str, Any]:
    """The evaluation event's attributes (None values are left out when encoded)."""
    return {
        EVAL_NAME: score.name,
        EVAL_VALUE: score.value,
        EVAL_LABEL: score.label,
        EVAL_EXPLANATION: score.comment,
        SCORE_ID: score.id,
        SCORE_SOURCE: score.source,
        SCORE_AUTHOR: score.author,
        _TARGET_KEY[score.target]: score.target_id,
    }


def score_context(score: Score, contexts: Contexts) -> tuple[bytes, bytes]:
    """The evaluated span's trace and span ids (empty when not known)."""
    if score.target == "call":
        trace_id, span_id, _app = contexts.get(score.target_id, (score.trace_id or "", "", None))
        return _raw(trace_id, 16), _raw(span_id, 8)
    if score.target == "trace":
        return _raw(score.target_id, 16), b""
    return _raw(score.trace_id, 16), b""


def encode_scores(scores: Sequence[Score], contexts: Contexts) -> bytes:
    """An ``ExportLogsServiceRequest`` (protobuf): one evaluation event per score, by app."""
    req = ExportLogsServiceRequest()
    by_app: dict[str | None, ResourceLogs] = {}
    for score in scores:
        app = score.app
        if app is None and score.target == "call" and score.target_id in contexts:
            app = contexts[score.target_id][2]
        rl = by_app.get(app)
        if rl is None:
            rl = by_app[app] = req.resource_logs.add()
            rl.resource.attributes.extend(kvs({"service.name": app or "unknown_service"}))
            rl.scope_logs.add().scope.name = "gensight"
        trace_id, span_id = score_context(score, contexts)
        ns = int(score.ts.timestamp() * 1_000_000) * 1000
        record = rl.scope_logs[0].log_records.add(
            time_unix_nano=ns,
            observed_time_unix_nano=ns,
            event_name=EVAL_EVENT,
            trace_id=trace_id,
            span_id=span_id,
        )
        record.attributes.extend(kvs(score_attributes(score)))
    return req.SerializeToString()
