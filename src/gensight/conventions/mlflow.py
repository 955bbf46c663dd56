"""MLflow tracing (``mlflow.<flavor>.autolog()`` exporting OTLP) → the common keys.

What MLflow 3 sends (checked against mlflow-tracing 3.17, ``mlflow.openai.autolog()``):
every span carries ``mlflow.spanType`` (``CHAT_MODEL``, ``LLM``, ``EMBEDDING`` for model
calls; ``AGENT``, ``CHAIN``, ``TOOL``, ``RETRIEVER``, ``UNKNOWN`` … for the rest) and
``mlflow.spanInputs``/``mlflow.spanOutputs`` as JSON strings: the request's keyword
arguments and the provider's response object. ``mlflow.llm.model`` is the response's
model, ``mlflow.chat.tokenUsage`` the usage (``{"input_tokens", "output_tokens",
"total_tokens", "cache_read_input_tokens"}``; absent on embeddings, whose usage is in the
outputs), ``mlflow.message.format`` the wire format (``openai``, ``anthropic``, …), which
is the best provider hint it gives (``mlflow.llm.provider`` where set). A stream's
chunks arrive as span events ``mlflow.chunk.item.N``: the first one's time is the TTFT.
Errors are the span status plus an ``exception`` event, as in plain OTel.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import orjson

from gensight.conventions.adapters import Adapted, as_dict, request_fields, usage_fields
from gensight.conventions.otlp_values import nanos_to_datetime

SPAN_TYPE = "mlflow.spanType"
INPUTS = "mlflow.spanInputs"
OUTPUTS = "mlflow.spanOutputs"
_CHUNK = "mlflow.chunk.item."
#: MLflow span types that are a model call; every other type is a plain span
_CALL_TYPES = frozenset({"CHAT_MODEL", "LLM", "EMBEDDING"})
#: ``object`` of OpenAI's response bodies: the wire format, as ``mlflow.message.format`` says
_OPENAI_OBJECTS = frozenset({"list", "chat.completion", "text_completion", "response"})


def decode(attrs: dict[str, Any]) -> dict[str, Any]:
    """MLflow's attributes as values: it writes each one as JSON (a model name arrives as
    ``"gpt-4o-mini"`` with its quotes, a temperature as ``0.2``, usage as an object)."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, str) and value:
            # a value some other code set as plain text stays as it is
            with contextlib.suppress(orjson.JSONDecodeError):
                value = orjson.loads(value)
        out[key] = value
    return out


def _operation(span_type: str, inputs: dict[str, Any]) -> str:
    if span_type == "EMBEDDING":
        return "embeddings"
    if "messages" in inputs:
        return "chat"
    if "prompt" in inputs:
        return "text_completion"
    if "input" in inputs:  # OpenAI Responses API: client.responses.create(input=...)
        return "responses"
    return "chat"


def _first_chunk_s(events: list[dict[str, Any]], start_ns: int) -> float | None:
    """Seconds from the span's start to its first stream chunk event."""
    first = next((e["ts"] for e in events if e["name"].startswith(_CHUNK)), None)
    if first is None:
        return None
    seconds = (datetime.fromisoformat(first) - nanos_to_datetime(start_ns)).total_seconds()
    return seconds if seconds >= 0 else None


def _output_messages(outputs: dict[str, Any]) -> list[Any] | None:
    choices = outputs.get("choices")
    if isinstance(choices, list):  # OpenAI chat: choices[].message (+ finish_reason)
        return [c for c in choices if isinstance(c, dict)]
    if outputs.get("type") == "message" and "content" in outputs:  # Anthropic Messages
        return [{"role": outputs.get("role", "assistant"), "content": outputs["content"],
                 "finish_reason": outputs.get("stop_reason")}]  # fmt: skip
    return None


def adapt(
    attrs: dict[str, Any], events: list[dict[str, Any]], scope_name: str, start_ns: int, end_ns: int
) -> Adapted | None:
    """An MLflow span's call fields, or None when the span is not MLflow's."""
    if SPAN_TYPE not in attrs:
        return None
    attrs = decode(attrs)
    span_type = str(attrs.get(SPAN_TYPE)).upper()
    keys = frozenset({INPUTS, OUTPUTS})
    if span_type not in _CALL_TYPES:
        # agents, chains, tools, retrievers: spans, whatever usage they aggregate
        return Adapted(producer="mlflow", is_call=False, content_keys=keys, decoded=attrs)
    inputs = as_dict(attrs.get(INPUTS))
    outputs = as_dict(attrs.get(OUTPUTS))
    operation = _operation(span_type, inputs)
    f: dict[str, Any] = {"gen_ai.operation.name": operation, **request_fields(inputs)}
    if isinstance(attrs.get("model"), str):  # the request's model, set as its own attribute
        f.setdefault("gen_ai.request.model", attrs["model"])
    provider = attrs.get("mlflow.llm.provider") or attrs.get("mlflow.message.format")
    obj = outputs.get("object")
    if not provider and isinstance(obj, str) and obj in _OPENAI_OBJECTS:
        provider = "openai"  # an OpenAI-shaped response (embeddings carry no format key)
    if provider:
        f["gen_ai.provider.name"] = provider
    response_model = attrs.get("mlflow.llm.model") or outputs.get("model")
    if response_model:
        f["gen_ai.response.model"] = response_model
    if isinstance(outputs.get("id"), str):
        f["gen_ai.response.id"] = outputs["id"]
    usage = as_dict(attrs.get("mlflow.chat.tokenUsage")) or as_dict(outputs.get("usage"))
    f.update(usage_fields(usage))
    cost = as_dict(attrs.get("mlflow.llm.cost"))
    if isinstance(cost.get("total_cost"), int | float):
        f["gen_ai.usage.cost"] = cost["total_cost"]
    ttft = _first_chunk_s(events, start_ns)
    if ttft is not None:
        f["gen_ai.response.time_to_first_chunk"] = ttft
        f.setdefault("gen_ai.request.stream", True)
    if operation != "embeddings":
        if isinstance(inputs.get("messages"), list):
            f["gen_ai.input.messages"] = inputs["messages"]
        elif isinstance(inputs.get("input"), list | str):
            f["gen_ai.input.messages"] = inputs["input"]
        out = _output_messages(outputs)
        if out is not None:
            f["gen_ai.output.messages"] = out
            reasons = [c.get("finish_reason") for c in out if c.get("finish_reason")]
            if reasons:
                f["gen_ai.response.finish_reasons"] = reasons
    return Adapted(
        producer="mlflow",
        fields=f,
        is_call=True,
        content_keys=keys,
        content_event_prefix=_CHUNK,
        decoded=attrs,
    )
