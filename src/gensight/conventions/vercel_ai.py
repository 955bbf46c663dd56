"""The Vercel AI SDK's telemetry (``ai`` on Node, ``experimental_telemetry``): ``ai.*`` spans.

What the SDK (``ai`` 7 with ``@ai-sdk/otel``'s ``LegacyOpenTelemetry``, the same spans
``ai`` 4–6 emit built in) sends, every span with ``ai.operationId``:

* an outer span per SDK function — ``ai.generateText``, ``ai.streamText``,
  ``ai.generateObject``, ``ai.streamObject``, ``ai.embed``, ``ai.embedMany`` — carrying the
  usage *summed over its steps*; it is a span, never a call (counting it would count every
  model call twice);
* one span per model call below it — ``ai.generateText.doGenerate``,
  ``ai.streamText.doStream``, ``ai.generateObject.doGenerate``, ``ai.streamObject.doStream``,
  ``ai.embed.doEmbed``, ``ai.embedMany.doEmbed`` — the calls;
* ``ai.toolCall`` per tool execution (``ai.toolCall.name|id|args|result``): a span.

A call's fields: ``ai.model.id`` (request model), ``ai.model.provider`` (``openai.chat``,
``openai.responses``, ``anthropic.messages``, ``azure.chat``… → the part before the dot),
``ai.response.model``, ``ai.response.id``, ``ai.usage.inputTokens|outputTokens`` (``ai`` ≥ 5;
``promptTokens|completionTokens`` before), ``ai.usage.cachedInputTokens`` /
``ai.usage.inputTokenDetails.cacheReadTokens|cacheWriteTokens``, ``ai.usage.reasoningTokens``,
``ai.usage.tokens`` (embeddings), ``ai.response.msToFirstChunk`` (streams, ms),
``ai.response.finishReason`` (``stop``, ``tool-calls``, ``length``…), ``ai.settings.*`` (request
parameters), content in ``ai.prompt.messages`` (JSON, parts ``text``/``tool-call``/
``tool-result``), ``ai.response.text``, ``ai.response.toolCalls``, ``ai.values`` (embedded
texts). The do* spans also carry a few ``gen_ai.*`` keys (``gen_ai.system`` is then the
``ai.model.provider`` value, ``openai.chat``), which this module overrides.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from gensight.conventions import messages as msg
from gensight.conventions.errors import classify
from gensight.model.records import CallRecord

#: model-call spans, by operation id → operation
CALL_OPERATIONS: dict[str, str] = {
    "ai.generateText.doGenerate": "chat",
    "ai.streamText.doStream": "chat",
    "ai.generateObject.doGenerate": "chat",
    "ai.streamObject.doStream": "chat",
    "ai.embed.doEmbed": "embeddings",
    "ai.embedMany.doEmbed": "embeddings",
}
#: ai.* provider prefix → gen_ai.provider.name spelling, where they differ
_PROVIDERS = {
    "azure": "azure.ai.openai",
    "google": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "google-vertex": "gcp.vertex_ai",
    "amazon-bedrock": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "moonshotai": "moonshot_ai",
}
#: attributes whose value is message content: they land in the message fields only
CONTENT_KEYS = frozenset(
    {
        "ai.prompt",
        "ai.prompt.messages",
        "ai.response.text",
        "ai.response.toolCalls",
        "ai.response.object",
        "ai.response.reasoning",
        "ai.values",
        "ai.value",
        "ai.embeddings",
        "ai.embedding",
        "ai.toolCall.args",
        "ai.toolCall.result",
    }
)
_SETTINGS = {
    "temperature": ("ai.settings.temperature", float),
    "top_p": ("ai.settings.topP", float),
    "max_tokens": ("ai.settings.maxOutputTokens", int),
    "frequency_penalty": ("ai.settings.frequencyPenalty", float),
    "presence_penalty": ("ai.settings.presencePenalty", float),
    "seed": ("ai.settings.seed", int),
}


def is_vercel_span(attrs: dict[str, Any]) -> bool:
    """Whether the span is one of the AI SDK's ``ai.*`` spans."""
    op = attrs.get("ai.operationId")
    return isinstance(op, str) and op.startswith("ai.")


def is_call(attrs: dict[str, Any]) -> bool:
    """Whether an ``ai.*`` span is a model call (a do* span), not a function or tool span."""
    return attrs.get("ai.operationId") in CALL_OPERATIONS


def provider_of(value: Any) -> str | None:
    """``openai.chat`` → ``openai``; ``azure.responses`` → ``azure.ai.openai``."""
    if not isinstance(value, str) or not value.strip():
        return None
    head = value.strip().lower().split(".", 1)[0]
    return _PROVIDERS.get(head, head)


def _first(attrs: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def _text(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, list | dict):
        return None
    return str(value)


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return n if 0 <= n < 2**63 else None  # a 64-bit column; negative counts mean nothing


#: The tracer name of ``@ai-sdk/otel``'s ``OpenTelemetry`` integration (``ai`` 7), which
#: emits GenAI-semconv spans (``invoke_agent`` > ``agent_step`` > ``chat``, ``embeddings``
#: inside ``embeddings``, ``execute_tool``) that the generic mapper reads; only the finish
#: reasons keep the SDK's dashed spelling.
OTEL_SCOPE = "gen_ai"


def refine_otel(call: CallRecord) -> None:
    """A call from the ``@ai-sdk/otel`` integration: finish reasons in the record's words."""
    call.finish_reasons = [_finish_reason(r) for r in call.finish_reasons or []]


def _finish_reason(value: str) -> str:
    # the AI SDK spells them with dashes (tool-calls, content-filter); the record uses
    # OpenAI's spelling, as the gateway does
    return value.replace("-", "_")


def _prompt_messages(value: Any) -> list[dict[str, Any]] | None:
    items = msg.parse_json(value)
    if not isinstance(items, list):
        return None
    out: list[dict[str, Any]] = []
    for m in items:
        if not isinstance(m, dict):
            continue
        content = m.get("content")
        if not isinstance(content, list):
            out.append(
                {"role": m.get("role"), "content": content if content is None else str(content)}
            )
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        message: dict[str, Any] = {"role": m.get("role")}
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("text") or ""))
            elif kind == "tool-call":
                calls.append(_tool_call(part))
            elif kind == "tool-result":
                message["tool_call_id"] = part.get("toolCallId")
                result = part.get("output", part.get("result"))
                if isinstance(result, dict) and "value" in result:  # {"type": "text", "value"}
                    result = result["value"]
                texts.append(result if isinstance(result, str) else msg._json(result))
        message["content"] = "\n".join(texts) if texts else None
        if calls:
            message["tool_calls"] = calls
        out.append(message)
    return out or None


def _tool_call(part: dict[str, Any]) -> dict[str, Any]:
    args = part.get("input", part.get("args"))
    return {
        "id": _text(part.get("toolCallId")),
        "name": _text(part.get("toolName")),
        "arguments": args if isinstance(args, str) or args is None else msg._json(args),
    }


def _output_messages(attrs: dict[str, Any], finish: list[str]) -> list[dict[str, Any]] | None:
    text = attrs.get("ai.response.text")
    calls = msg.parse_json(attrs.get("ai.response.toolCalls"))
    if text is None and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if isinstance(calls, list) and calls:
        message["tool_calls"] = [_tool_call(c) for c in calls if isinstance(c, dict)]
    if finish:
        message["finish_reason"] = finish[0]
    return [message]


def refine(call: CallRecord, attrs: dict[str, Any]) -> None:
    """Fill ``call`` (mapped by the generic mapper from the few ``gen_ai.*`` keys) from ``ai.*``."""
    op_id = attrs.get("ai.operationId")
    call.producer = "vercel-ai"
    call.operation = CALL_OPERATIONS.get(str(op_id), call.operation)
    call.provider = provider_of(attrs.get("ai.model.provider")) or call.provider
    call.request_model = _text(attrs.get("ai.model.id")) or call.request_model
    call.response_model = _text(attrs.get("ai.response.model")) or call.response_model
    call.response_id = _text(attrs.get("ai.response.id")) or call.response_id
    stream = str(op_id).endswith(".doStream")
    call.stream = stream
    ttft = _first(attrs, "ai.response.msToFirstChunk", "ai.stream.msToFirstChunk")
    finite = isinstance(ttft, int | float) and not isinstance(ttft, bool) and math.isfinite(ttft)
    if stream and finite and ttft >= 0:
        call.ttft_ms = float(ttft)
    usage = {
        "input_tokens": ("ai.usage.inputTokens", "ai.usage.promptTokens", "ai.usage.tokens"),
        "output_tokens": ("ai.usage.outputTokens", "ai.usage.completionTokens"),
        "cache_read_tokens": (
            "ai.usage.inputTokenDetails.cacheReadTokens",
            "ai.usage.cachedInputTokens",
        ),
        "cache_write_tokens": ("ai.usage.inputTokenDetails.cacheWriteTokens",),
        "reasoning_tokens": (
            "ai.usage.outputTokenDetails.reasoningTokens",
            "ai.usage.reasoningTokens",
        ),
    }
    for field, keys in usage.items():
        value = _int(_first(attrs, *keys))
        if value is not None:
            setattr(call, field, value)
    if call.operation == "embeddings" and call.input_tokens is not None:
        call.output_tokens = call.output_tokens or 0
    for field, (key, kind) in _SETTINGS.items():
        value = attrs.get(key)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if getattr(call, field) is None and number and math.isfinite(value) and abs(value) < 2**63:
            setattr(call, field, kind(value))
    reason = attrs.get("ai.response.finishReason")
    if isinstance(reason, str) and reason:
        call.finish_reasons = [_finish_reason(reason)]
    elif call.finish_reasons:
        call.finish_reasons = [_finish_reason(r) for r in call.finish_reasons]
    if call.status == "error" and call.error_class in (None, "unknown") and call.error_message:
        # AI_APICallError names no status; its message's first sentence says what it was
        call.error_class = classify(None, None, call.error_message.split(". ", 1)[0])
    _set_content(call, attrs)


def _set_content(call: CallRecord, attrs: dict[str, Any]) -> None:
    if not any(k in attrs for k in CONTENT_KEYS):
        return
    if call.operation == "embeddings":
        values = attrs.get("ai.values", attrs.get("ai.value"))
        if values is not None:
            texts = values if isinstance(values, list) else [values]  # each a JSON text
            call.input_messages = [{"role": "user", "content": _json_text(t)} for t in texts]
    else:
        call.input_messages = _prompt_messages(attrs.get("ai.prompt.messages"))
        call.output_messages = _output_messages(attrs, call.finish_reasons)
    call.attributes = {k: v for k, v in call.attributes.items() if k not in CONTENT_KEYS}


def _json_text(value: Any) -> str:
    """An embedded value as text: the SDK sends each one JSON-encoded (``'"query"'``)."""
    if isinstance(value, str) and value[:1] == '"':
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
        return decoded if isinstance(decoded, str) else value
    return value if isinstance(value, str) else msg._json(value)
