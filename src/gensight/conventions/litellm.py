"""litellm's OTel callback (``litellm.callbacks = ["otel"]``) → the common keys.

What it sends (checked against litellm 1.110, ``litellm/integrations/opentelemetry.py``):
one ``litellm_request`` span per call (scope ``litellm``, or ``OTEL_TRACER_NAME``) with
OpenLLMetry-style keys: ``llm.request.type`` is litellm's *function* name
(``completion``/``acompletion`` are chats, ``embedding``, ``text_completion``,
``responses``, ``image_generation``, ``transcription`` …), ``gen_ai.system`` the
provider (empty for embeddings), ``litellm.provider.model`` the routed model, with the
provider as its prefix only when the caller wrote one (``openai/gpt-4o-mini``),
``llm.is_streaming``, ``gen_ai.usage.*``, ``gen_ai.cost.total_cost`` (litellm's own
price), ``gen_ai.response.id`` (litellm's call id when the provider gave none: an
embedding, a failure), ``http.response.status_code`` and ``error.type`` on failures.
With content on, ``gen_ai.input.messages``/``gen_ai.output.messages`` in semconv form,
except that a tool call leaves the output message's ``parts`` empty and goes to
``gen_ai.completion.N.function_call.{name,arguments}``. A ``raw_gen_ai_request`` child
(``llm.<provider>.*`` keys) repeats the raw request: it stays a span.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gensight.conventions.adapters import Adapted, as_dict
from gensight.conventions.messages import indexed_groups, parse_json

#: litellm function → operation; functions not listed (images, audio, moderation,
#: rerank, files, batches …) are not inference calls
_REQUEST_TYPES = {
    "completion": "chat",
    "acompletion": "chat",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "text_completion": "text_completion",
    "atext_completion": "text_completion",
    "responses": "responses",
    "aresponses": "responses",
}


def _provider(attrs: dict[str, Any], hidden: dict[str, Any]) -> str | None:
    for routed in (attrs.get("litellm.provider.model"), hidden.get("litellm_model_name")):
        if isinstance(routed, str) and "/" in routed:
            return routed.split("/", 1)[0]
    return (
        attrs.get("gen_ai.provider.name")
        or attrs.get("gen_ai.system")
        or (attrs.get("error.llm_provider"))
    )


def _tool_calls(attrs: dict[str, Any]) -> dict[int, list[dict[str, Any]]]:
    """``gen_ai.completion.N.function_call.*`` (and ``.tool_calls.M.*``) per choice N."""
    out: dict[int, list[dict[str, Any]]] = {}
    for i, group in enumerate(indexed_groups(attrs, "gen_ai.completion")):
        calls = []
        fn = {k.split(".", 1)[1]: v for k, v in group.items() if k.startswith("function_call.")}
        if fn.get("name"):
            calls.append({"id": fn.get("id"), "name": fn["name"],
                          "arguments": fn.get("arguments")})  # fmt: skip
        for tc in indexed_groups(group, "tool_calls"):
            name = tc.get("name") or tc.get("function.name")
            if name:
                args = tc.get("arguments") or tc.get("function.arguments")
                calls.append({"id": tc.get("id"), "name": name, "arguments": args})
        if calls:
            out[i] = calls
    return out


def _output_messages(attrs: dict[str, Any]) -> list[Any] | None:
    """The output messages, with tool calls restored where ``parts`` came out empty."""
    calls = _tool_calls(attrs)
    if not calls:
        return None
    value = parse_json(attrs.get("gen_ai.output.messages"))
    messages = [dict(m) for m in value if isinstance(m, dict)] if isinstance(value, list) else []
    for i, tcs in calls.items():
        while len(messages) <= i:
            messages.append({"role": "assistant", "parts": []})
        parts = messages[i].get("parts")
        parts = list(parts) if isinstance(parts, list) else []
        if not any(isinstance(p, dict) and p.get("type") == "tool_call" for p in parts):
            parts += [{"type": "tool_call", **tc} for tc in tcs]
        messages[i]["parts"] = parts
    return messages


def adapt(
    attrs: dict[str, Any], events: list[dict[str, Any]], scope_name: str, start_ns: int, end_ns: int
) -> Adapted | None:
    """A litellm span's call fields, or None when the span is not litellm's."""
    if "litellm.call_id" not in attrs:
        return None
    request_type = str(attrs.get("llm.request.type") or "").lower()
    operation = attrs.get("gen_ai.operation.name") or _REQUEST_TYPES.get(request_type)
    if operation is None:
        return Adapted(producer="litellm", is_call=False)
    hidden = as_dict(attrs.get("hidden_params"))
    f: dict[str, Any] = {"gen_ai.operation.name": operation, "llm.request.type": None}
    provider = _provider(attrs, hidden)
    if provider:
        f["gen_ai.provider.name"] = provider
    if attrs.get("gen_ai.response.id") == attrs.get("litellm.call_id"):
        f["gen_ai.response.id"] = None  # litellm's own id, not the provider's
    if "gen_ai.cost.total_cost" in attrs:
        f["gen_ai.usage.cost"] = attrs["gen_ai.cost.total_cost"]
    api_base = hidden.get("api_base")
    if isinstance(api_base, str) and "server.address" not in attrs:
        try:
            host = urlsplit(api_base).hostname
        except ValueError:  # not a URL (a bracket without its pair): no address then
            host = None
        if host:
            f["server.address"] = host
    out = _output_messages(attrs)
    if out is not None:
        f["gen_ai.output.messages"] = out
    return Adapted(producer="litellm", fields=f, is_call=True)
