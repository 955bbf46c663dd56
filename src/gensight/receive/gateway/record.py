"""What a gateway call becomes: one ``CallRecord``, a server span, a span per attempt.

Only once the answer is complete (or cut) is the call recorded; the records are
built here from the request's ``Call`` state and its ``Capture`` (what was read of the
request and answer), with tokens estimated where the upstream did not count them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from gensight.conventions.errors import classify_answer
from gensight.enrich import tokens
from gensight.model.records import CallRecord, SpanRecord
from gensight.receive.gateway.calibrate import Calibration
from gensight.receive.gateway.call import Call, new_id
from gensight.receive.gateway.errors import MAX_ERROR_MESSAGE, content_free
from gensight.receive.gateway.routes import api_version
from gensight.receive.gateway.upstreams import Upstream


def parse_traceparent(value: bytes | None) -> tuple[str, str] | None:
    """``(trace_id, parent span id)`` of a valid W3C ``traceparent``, else None."""
    if not value or len(value) < 55:
        return None
    try:
        parts = value.decode("ascii").strip().lower().split("-")
    except UnicodeDecodeError:
        return None
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    trace_id, span_id = parts[1], parts[2]
    if len(trace_id) != 32 or len(span_id) != 16:
        return None
    try:
        if int(trace_id, 16) == 0 or int(span_id, 16) == 0:
            return None
    except ValueError:
        return None
    return trace_id, span_id


def header_text(value: bytes | None) -> str | None:
    """A header's value as text, None when absent or blank."""
    if not value:
        return None
    return value.decode("utf-8", "replace").strip() or None


def user_of(call: Call) -> str | None:
    """The call's end user: ``X-Gensight-User``, else the OpenAI body's ``user`` or
    ``safety_identifier`` (what budgets per user and the record's ``user`` see)."""
    user = header_text(call.meta.get(b"x-gensight-user"))
    if user is None:
        req = call.capture.request or {}
        body = req.get("user") or req.get("safety_identifier")
        user = body.strip() or None if isinstance(body, str) else None
    return user


def _tags(value: bytes | None) -> list[str]:
    text = header_text(value)
    if not text:
        return []
    return [t.strip() for t in text.split(",") if t.strip()]


#: Response headers naming the provider's id of the request, in the order tried.
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id")
#: Prefixes of the rate-limit headers kept (OpenAI/Azure/most, Anthropic's own).
_RATELIMIT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
#: At most this many rate-limit headers are kept, each at most this long.
_MAX_RATELIMIT, _MAX_HEADER_VALUE = 16, 128


def note_answer(call: Call, span: SpanRecord, headers: Mapping[str, str]) -> None:
    """Keep what an upstream's answer headers say about the request: its id (what the
    provider's support asks for) on the call and the attempt, and the rate-limit
    headers of the answer the client gets."""
    request_id = next((headers[h] for h in _REQUEST_ID_HEADERS if headers.get(h)), None)
    if request_id:
        request_id = request_id[:_MAX_HEADER_VALUE]
        span.attributes["gensight.upstream_request_id"] = request_id
    call.upstream_request_id = request_id
    limits: dict[str, str] = {}
    for key, value in headers.items():
        k = key.lower()
        if k.startswith(_RATELIMIT_PREFIXES) and len(limits) < _MAX_RATELIMIT:
            limits[k] = value[:_MAX_HEADER_VALUE]
    call.ratelimit = limits


def attempt_span(call: Call, up: Upstream, method: str) -> SpanRecord:
    """Open the client span of the call's next upstream attempt."""
    n = len(call.attempts) + 1
    span = SpanRecord(
        trace_id="",
        span_id=new_id(64),
        name=f"{method} {up.name} (attempt {n})",
        ts=datetime.now(UTC),
        duration_ms=0.0,
        kind="client",
        attributes={
            "gensight.upstream": up.name,
            "gensight.attempt": n,
            "http.request.method": method,
            "server.address": up.host,
            "url.full": up.address + call.path,
        },
    )
    call.attempts.append(span)
    return span


def end_attempt(
    span: SpanRecord,
    started: float,
    status: int | None,
    error_class: str | None,
    message: str | None,
) -> None:
    """Close an attempt's span with its duration, status code and error, if any."""
    span.duration_ms = (time.perf_counter() - started) * 1000.0
    if status is not None:
        span.attributes["http.response.status_code"] = status
    if error_class:
        span.status = "error"
        span.status_message = message[:MAX_ERROR_MESSAGE] if message else None
        span.attributes["error.type"] = error_class


_DEPLOYMENT = re.compile(r"/deployments/([^/?]+)/")


def azure(record: CallRecord, call: Call) -> None:
    """Azure OpenAI's deployment (in the path, or the v1 API's ``model``) and the
    ``api-version`` asked for (in the query)."""
    if call.route.startswith("/azure/") and not (record.provider or "").startswith("azure."):
        record.provider = "azure.ai.openai"  # what the route says, whatever the host
    found = _DEPLOYMENT.search(call.path)
    if found:
        record.deployment = unquote(found.group(1))[:256]
    elif record.provider == "azure.ai.openai":
        record.deployment = record.request_model
    record.api_version = api_version(call.query)


#: Operations whose estimates are calibrated (embeddings' counts need no template).
_LEARNED = frozenset({"chat", "text_completion", "responses"})


async def _estimate(cap: Any, record: CallRecord, model: str | None) -> None:
    if tokens.ready(model):
        cap.estimate(record)
    else:  # the vocabulary is still loading: don't block the loop
        await asyncio.to_thread(cap.estimate, record)


async def build(
    call: Call, capture_content: bool, calibration: Calibration | None = None
) -> tuple[list[CallRecord], list[SpanRecord]]:
    """The call's records: the CallRecord (when it is an LLM call) and its spans."""
    cap = call.capture
    meta = call.meta
    parent = parse_traceparent(meta.get(b"traceparent"))
    trace_id, parent_id = parent if parent else (new_id(128), None)
    span_id = call.id
    duration = call.elapsed_ms()
    up = call.target
    app = header_text(meta.get(b"x-gensight-app"))
    status = "ok"
    error_class = call.error_class
    code = None
    if error_class is None and call.http_status is not None and call.http_status >= 400:
        error_class, code = classify_answer(call.http_status, call.error_message)
    if error_class is not None:
        status = "error"
    else:
        call.error_message = None
    if not capture_content:  # upstream bodies may echo the prompt: keep only what names them
        if call.upstream_error:
            call.error_message = content_free(call.error_message)
        for s in call.attempts:
            if s.status_message and "http.response.status_code" in s.attributes:
                s.status_message = content_free(s.status_message)
    attrs: dict[str, Any] = {"http.request.method": call.method, "url.path": call.route}
    if up is not None:
        attrs["gensight.upstream"] = up.name
    if code is not None:  # the provider's own code: context_length_exceeded, content_filter…
        attrs["gensight.error_code"] = code
    if call.budget_rule is not None:
        attrs["gensight.budget_rule"] = call.budget_rule
    if call.refusal is not None:  # answered by the gateway itself, no upstream asked
        attrs["gensight.refusal"] = call.refusal
    for key, value in call.ratelimit.items():  # semconv: http.response.header.<key>
        attrs["http.response.header." + key] = value
    if len({s.attributes["gensight.upstream"] for s in call.attempts}) > 1:
        attrs["gensight.fallback"] = True
    for s in call.attempts:
        s.trace_id = trace_id
        s.parent_span_id = span_id
        s.app = app
    spans: list[SpanRecord] = list(call.attempts)
    calls: list[CallRecord] = []
    if cap.is_call:
        record = CallRecord(
            id=span_id,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_id,
            ts=call.ts,
            duration_ms=duration,
            source="gateway",
            ttft_ms=(  # the first token, not the first byte (a role chunk, response.created)
                (call.first_token - call.start) * 1000.0
                if cap.stream and call.first_token is not None
                else None
            ),
            app=app,
            provider=up.provider if up else None,
            server_address=up.host if up else None,
            user=user_of(call),
            session=header_text(meta.get(b"x-gensight-session")),
            tags=_tags(meta.get(b"x-gensight-tags")),
            http_status=call.http_status,
            attempts=len(call.attempts),
            attributes=attrs,
            upstream_request_id=call.upstream_request_id,
        )
        if status == "error":
            record.status = "error"
            record.error_class = error_class
            record.error_message = call.error_message
        cap.fill(record, capture_content)
        azure(record, call)
        # Estimate what the upstream did not count: whole answers, and cut streams
        # (a partial answer was still generated, and billed), corrected by what this
        # upstream's own counts taught (``calibrate``); calls that did count teach it.
        model = record.response_model or record.request_model
        key = (up.name if up else "", model or "")
        if cap.needs_estimate(record) and (record.status == "ok" or cap.outputs()):
            missing = (record.input_tokens is None, record.output_tokens is None)
            await _estimate(cap, record, model)
            if calibration is not None and record.operation in _LEARNED:
                inp, out, n = calibration.correct(
                    key,
                    record.input_tokens if missing[0] else None,
                    record.output_tokens if missing[1] else None,
                )
                if n:
                    record.input_tokens = inp if missing[0] else record.input_tokens
                    record.output_tokens = out if missing[1] else record.output_tokens
                    record.attributes["gensight.tokens_calibration"] = n
        elif (
            calibration is not None
            and up is not None
            and up.wire == "openai"  # native wires always report usage
            and record.status == "ok"
            and record.operation in _LEARNED
            and not record.tokens_estimated
            and record.input_tokens
            and calibration.should_learn(key, tokens.ready(model))
        ):
            probe = dataclasses.replace(record, input_tokens=None, output_tokens=None)
            await _estimate(cap, probe, model)
            reasoned = bool(record.reasoning_tokens)  # unseen tokens: not the vocabulary's
            calibration.learn(
                key,
                probe.input_tokens,
                record.input_tokens,
                None if reasoned else probe.output_tokens,
                None if reasoned else record.output_tokens,
            )
        status = record.status
        calls.append(record)
        name = f"{record.operation} {record.request_model or ''}".strip()
    else:
        name = f"{call.method} {call.path}"
        if call.http_status is not None:
            attrs["http.response.status_code"] = call.http_status
    spans.insert(
        0,
        SpanRecord(
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent_id,
            name=name,
            kind="server",
            ts=call.ts,
            duration_ms=duration,
            status=status,
            status_message=(call.error_message or "")[:512] or None,
            app=app,
            call_id=span_id if calls else None,
            attributes=dict(attrs),
        ),
    )
    return calls, spans
