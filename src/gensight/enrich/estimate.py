"""Token estimation as a processor: counts for calls whose producer reported none.

The gateway estimates from the request and response bodies it saw (``receive/gateway``);
this processor does the same for every other call, from the messages the record holds:
an OTLP producer that sent content but no usage (some instrumentations record no usage
for streams, some servers ignore ``stream_options.include_usage``) still gets counts,
marked ``tokens_estimated: true``, and so a cost. A call without content, a failed call
(nothing was generated or billed) and a call with any reported count are left alone:
a count the provider reported is never replaced by a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gensight.enrich import tokens
from gensight.model.records import CallRecord

#: Operations whose tokens can be estimated from their messages (embeddings carry no
#: messages in the record; their input is not kept).
ESTIMATED_OPERATIONS = frozenset({"chat", "text_completion", "responses", "generate_content"})


def _system_messages(parts: Iterable[Any] | None) -> list[dict[str, Any]]:
    """System instructions (semconv parts or plain strings) as one system message."""
    texts = []
    for p in parts or ():
        if isinstance(p, str):
            texts.append(p)
        elif isinstance(p, dict):
            t = p.get("content") if isinstance(p.get("content"), str) else p.get("text")
            if isinstance(t, str):
                texts.append(t)
    return [{"role": "system", "content": "\n".join(texts)}] if texts else []


def _output_texts(messages: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for m in messages:
        if not isinstance(m, dict):
            continue
        if isinstance(m.get("content"), str):
            out.append(m["content"])
        for tc in m.get("tool_calls") or ():
            if isinstance(tc, dict):
                out.append(str(tc.get("name") or ""))
                out.append(str(tc.get("arguments") or ""))
    return out


def needs_estimate(call: CallRecord) -> bool:
    """Whether ``call`` has messages to count and no count of its own."""
    return (
        call.status == "ok"
        and not call.tokens_estimated
        and call.input_tokens is None
        and call.output_tokens is None
        and call.operation in ESTIMATED_OPERATIONS
        and bool(call.input_messages or call.output_messages)
    )


def estimate_missing(call: CallRecord) -> None:
    """Fill ``input_tokens``/``output_tokens`` of ``call`` from its messages, in place."""
    if not needs_estimate(call):
        return
    model = call.response_model or call.request_model
    prompt = _system_messages(call.system_instructions) + list(call.input_messages or [])
    call.input_tokens = tokens.count_chat_prompt(prompt, model) if prompt else 0
    call.output_tokens = tokens.count_texts(_output_texts(call.output_messages or []), model)
    call.tokens_estimated = True


class TokenEstimator:
    """The enrich processor: ``estimate_missing`` over a batch of calls."""

    def __call__(self, calls: Iterable[CallRecord]) -> None:
        for call in calls:
            estimate_missing(call)
