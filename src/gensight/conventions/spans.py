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

import math
from collections.abc import Iterable
from typing import Any

import orjson

from gensight.conventions import messages as msg
from gensight.conventions import producer_hooks
from gensight.conventions.errors import classify, status_from_text
from gensight.conventions.otlp_values import (
    SPAN_KINDS,
    attributes,
    hex_id,
    nanos_to_datetime,
)
from gensight.model.records import CallRecord, SpanRecord

# Attributes whose content lands in the record's message fields; not repeated in attributes.
_CONTENT_KEYS = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",
        "gen_ai.completion",
        "input.value",
        "output.value",
    }
)
_CONTENT_PREFIXES = (
    "embedding.embeddings.",  # OpenInference: embedded texts (content) and vectors (bulk)
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
)

_OPERATION_ALIASES = {
    "embedding": "embeddings",
    "completion": "text_completion",
    "completions": "text_completion",
    "chat_completion": "chat",
    "chat.completions": "chat",
    "response": "responses",
    "rerank": "rerank",
}

_PROVIDER_ALIASES = {
    "azure": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azureopenai": "azure.ai.openai",
    "az.ai.openai": "azure.ai.openai",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "moonshot": "moonshot_ai",
    "moonshotai": "moonshot_ai",
    "xai": "x_ai",
    "google": "gcp.gen_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
}

_OPENAI_FAMILY = frozenset({"openai", "azure.ai.openai"})

_OPENINFERENCE_LLM_KINDS = {"LLM": "chat", "EMBEDDING": "embeddings"}


def _first(attrs: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v
    return None


_INT64 = (-(2**63), 2**63 - 1)


def _int(v: Any) -> int | None:
    """An integer field (a 64-bit column): None when absent, not a number or out of range."""
    if v is None or isinstance(v, bool):
        return None
    try:
        n = int(v)
    except (TypeError, ValueError, OverflowError):
        try:
            n = int(float(v))
        except (TypeError, ValueError, OverflowError):  # "inf" overflows
            return None
    return n if _INT64[0] <= n <= _INT64[1] else None


def _float(v: Any) -> float | None:
    """A float field: None when absent, not a number, NaN or infinite (JSON has neither)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _http_status(v: Any) -> int | None:
    n = _int(v)
    return n if n is not None and 100 <= n <= 999 else None


def _str(v: Any) -> str | None:
    """A text field: producers may send any type (an int ``service.name``, a list model)."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list | dict):
        try:
            return orjson.dumps(v, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # nested deeper than JSON writers go
            pass
    return str(v)


def _bool(v: Any) -> bool | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)


def _str_list(v: Any) -> list[str]:
    v = msg.parse_json(v)
    if v is None:
        return []
    if isinstance(v, list | tuple):
        return [str(x) for x in v if x is not None]
    return [str(v)]


def normalize_provider(value: Any) -> str | None:
    """A provider name in ``gen_ai.provider.name`` spelling (openai, azure.ai.openai, …)."""
    if value is None:
        return None
    p = str(value).strip().lower()
    return _PROVIDER_ALIASES.get(p, p) or None


def normalize_operation(value: Any) -> str | None:
    """An operation name in ``gen_ai.operation.name`` spelling (chat, embeddings, …)."""
    if value is None:
        return None
    op = str(value).strip().lower()
    return _OPERATION_ALIASES.get(op, op) or None


def is_llm_span(attrs: dict[str, Any]) -> bool:
    """Whether a span's attributes describe an LLM call (any convention)."""
    kind = attrs.get("openinference.span.kind")
    if kind is not None:
        return str(kind).upper() in _OPENINFERENCE_LLM_KINDS
    tl_kind = attrs.get("traceloop.span.kind")
    if tl_kind is not None and str(tl_kind).lower() in ("workflow", "task", "agent", "tool"):
        return False
    return (
        "gen_ai.operation.name" in attrs
        or "gen_ai.request.model" in attrs
        or "gen_ai.provider.name" in attrs
        or "gen_ai.system" in attrs
        or "llm.request.type" in attrs
    )


def _is_content_key(key: str) -> bool:
    return key in _CONTENT_KEYS or key.startswith(_CONTENT_PREFIXES)


class Resource:
    """The fields a span's resource (and scope) contributes to its records."""

    __slots__ = ("app", "environment", "producer")

    def __init__(self, attrs: dict[str, Any], scope_name: str = "") -> None:
        service = attrs.get("service.name")
        if isinstance(service, str) and service.startswith("unknown_service"):
            service = None
        self.app = _str(service or attrs.get("gen_ai.application_name"))
        self.environment = _str(
            _first(
                attrs, "deployment.environment.name", "deployment.environment", "gen_ai.environment"
            )
        )
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
    sdk = resource_attrs.get("telemetry.sdk.name")
    if sdk == "openlit":
        return "openlit"
    return scope_name or None


def span_to_records(
    span: Any, resource: Resource, scope_name: str = ""
) -> tuple[SpanRecord, CallRecord | None]:
    """One OTLP protobuf ``Span`` as its SpanRecord and, for an LLM call, its CallRecord."""
    attrs = attributes(span.attributes)
    trace_id = hex_id(span.trace_id)
    span_id = hex_id(span.span_id)
    if trace_id is None or span_id is None:
        raise ValueError("span without a valid trace_id/span_id")
    start = span.start_time_unix_nano
    end = span.end_time_unix_nano
    ts = nanos_to_datetime(start)
    duration_ms = max(0.0, (end - start) / 1e6) if end else 0.0
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
        app=resource.app or _str(attrs.get("gen_ai.application_name")),
        attributes={},
        events=[],
    )
    is_call = producer_hooks.is_call(attrs)
    if is_call is None:
        is_call = is_llm_span(attrs)
    if not is_call or _bool(attrs.get("gensight.via_gateway")):
        # A Gensight SDK span of a call made through the Gensight gateway: the gateway's
        # record (its child in the trace) is the call; this span stays a plain span.
        srec.attributes = attrs
        srec.events = events
        return srec, None

    call = _call_from_attrs(attrs, events, resource, trace_id, span_id, parent, ts, duration_ms)
    call.producer = producer_of(scope_name, {}) or resource.producer
    if call.producer == "otel-genai" and call.provider in _OPENAI_FAMILY:
        call.producer = "openai-v2"
    if code == 2 or "error.type" in attrs:
        _set_error(call, attrs, events, span.status.message)
    producer_hooks.refine(call, attrs, scope_name, span.status.message)
    srec.call_id = call.id
    srec.attributes = call.attributes
    # Exceptions stay visible on the span; content-bearing events live in the call.
    srec.events = [e for e in events if not e["name"].startswith("gen_ai.")]
    return srec, call


#: Record field ← attribute keys of every convention, in order of precedence.
_FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "operation": ("gen_ai.operation.name", "llm.request.type"),
    "response_model": ("gen_ai.response.model", "llm.response.model", "embedding.model_name"),
    "request_model": ("gen_ai.request.model", "llm.request.model"),
    "oi_model": ("llm.model_name",),
    "invocation": ("llm.invocation_parameters", "embedding.invocation_parameters"),
    "stream": (
        "gen_ai.request.stream",
        "gen_ai.request.is_stream",
        "gen_ai.is_streaming",
        "llm.is_streaming",
    ),
    "ttft_s": (
        "gen_ai.response.time_to_first_chunk",
        "gen_ai.server.time_to_first_token",
        "llm.chat.stream.time_to_first_token",
    ),
    "input_tokens": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "cache_read_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "gen_ai.usage.cached_tokens",
        "llm.token_count.prompt_details.cache_read",
    ),
    "cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_write.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "gen_ai.usage.completion_tokens_details.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
    "reported_cost_usd": ("gen_ai.usage.cost", "llm.cost.total"),
    "finish_reasons": ("gen_ai.response.finish_reasons", "llm.finish_reason"),
    "temperature": ("gen_ai.request.temperature",),
    "top_p": ("gen_ai.request.top_p",),
    "max_tokens": ("gen_ai.request.max_tokens",),
    "frequency_penalty": ("gen_ai.request.frequency_penalty",),
    "presence_penalty": ("gen_ai.request.presence_penalty",),
    "seed": ("gen_ai.request.seed", "gen_ai.openai.request.seed"),
    "user": (
        "user.id",
        "enduser.id",
        "gen_ai.request.user",
        "gen_ai.openai.request.user",
        "traceloop.association.properties.user_id",
    ),
    "session": (
        "session.id",
        "gen_ai.conversation.id",
        "traceloop.association.properties.session_id",
    ),
    "server_address": ("server.address", "gen_ai.endpoint"),
    "http_status": ("http.response.status_code", "http.status_code"),
    "provider": ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
    "app": ("gen_ai.application_name",),
    "environment": ("gen_ai.environment", "deployment.environment.name"),
    "response_id": ("gen_ai.response.id", "llm.response.id"),
    "oi_kind": ("openinference.span.kind",),
}
_ALIASES: dict[str, tuple[str, int]] = {
    key: (name, rank) for name, keys in _FIELD_KEYS.items() for rank, key in enumerate(keys)
}
#: Parameters OpenInference keeps only inside ``llm.invocation_parameters``.
_INVOCATION = {
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "max_tokens": ("max_completion_tokens", "max_tokens"),
    "frequency_penalty": ("frequency_penalty",),
    "presence_penalty": ("presence_penalty",),
    "seed": ("seed",),
    "user": ("user",),
}


def _collect(attrs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """One pass over the attributes: each field's winning value, and whether any key
    carries message content."""
    found: dict[str, tuple[int, Any]] = {}
    content = False
    aliases = _ALIASES
    for key, value in attrs.items():
        alias = aliases.get(key)
        if alias is None:
            if not content and (key in _CONTENT_KEYS or key.startswith(_CONTENT_PREFIXES)):
                content = True
            continue
        if value is None or value == "":
            continue
        name, rank = alias
        current = found.get(name)
        if current is None or rank < current[0]:
            found[name] = (rank, value)
    return {name: v for name, (_, v) in found.items()}, content


def _call_from_attrs(
    attrs: dict[str, Any],
    events: list[dict[str, Any]],
    resource: Resource,
    trace_id: str,
    span_id: str,
    parent: str | None,
    ts: Any,
    duration_ms: float,
) -> CallRecord:
    f, has_content = _collect(attrs)
    get = f.get
    if "invocation" in f:
        invocation = msg.parse_json(f["invocation"])
        if isinstance(invocation, dict):
            for name, keys in _INVOCATION.items():
                if name not in f:
                    for k in keys:
                        if invocation.get(k) is not None:
                            f[name] = invocation[k]
                            break
            if "request_model" not in f and invocation.get("model"):
                f["request_model"] = invocation["model"]
            if "stream" not in f and invocation.get("stream") is not None:
                f["stream"] = invocation["stream"]

    operation = normalize_operation(get("operation"))
    if operation is None and "oi_kind" in f:
        operation = _OPENINFERENCE_LLM_KINDS.get(str(f["oi_kind"]).upper())
    if operation is None:
        operation = "chat"
    if operation == "chat" and attrs.get("openai.api.type") == "responses":
        operation = (
            "responses"  # the semconv says chat; the record names the API, as the gateway does
        )

    response_model = get("response_model")
    request_model = get("request_model")
    if "oi_model" in f:  # OpenInference: the model the response named
        response_model = response_model or f["oi_model"]
        request_model = request_model or f["oi_model"]

    stream = _bool(get("stream"))
    ttft_s = _float(get("ttft_s"))
    if stream is None:
        stream = ttft_s is not None
    elif not stream:
        ttft_s = None  # OpenLIT reports a "first token" time for whole responses too

    input_tokens = _int(get("input_tokens"))
    output_tokens = _int(get("output_tokens"))
    if operation == "embeddings" and input_tokens is not None and output_tokens is None:
        output_tokens = 0

    call = CallRecord(
        id=span_id,
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        ts=ts,
        duration_ms=duration_ms,
        source="otlp",
        app=_str(get("app")) or resource.app,
        environment=_str(get("environment")) or resource.environment,
        provider=normalize_provider(get("provider")),
        operation=operation,
        request_model=_str(request_model),
        response_model=_str(response_model),
        response_id=_str(get("response_id")),
        stream=bool(stream),
        ttft_ms=ttft_s * 1000.0 if ttft_s is not None else None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=_int(get("cache_read_tokens")),
        cache_write_tokens=_int(get("cache_write_tokens")),
        reasoning_tokens=_int(get("reasoning_tokens")),
        reported_cost_usd=_float(get("reported_cost_usd")),
        finish_reasons=_str_list(get("finish_reasons")),
        temperature=_float(get("temperature")),
        top_p=_float(get("top_p")),
        max_tokens=_int(get("max_tokens")),
        frequency_penalty=_float(get("frequency_penalty")),
        presence_penalty=_float(get("presence_penalty")),
        seed=_int(get("seed")),
        user=_str(get("user")),
        session=_str(get("session")),
        server_address=_str(get("server_address")),
        http_status=_http_status(get("http_status")),
    )
    if has_content or events:
        _set_messages(call, attrs, events)
        call.attributes = {k: v for k, v in attrs.items() if not _is_content_key(k)}
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
            message = _str(ea.get("exception.message")) or message
            break
    if call.http_status is None:
        call.http_status = status_from_text(str(error_type) if error_type else None) or (
            status_from_text(message)
        )
    call.error_class = classify(
        call.http_status, str(error_type) if error_type is not None else None, message
    )
    call.error_message = message or (str(error_type) if error_type else None)
