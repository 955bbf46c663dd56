"""Fingerprints of a call's request, for the cache analyses (``gensight.query.cache``).

- ``request_hash``: SHA-256 of what decides the answer: the operation, the model, the
  system instructions, every input message, the tools, and the parameters that change
  the output (temperature, top_p, max_tokens, penalties, seed, stop sequences, output
  type, reasoning effort). Two calls with the same hash are requests a response cache
  would have answered from the first one.
- ``prefix_hash`` and ``prefix_tokens``: the same for the leading part providers cache
  (the model, system instructions, tools and every message but the last), with its
  token count estimated offline (``gensight.enrich.tokens``). ``None`` when the request
  has no such prefix (a single message without a system prompt).

Only hashes are stored, never the text. The gateway takes them from the request before
metadata-only capture drops the messages; the writer takes them for every other call
before redaction rewrites the text, so a masked secret does not make equal requests
look different. Idempotent: a call that has its hash keeps it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gensight.enrich import tokens
from gensight.model.records import CallRecord

#: Attributes (besides the record's parameter fields) that change what a model answers.
OUTPUT_ATTRIBUTES = (
    "gen_ai.output.type",
    "gen_ai.request.reasoning_effort",
    "gen_ai.request.stop_sequences",
    "gen_ai.request.choice.count",
)
#: Attributes holding the tools a request offered (definitions first, names second).
TOOL_ATTRIBUTES = ("gen_ai.tool.definitions", "gen_ai.request.tools")


def _digest(value: Any) -> str:
    raw = orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(raw).hexdigest()[:32]


def _essential(message: Any) -> Any:
    """A message as it reaches the model: role, content, tool calls, non-text parts."""
    if not isinstance(message, dict):
        return message
    keep = ("role", "content", "tool_calls", "tool_call_id", "name", "parts")
    return {k: message[k] for k in keep if message.get(k) is not None}


def tools_of(call: CallRecord) -> Any:
    """The tools a recorded call offered, from its attributes (None when none)."""
    attrs = call.attributes if isinstance(call.attributes, dict) else {}
    for name in TOOL_ATTRIBUTES:
        value = attrs.get(name)
        if value:
            return value
    return None


def fill(
    call: CallRecord,
    messages: list[dict[str, Any]] | None,
    system: list[dict[str, Any]] | None,
    tools: Any = None,
) -> None:
    """Set ``request_hash``, ``prefix_hash`` and ``prefix_tokens`` from the request."""
    if call.request_hash is not None or not messages:
        return
    model = call.request_model or call.response_model
    attrs = call.attributes if isinstance(call.attributes, dict) else {}
    system_msgs = [_essential(m) for m in system or ()]
    inputs = [_essential(m) for m in messages]
    params = {
        "temperature": call.temperature,
        "top_p": call.top_p,
        "max_tokens": call.max_tokens,
        "frequency_penalty": call.frequency_penalty,
        "presence_penalty": call.presence_penalty,
        "seed": call.seed,
        **{name: attrs.get(name) for name in OUTPUT_ATTRIBUTES},
    }
    call.request_hash = _digest(
        [call.provider, call.operation, model, system_msgs, inputs, tools, params]
    )
    leading = inputs[:-1]
    if not (system_msgs or leading):
        return
    call.prefix_hash = _digest([call.provider, model, system_msgs, tools, leading])
    counted = [*system_msgs, *leading]
    n = tokens.count_chat_prompt(counted, model, tools) - tokens.REPLY_PRIMING
    call.prefix_tokens = max(0, n)


def fill_from_record(call: CallRecord) -> None:
    """The writer's step: fingerprint a call from its recorded messages (if any)."""
    if call.request_hash is not None or call.operation == "embeddings":
        return
    messages = call.input_messages if isinstance(call.input_messages, list) else None
    system = call.system_instructions if isinstance(call.system_instructions, list) else None
    fill(call, messages, system, tools_of(call))
