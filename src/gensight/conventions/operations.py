"""Which spans are LLM calls, and their operation name.

Only inference and embedding requests to a model are calls (``CallRecord``s, counted
in totals); every other GenAI span — an agent run, a workflow, a tool execution, a
retrieval, a memory operation, a plan, an ``unknown`` one — stays a plain span,
kept and shown in its trace, and the usage it aggregates over its children
(``gen_ai.aggregated_usage.*``, agent-level ``gen_ai.usage.*``) is never added to
totals: the calls under it already carry those tokens.

``call_operation(attrs)`` decides, for every convention:

* OpenInference ``openinference.span.kind``: ``LLM`` → chat (or the span's own
  ``gen_ai.operation.name``), ``EMBEDDING`` → embeddings; AGENT, CHAIN, TOOL,
  RETRIEVER, RERANKER, GUARDRAIL, EVALUATOR, PROMPT, UNKNOWN are spans.
* Traceloop ``traceloop.span.kind`` workflow/task/agent/tool: spans.
* ``gen_ai.operation.name`` (OTel GenAI, OpenLIT, Traceloop ≥0.4x, pydantic-ai …):
  a call only when, normalized, it is in ``CALL_OPERATIONS``.
* Traceloop's older ``llm.request.type``: chat / completion / embedding(s) are calls;
  ``rerank``, ``unknown`` are not.
* Nothing naming an operation but a model (``gen_ai.request.model`` or
  ``gen_ai.response.model``): a chat call, as older instrumentations send it.
"""

from __future__ import annotations

from typing import Any

#: The closed list of operations that are LLM calls (``gen_ai.operation.name``
#: spelling). One place for it; model/vocab.py (#12) is to hold every closed list,
#: and this set moves there at merge.
CALL_OPERATIONS = frozenset(
    {"chat", "text_completion", "generate_content", "embeddings", "responses"}
)

#: Other spellings of operation names → ``gen_ai.operation.name`` spelling.
OPERATION_ALIASES = {
    "embedding": "embeddings",
    "embed": "embeddings",
    "completion": "text_completion",
    "completions": "text_completion",
    "chat_completion": "chat",
    "chat_completions": "chat",
    "chat.completions": "chat",
    "response": "responses",
    "generatecontent": "generate_content",
    "generate": "generate_content",
}

#: OpenInference span kinds that are calls, and their operation.
OPENINFERENCE_CALL_KINDS = {"LLM": "chat", "EMBEDDING": "embeddings"}

#: Traceloop span kinds that are never calls (their children are).
TRACELOOP_SPAN_KINDS = frozenset({"workflow", "task", "agent", "tool"})


def normalize_operation(value: Any) -> str | None:
    """An operation name in ``gen_ai.operation.name`` spelling (chat, embeddings, …)."""
    if value is None:
        return None
    op = str(value).strip().lower()
    return OPERATION_ALIASES.get(op, op) or None


def _given(v: Any) -> bool:
    return v is not None and v != ""


def call_operation(attrs: dict[str, Any]) -> str | None:
    """The operation of a span that is an LLM call (see the module docstring), else None."""
    kind = attrs.get("openinference.span.kind")
    if _given(kind):
        op = OPENINFERENCE_CALL_KINDS.get(str(kind).strip().upper())
        if op is None:
            return None
        own = normalize_operation(attrs.get("gen_ai.operation.name"))
        return own if own in CALL_OPERATIONS else op
    tl_kind = attrs.get("traceloop.span.kind")
    if _given(tl_kind) and str(tl_kind).strip().lower() in TRACELOOP_SPAN_KINDS:
        return None
    for key in ("gen_ai.operation.name", "llm.request.type"):
        value = attrs.get(key)
        if _given(value):
            op = normalize_operation(value)
            return op if op in CALL_OPERATIONS else None
    if _given(attrs.get("gen_ai.request.model")) or _given(attrs.get("gen_ai.response.model")):
        return "chat"
    return None
