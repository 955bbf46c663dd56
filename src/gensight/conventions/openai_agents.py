"""openai-agents traced by OpenInference (``openinference-instrumentation-openai-agents``).

Scope ``openinference.instrumentation.openai_agents``. Span kinds: ``AGENT`` (each agent and
the ``Agent workflow`` root), ``CHAIN`` (``turn``, the inner ``Agent workflow``), ``TOOL``
(each function tool) stay spans; ``LLM`` spans (named ``generation`` for a chat-completions
model, ``response`` for the Responses API) are the calls.

With a chat-completions model (``OpenAIChatCompletionsModel``) a ``generation`` span has
``llm.model_name`` (the requested model), ``llm.system=openai``, ``llm.invocation_parameters``
(no ``stream`` key, whatever the call), ``llm.token_count.*`` and ``llm.input_messages``/
``llm.output_messages`` — the generic OpenInference mapping covers those. What it cannot
read: a **streamed** call's ``output.value`` is a JSON list of Responses-API ``Response``
objects (``"object": "response"``; ``output`` items of type ``message``/``function_call``,
each ``provider_data`` naming the chat completion id and model; ``usage`` when the stream
had ``include_usage``), with no ``llm.output_messages``. That list is the only sign of a
stream, and only when outputs are not hidden (``__REDACTED__``). Neither form carries the
response model snapshot, a TTFT or a finish reason.
"""

from __future__ import annotations

from typing import Any

from gensight.conventions import messages as msg
from gensight.model.records import CallRecord

SCOPE = "openinference.instrumentation.openai_agents"


def is_agents_scope(scope_name: str) -> bool:
    """Whether a span comes from OpenInference's openai-agents instrumentation."""
    return scope_name.startswith(SCOPE)


def _responses(value: Any) -> list[dict[str, Any]]:
    items = msg.parse_json(value)
    if not isinstance(items, list):
        return []
    return [r for r in items if isinstance(r, dict) and r.get("object") == "response"]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
    return value if ok else None


def refine(call: CallRecord, attrs: dict[str, Any]) -> None:
    """Complete an LLM span's call from the Response objects a streamed call leaves."""
    responses = _responses(attrs.get("output.value"))
    if not responses:
        return
    call.stream = True
    outputs: list[dict[str, Any]] = []
    for response in responses:
        items = response.get("output") if isinstance(response.get("output"), list) else []
        for item in items:
            if not isinstance(item, dict):
                continue
            data = item.get("provider_data") if isinstance(item.get("provider_data"), dict) else {}
            call.response_id = call.response_id or _text(data.get("response_id"))
            call.response_model = (
                call.response_model or _text(data.get("model")) or _text(response.get("model"))
            )
            if item.get("type") == "message":
                parts = item.get("content") if isinstance(item.get("content"), list) else []
                texts = [
                    str(part.get("text") or "")
                    for part in parts
                    if isinstance(part, dict) and part.get("type") == "output_text"
                ]
                role = _text(item.get("role")) or "assistant"
                outputs.append({"role": role, "content": "".join(texts)})
            elif item.get("type") == "function_call":
                call_entry = {"id": _text(item.get("call_id")), "name": _text(item.get("name")),
                              "arguments": _text(item.get("arguments"))}  # fmt: skip
                outputs.append({"role": "assistant", "content": None, "tool_calls": [call_entry]})
        usage = response.get("usage") if isinstance(response.get("usage"), dict) else None
        if usage:
            call.input_tokens = call.input_tokens if call.input_tokens is not None else _int(
                usage.get("input_tokens"))  # fmt: skip
            call.output_tokens = call.output_tokens if call.output_tokens is not None else _int(
                usage.get("output_tokens"))  # fmt: skip
            details = usage.get("input_tokens_details") or {}
            if call.cache_read_tokens is None and isinstance(details, dict):
                call.cache_read_tokens = _int(details.get("cached_tokens"))
            out_details = usage.get("output_tokens_details") or {}
            if call.reasoning_tokens is None and isinstance(out_details, dict):
                call.reasoning_tokens = _int(out_details.get("reasoning_tokens"))
    if outputs:
        call.output_messages = outputs
