"""Producer-specific conventions layered on the generic span mapper (``spans.py``).

Two entry points, each called once per span by ``span_to_records``:

* :func:`is_call` — whether a span is a call, for producers whose spans say so in their
  own words (the Vercel AI SDK's ``ai.operationId``); ``None`` leaves it to the generic rule;
* :func:`refine` — after the generic mapping, the fields only that producer's attributes
  give (Anthropic's stop reason, the AI SDK's ``ai.*``, openai-agents' Response list).
"""

from __future__ import annotations

from typing import Any

from gensight.conventions import anthropic, openai_agents, vercel_ai
from gensight.model.records import CallRecord


def is_call(attrs: dict[str, Any]) -> bool | None:
    """``True``/``False`` where a producer's own convention decides; else ``None``."""
    if vercel_ai.is_vercel_span(attrs):
        return vercel_ai.is_call(attrs)
    return None


def refine(
    call: CallRecord, attrs: dict[str, Any], scope_name: str, status_message: str | None
) -> None:
    """Complete ``call`` with what its producer's own attributes say."""
    if vercel_ai.is_vercel_span(attrs):
        vercel_ai.refine(call, attrs)
    elif anthropic.is_anthropic_scope(scope_name):
        anthropic.refine(call, attrs, scope_name, status_message)
    elif openai_agents.is_agents_scope(scope_name):
        openai_agents.refine(call, attrs)
    elif scope_name == vercel_ai.OTEL_SCOPE and call.producer == "vercel-ai":
        vercel_ai.refine_otel(call)
