"""OTLP spans of every GenAI convention → ``CallRecord`` + ``SpanRecord``.

Understood, in order of precedence where two say the same thing:

* OTel GenAI semconv, current names (``gen_ai.provider.name``, ``gen_ai.usage.input_tokens``,
  ``gen_ai.input.messages``, ``gen_ai.response.time_to_first_chunk`` …) and deprecated ones
  (``gen_ai.system``, ``gen_ai.usage.prompt_tokens`` …);
* OpenLIT (``gen_ai.usage.cost``, ``gen_ai.request.is_stream``,
  ``gen_ai.server.time_to_first_token``, ``gen_ai.prompt``/``gen_ai.completion`` text,
  ``gen_ai.application_name``, ``gen_ai.environment``, ``gen_ai.endpoint``);
* OpenLLMetry/Traceloop (``llm.request.type``, ``llm.is_streaming``,
  ``gen_ai.prompt.{i}.*``, ``gen_ai.completion.{i}.*``, ``traceloop.association.properties.*``);
* OpenInference (``openinference.span.kind``, ``llm.model_name``, ``llm.token_count.*``,
  ``llm.input_messages.{i}.message.*``, ``llm.invocation_parameters``, ``session.id``,
  ``user.id``).

Every span becomes a ``SpanRecord``; a span that is an LLM call also becomes a
``CallRecord`` whose id is the span id. Attributes not turned into fields are kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gensight.conventions import messages as msg
from gensight.conventions import producer_hooks, registry, vercel_ai
from gensight.conventions.adapters import adapt as adapt_producer
from gensight.conventions.errors import classify, status_from_text
from gensight.conventions.fields import (
    CONTENT_KEYS,
    FIELD_KEYS,
    INVOCATION,
    collect,
    first,
    is_content_key,
    to_bool,
    to_float,
    to_http_status,
    to_int,
    to_str,
    to_str_list,
)
from gensight.conventions.operations import (
    CALL_OPERATIONS,
    OPENINFERENCE_CALL_KINDS,
    call_operation,
    normalize_operation,
)
from gensight.conventions.otlp_values import (
    SPAN_KINDS,
    attributes,
    hex_id,
    nanos_to_datetime,
)
from gensight.conventions.plausible import (
    REFUSED_PREFIX,
    plausible_time,
    refuse_implausible_call,
)
from gensight.conventions.providers import host_of, normalize_provider, provider_for_host
from gensight.model.records import CallRecord, SpanRecord

__all__ = [
    "CALL_OPERATIONS",
    "Resource",
    "is_llm_span",
    "normalize_operation",
    "normalize_provider",
    "producer_of",
    "span_to_records",
]

# The names this module had before it was split (fields.py, operations.py,
# providers.py); kept so code and tests written against them keep working.
_CONTENT_KEYS = CONTENT_KEYS
_FIELD_KEYS = FIELD_KEYS
_INVOCATION = INVOCATION
_OPENINFERENCE_LLM_KINDS = OPENINFERENCE_CALL_KINDS
_collect = collect
_first = first
_int = to_int
_float = to_float
_http_status = to_http_status
_str = to_str
_bool = to_bool
_str_list = to_str_list
_is_content_key = is_content_key

_OPENAI_FAMILY = frozenset({"openai", "azure.ai.openai"})
#: How long a span may plausibly last; a longer one has a broken start or end time.
_MAX_DURATION_MS = 86_400_000.0


def is_llm_span(attrs: dict[str, Any]) -> bool:
    """Whether a span's attributes describe an LLM call (inference or embedding, any
    convention; see ``gensight.conventions.operations``)."""
    return call_operation(attrs) is not None


class Resource:
    """The fields a span's resource (and scope) contributes to its records."""

    __slots__ = ("app", "environment", "language", "producer")

    def __init__(self, attrs: dict[str, Any], scope_name: str = "") -> None:
        service = attrs.get("service.name")
        if isinstance(service, str) and service.startswith("unknown_service"):
            service = None
        self.app = to_str(service or attrs.get("gen_ai.application_name"))
        self.environment = to_str(
            first(
                attrs, "deployment.environment.name", "deployment.environment", "gen_ai.environment"
            )
        )
        self.language = to_str(attrs.get("telemetry.sdk.language"))
        self.producer = producer_of(scope_name, attrs)


def producer_of(scope_name: str, resource_attrs: dict[str, Any]) -> str | None:
    """Which producer emitted a span, from its instrumentation scope and resource."""
    s = scope_name.lower()
    if "openai_v2" in s or "openai-v2" in s:
        return "openai-v2"
    if "openinference" in s:
        return "openinference"
    if "openlit" in s:
        return "openlit"
    if "traceloop" in s or "opentelemetry.instrumentation.openai" in s:
        return "traceloop"
    if s.startswith("gensight"):
        return "gensight-sdk"
    if s.startswith("opentelemetry.util.genai"):
        # the official instrumentations' shared handler (openai-v2 in latest mode, …)
        return "otel-genai"
    if s == vercel_ai.OTEL_SCOPE and resource_attrs.get("telemetry.sdk.language") == "nodejs":
        return "vercel-ai"  # @ai-sdk/otel's default tracer: GenAI semconv spans
    sdk = resource_attrs.get("telemetry.sdk.name")
    if sdk == "openlit":
        return "openlit"
    return scope_name or None


def span_to_records(
    span: Any, resource: Resource, scope_name: str = "", received: datetime | None = None
) -> tuple[SpanRecord, CallRecord | None]:
    """One OTLP protobuf ``Span`` as its SpanRecord and, for an LLM call, its CallRecord.

    ``received`` (default: now) is when the span arrived: a start time before 2020 or
    more than a day after it is stored as ``received`` (see
    ``gensight.conventions.plausible``).
    """
    attrs = attributes(span.attributes)
    trace_id = hex_id(span.trace_id)
    span_id = hex_id(span.span_id)
    if trace_id is None or span_id is None:
        raise ValueError("span without a valid trace_id/span_id")
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    parent = hex_id(span.parent_span_id)
    code = span.status.code  # 0 unset, 1 ok, 2 error
    events = [
        {
            "name": e.name,
            "ts": nanos_to_datetime(e.time_unix_nano).isoformat(),
            "attributes": attributes(e.attributes),
        }
        for e in span.events
    ]
    # MLflow, logfire, litellm: their own keys read as the common ones (conventions/adapters.py)
    adapted = adapt_producer(attrs, events, scope_name, start, end)
    fields = attrs
    if adapted is not None:
        attrs = attrs if adapted.decoded is None else adapted.decoded
        fields = adapted.view(attrs)
        start, end = adapted.start_ns or start, adapted.end_ns or end
        if adapted.content_event_prefix:
            events = [e for e in events if not e["name"].startswith(adapted.content_event_prefix)]
    ts = nanos_to_datetime(start)
    duration_ms = max(0.0, (end - start) / 1e6) if end else 0.0
    clamped = plausible_time(ts, received or datetime.now(tz=UTC))
    if clamped is not None:
        attrs[REFUSED_PREFIX + "ts"] = ts.isoformat()
        ts = clamped
    if duration_ms > _MAX_DURATION_MS:
        attrs[REFUSED_PREFIX + "duration_ms"] = duration_ms
        duration_ms = 0.0
    srec = SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=span.name,
        kind=SPAN_KINDS.get(span.kind, "internal"),
        ts=ts,
        duration_ms=duration_ms,
        status="error" if code == 2 else "ok",
        status_message=span.status.message or None,
        app=resource.app or to_str(attrs.get("gen_ai.application_name")),
        attributes={},
        events=[],
    )
    view, applied = registry.translate(fields, scope_name)
    operation = call_operation(view)
    if adapted is not None and adapted.is_call is not None:
        operation = (operation or "chat") if adapted.is_call else None
    hooked = producer_hooks.is_call(attrs)  # Vercel AI SDK: only its do* spans are calls
    if hooked is not None:
        operation = (operation or "chat") if hooked else None
    if operation is None or to_bool(attrs.get("gensight.via_gateway")):
        # Not an inference/embedding call (an agent, workflow, tool, retrieval … span),
        # or a Gensight SDK span of a call made through the Gensight gateway, whose
        # record (its child in the trace) is the call: a plain span.
        srec.attributes = attrs
        srec.events = events
        return srec, None

    call = _call_from_attrs(
        view, attrs, operation, events, resource, trace_id, span_id, parent, ts, duration_ms
    )
    call.producer = (
        producer_of(scope_name, {"telemetry.sdk.language": resource.language}) or resource.producer
    )
    if call.producer == "otel-genai" and call.provider in _OPENAI_FAMILY:
        call.producer = "openai-v2"
    for conv in applied:
        if conv.refine is not None:
            conv.refine(call, view)
        if call.producer == scope_name and scope_name:
            call.producer = conv.name
    if adapted is not None:
        call.producer = adapted.producer
        call.attributes = adapted.stored(attrs, _is_content_key)
    if code == 2 or "error.type" in view:
        _set_error(call, view, events, span.status.message)
    producer_hooks.refine(call, attrs, scope_name, span.status.message)
    refuse_implausible_call(call)
    srec.call_id = call.id
    srec.attributes = call.attributes
    # Exceptions stay visible on the span; content-bearing events live in the call.
    srec.events = [e for e in events if not e["name"].startswith("gen_ai.")]
    return srec, call


def _call_from_attrs(
    view: dict[str, Any],
    attrs: dict[str, Any],
    operation: str,
    events: list[dict[str, Any]],
    resource: Resource,
    trace_id: str,
    span_id: str,
    parent: str | None,
    ts: Any,
    duration_ms: float,
) -> CallRecord:
    """The CallRecord of an LLM-call span: fields read from ``view`` (the attributes
    plus what conventions translated), ``attrs`` (as sent) kept as its attributes."""
    f, has_content = collect(view)
    get = f.get
    if "invocation" in f:
        invocation = msg.parse_json(f["invocation"])
        if isinstance(invocation, dict):
            for name, keys in INVOCATION.items():
                if name not in f:
                    for k in keys:
                        if invocation.get(k) is not None:
                            f[name] = invocation[k]
                            break
            if "request_model" not in f and invocation.get("model"):
                f["request_model"] = invocation["model"]
            if "stream" not in f and invocation.get("stream") is not None:
                f["stream"] = invocation["stream"]

    if operation == "chat" and view.get("openai.api.type") == "responses":
        # the semconv says chat; the record names the API, as the gateway does
        operation = "responses"

    response_model = get("response_model")
    request_model = get("request_model")
    if "oi_model" in f:  # OpenInference: the model the response named
        response_model = response_model or f["oi_model"]
        request_model = request_model or f["oi_model"]

    stream = to_bool(get("stream"))
    ttft_s = to_float(get("ttft_s"))
    if stream is None:
        stream = ttft_s is not None  # a first-chunk time is only measured on a stream
    elif not stream:
        ttft_s = None  # OpenLIT reports a "first token" time for whole responses too

    input_tokens = to_int(get("input_tokens"))
    output_tokens = to_int(get("output_tokens"))
    if operation == "embeddings" and input_tokens is not None and output_tokens is None:
        output_tokens = 0

    server_address = to_str(get("server_address"))
    provider = normalize_provider(get("provider"))
    if provider in (None, "openai"):
        # OpenAI client instrumentations call every OpenAI-compatible service "openai";
        # the host says which one it was (the gateway and the SDK read it the same way).
        provider = provider_for_host(host_of(server_address)) or provider

    call = CallRecord(
        id=span_id,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        ts=ts,
        duration_ms=duration_ms,
        source="otlp",
        app=to_str(get("app")) or resource.app,
        environment=to_str(get("environment")) or resource.environment,
        provider=provider,
        operation=operation,
        request_model=to_str(request_model),
        response_model=to_str(response_model),
        response_id=to_str(get("response_id")),
        stream=bool(stream),
        ttft_ms=ttft_s * 1000.0 if ttft_s is not None else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=to_int(get("cache_read_tokens")),
        cache_write_tokens=to_int(get("cache_write_tokens")),
        reasoning_tokens=to_int(get("reasoning_tokens")),
        reported_cost_usd=to_float(get("reported_cost_usd")),
        finish_reasons=to_str_list(get("finish_reasons")),
        temperature=to_float(get("temperature")),
        top_p=to_float(get("top_p")),
        max_tokens=to_int(get("max_tokens")),
        frequency_penalty=to_float(get("frequency_penalty")),
        presence_penalty=to_float(get("presence_penalty")),
        seed=to_int(get("seed")),
        user=to_str(get("user")),
        session=to_str(get("session")),
        server_address=server_address,
        http_status=to_http_status(get("http_status")),
        upstream_request_id=to_str(get("upstream_request_id")),
    )
    if has_content or events:
        _set_messages(call, view, events)
        call.attributes = {k: v for k, v in attrs.items() if not is_content_key(k)}
    else:
        call.attributes = attrs  # secrets are masked in the pipeline, for every path
    return call


def _set_messages(call: CallRecord, attrs: dict[str, Any], events: list[dict[str, Any]]) -> None:
    inp = msg.messages_from_value(attrs.get("gen_ai.input.messages"), "user")
    out = msg.messages_from_value(attrs.get("gen_ai.output.messages"), "assistant")
    system = msg.messages_from_value(attrs.get("gen_ai.system_instructions"), "system")
    if inp is None:
        inp = msg.traceloop_messages(attrs, "gen_ai.prompt") or msg.openinference_messages(
            attrs, "llm.input_messages"
        )
    if out is None:
        out = msg.traceloop_messages(attrs, "gen_ai.completion") or msg.openinference_messages(
            attrs, "llm.output_messages"
        )
    # OpenLIT and older semconv: whole prompt/completion as text, on the span or its events.
    prompt = attrs.get("gen_ai.prompt")
    completion = attrs.get("gen_ai.completion")
    for e in events:
        ea = e["attributes"]
        if e["name"] in ("gen_ai.content.prompt", "gen_ai.prompt") and prompt is None:
            prompt = ea.get("gen_ai.prompt")
        elif e["name"] in ("gen_ai.content.completion", "gen_ai.completion") and completion is None:
            completion = ea.get("gen_ai.completion")
    if inp is None:
        inp = msg.openlit_messages(prompt, "user")
    if out is None:
        out = msg.openlit_messages(completion, "assistant")
    # OpenInference without per-message attributes: the raw request/response bodies.
    if inp is None and "input.value" in attrs:
        body = msg.parse_json(attrs["input.value"])
        if isinstance(body, dict) and isinstance(body.get("messages"), list):
            inp = msg.messages_from_value(body["messages"], "user")
        elif isinstance(body, dict) and "input" in body:
            inp = msg.messages_from_value(body["input"], "user")
        else:
            inp = msg.messages_from_value(body, "user")
    if out is None and "output.value" in attrs:
        body = msg.parse_json(attrs["output.value"])
        if isinstance(body, dict) and isinstance(body.get("choices"), list):
            choices = [c for c in body["choices"] if isinstance(c, dict)]
            out = [msg.normalize_message(c, "assistant") for c in choices]
        elif call.operation != "embeddings":
            out = msg.messages_from_value(body, "assistant")
    inp, out, system = msg.drop_empty(inp), msg.drop_empty(out), msg.drop_empty(system)
    if system and inp:
        # OpenLIT sends the system prompt both ways; show it once.
        in_system = {m.get("content") for m in inp if m.get("role") == "system"}
        if all(m.get("content") in in_system for m in system):
            system = None
    call.input_messages = inp
    call.output_messages = out
    call.system_instructions = system
    if not call.finish_reasons and out:
        call.finish_reasons = [m["finish_reason"] for m in out if m.get("finish_reason")]


def _set_error(
    call: CallRecord,
    attrs: dict[str, Any],
    events: Iterable[dict[str, Any]],
    status_message: str | None,
) -> None:
    call.status = "error"
    error_type = attrs.get("error.type")
    message = status_message or None
    for e in events:
        if e["name"] == "exception":
            ea = e["attributes"]
            error_type = (
                error_type if error_type not in (None, "_OTHER") else ea.get("exception.type")
            )
            error_type = error_type or ea.get("exception.type")
            message = to_str(ea.get("exception.message")) or message
            break
    if call.http_status is None:
        call.http_status = status_from_text(str(error_type) if error_type else None) or (
            status_from_text(message)
        )
    call.error_class = classify(
        call.http_status, str(error_type) if error_type is not None else None, message
    )
    call.error_message = message or (str(error_type) if error_type else None)
