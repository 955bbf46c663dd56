"""logfire's LLM instrumentation in its v1 mode (``instrument_openai(version=1)``).

What it sends (checked against logfire 5.4, ``logfire/_internal/integrations/
llm_providers``): a CLIENT span per request, scope ``logfire.openai`` (or
``logfire.anthropic``), named by its ``logfire.msg_template`` ("Chat Completion with
{request_data[model]!r}", "Embedding Creation with …", "Completion with …", "Responses
API with …", "Message with …"), holding ``request_data`` (the request body, JSON) and,
once answered, ``response_data`` (``{"message", "usage"}`` for chat, ``{"usage"}`` for
embeddings). Recent releases add ``gen_ai.*`` keys too; older ones do not, so both are read
(the ``gen_ai.*`` keys win where both are present).

A stream is split in two: the request span ends when the response headers arrive and
holds no usage or output; after the last chunk a zero-length *log* span ("streaming
response from … took {duration:.2f}s", ``logfire.span_type=log``, a sibling of the
request span) holds the output, the usage and ``duration`` (seconds spent reading the
stream). The log span is the call; the request span stays a span (unless it failed
before any chunk, when it is the only record of the call). :func:`join_streams` then
starts the call where its request span started, when both arrived in one export.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from gensight.conventions.adapters import Adapted, as_dict, request_fields, usage_fields
from gensight.conventions.messages import parse_json
from gensight.model.records import CallRecord, SpanRecord

REQUEST = "request_data"
RESPONSE = "response_data"
_KEYS = frozenset({REQUEST, RESPONSE})
#: message template prefix → operation (templates are stable across versions)
_TEMPLATES = (
    ("Chat Completion", "chat"),
    ("Embedding Creation", "embeddings"),
    ("Responses API", "responses"),
    ("Completion", "text_completion"),
    ("Message", "chat"),  # Anthropic messages.create
)
DIGEST = "logfire.request_digest"
#: keys logfire v2 sets from a response (gen_ai.response.model it sets up front)
_ANSWER_KEYS = ("gen_ai.response.id", "gen_ai.usage.input_tokens", "gen_ai.output.messages")
_ERROR_LEVEL = 17  # logfire's level_num for "error"


def _operation(attrs: dict[str, Any]) -> str | None:
    template = str(attrs.get("logfire.msg_template") or "")
    for prefix, op in _TEMPLATES:
        if template.startswith(prefix):
            return op
    return None


def _failed(attrs: dict[str, Any], events: list[dict[str, Any]]) -> bool:
    level = attrs.get("logfire.level_num")
    return any(e["name"] == "exception" for e in events) or (
        isinstance(level, int) and level >= _ERROR_LEVEL
    )


def _answered(attrs: dict[str, Any]) -> bool:
    """Whether logfire recorded a response on this span (it does for every answered
    non-streamed request: ``response_data`` in v1, ``gen_ai.response.*`` in v2)."""
    return RESPONSE in attrs or any(k in attrs for k in _ANSWER_KEYS)


def _output(response: dict[str, Any], attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    message = response.get("message")
    if not isinstance(message, dict):
        text = response.get("combined_chunk_content")  # a streamed text completion
        message = {"role": "assistant", "content": text} if isinstance(text, str) else None
    if message is None:
        return None
    out = dict(message)
    out.setdefault("role", "assistant")
    reasons = parse_json(attrs.get("gen_ai.response.finish_reasons"))  # logfire: JSON text
    if isinstance(reasons, list | tuple) and reasons:
        out.setdefault("finish_reason", reasons[0])
    return [out]


def adapt(
    attrs: dict[str, Any], events: list[dict[str, Any]], scope_name: str, start_ns: int, end_ns: int
) -> Adapted | None:
    """A logfire LLM span's call fields, or None when the span is not logfire's."""
    if not scope_name.startswith("logfire") or REQUEST not in attrs:
        return None
    request = as_dict(attrs.get(REQUEST))
    response = as_dict(attrs.get(RESPONSE))
    is_log = attrs.get("logfire.span_type") == "log"
    operation = attrs.get("gen_ai.operation.name") or _operation(attrs)
    if operation is None:  # images and the like: not an inference call
        return Adapted(producer="logfire", is_call=False, content_keys=_KEYS)
    if not is_log and not _answered(attrs) and not _failed(attrs, events):
        # the request half of a stream (v1 says "stream": true in request_data; v2 keeps
        # only the model there): its "streaming response" log span is the call
        return Adapted(producer="logfire", is_call=False, content_keys=_KEYS)

    derived: dict[str, Any] = {"gen_ai.operation.name": operation, **request_fields(request)}
    derived.update(usage_fields(as_dict(response.get("usage"))))
    provider = scope_name.split(".", 1)[1] if "." in scope_name else None
    if provider:
        derived["gen_ai.provider.name"] = provider
    if operation != "embeddings":
        messages = request.get("messages") or request.get("input") or request.get("prompt")
        if messages:
            derived["gen_ai.input.messages"] = messages
        if isinstance(request.get("system"), str | list):  # Anthropic's system prompt
            derived["gen_ai.system_instructions"] = request["system"]
        out = _output(response, attrs)
        if out:
            derived["gen_ai.output.messages"] = out
    # the producer's own gen_ai.* keys, where present, are its better-typed figures
    fields = {k: v for k, v in derived.items() if k not in attrs}
    start, end = start_ns, end_ns
    if is_log:
        fields["gen_ai.request.stream"] = True
        duration = attrs.get("duration")
        if isinstance(duration, int | float) and 0 <= duration < 86_400:
            # the log span is stamped when the stream ended; it lasted `duration` seconds
            start = max(0, start_ns - int(duration * 1e9))
            end = start_ns
    return Adapted(
        producer="logfire", fields=fields, is_call=True, start_ns=start, end_ns=end,
        content_keys=_KEYS, extra={DIGEST: digest(attrs)} if is_log else {},
    )  # fmt: skip


def digest(attrs: dict[str, Any]) -> str:
    """A short fingerprint of a request, to pair a stream's two spans by: its body, and
    its input messages (v2 keeps only the model in ``request_data``)."""
    text = f"{attrs.get(REQUEST)}\x00{attrs.get('gen_ai.input.messages')}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _join_key(trace_id: str, parent: str | None, body_digest: str) -> tuple[str | None, str]:
    # At the top of a trace the log span starts a trace of its own (logfire logs it in the
    # context from before the request span): there, the request body alone pairs them.
    return ((trace_id + (parent or "")) if parent else None), body_digest


def join_streams(calls: list[CallRecord], spans: list[SpanRecord]) -> None:
    """Start each logfire stream call where its request span started.

    The request span is the log span's sibling (same trace and parent; at a trace's top,
    any trace) with the same request body, ended before the stream was read: the latest.
    Only spans of one export request are seen, so a call whose request span came in
    another export keeps the log span's own timing (the time spent reading the stream).
    """
    requests: dict[tuple[str | None, str], list[SpanRecord]] = {}
    for s in spans:
        if s.call_id is None and REQUEST in s.attributes and not _answered(s.attributes):
            key = _join_key(s.trace_id, s.parent_span_id, digest(s.attributes))
            requests.setdefault(key, []).append(s)
    if not requests:
        return
    by_span = {s.span_id: s for s in spans}
    slack = timedelta(milliseconds=1)  # the two clocks are read microseconds apart
    for call in calls:
        key = call.attributes.get(DIGEST)
        if call.producer != "logfire" or not call.stream or not isinstance(key, str):
            continue
        candidates = [
            s
            for s in requests.get(_join_key(call.trace_id, call.parent_span_id, key), [])
            if s.ts + timedelta(milliseconds=s.duration_ms) <= call.ts + slack
        ]
        if not candidates:
            continue
        req = max(candidates, key=lambda s: s.ts)
        end = call.ts + timedelta(milliseconds=call.duration_ms)
        call.ts = req.ts
        call.duration_ms = (end - req.ts).total_seconds() * 1000.0
        call.attributes["logfire.request_span_id"] = req.span_id
        srec = by_span.get(call.span_id)
        if srec is not None:
            srec.ts, srec.duration_ms = call.ts, call.duration_ms
