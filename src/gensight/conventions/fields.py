"""The record's fields as each convention names them, and the scalar coercions.

``FIELD_KEYS`` lists, per record field, the attribute keys of every convention in order
of precedence; ``collect(attrs)`` reads them in one pass over a span's attributes.
The ``to_*`` helpers turn whatever a producer sent (any type) into a field's type or
None; a convention module (see ``gensight.conventions.registry``) uses them too.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from gensight.conventions import messages as msg

# Attributes whose content lands in the record's message fields; not repeated in attributes.
CONTENT_KEYS = frozenset(
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
CONTENT_PREFIXES = (
    "embedding.embeddings.",  # OpenInference: embedded texts (content) and vectors (bulk)
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
)

#: Record field ← attribute keys of every convention, in order of precedence.
FIELD_KEYS: dict[str, tuple[str, ...]] = {
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
        "gen_ai.client.operation.time_to_first_chunk",  # pydantic-ai (seconds)
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
        "gen_ai.usage.cache_write.input_tokens",  # current semconv name
        "gen_ai.usage.cache_creation.input_tokens",  # its former name
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "gen_ai.usage.reasoning_tokens",
        "gen_ai.usage.completion_tokens_details.reasoning_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
    "reported_cost_usd": (
        "gen_ai.usage.cost",
        "llm.cost.total",
        "operation.cost",  # pydantic-ai's own figure (from genai-prices)
    ),
    "finish_reasons": ("gen_ai.response.finish_reasons", "llm.finish_reason"),
    "temperature": ("gen_ai.request.temperature",),
    "top_p": ("gen_ai.request.top_p",),
    "max_tokens": ("gen_ai.request.max_tokens", "gen_ai.request.max_output_tokens"),
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
    "upstream_request_id": ("anthropic.request.id", "openai.request.id", "http.request.id"),
    "oi_kind": ("openinference.span.kind",),
}
_ALIASES: dict[str, tuple[str, int]] = {
    key: (name, rank) for name, keys in FIELD_KEYS.items() for rank, key in enumerate(keys)
}
#: Parameters OpenInference keeps only inside ``llm.invocation_parameters``.
INVOCATION = {
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "max_tokens": ("max_completion_tokens", "max_tokens", "max_output_tokens"),
    "frequency_penalty": ("frequency_penalty",),
    "presence_penalty": ("presence_penalty",),
    "seed": ("seed",),
    "user": ("user",),
}


def is_content_key(key: str) -> bool:
    """Whether an attribute carries message content (kept in the message fields)."""
    return key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES)


def collect(attrs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """One pass over the attributes: each field's winning value, and whether any key
    carries message content."""
    found: dict[str, tuple[int, Any]] = {}
    content = False
    aliases = _ALIASES
    for key, value in attrs.items():
        alias = aliases.get(key)
        if alias is None:
            if not content and (key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES)):
                content = True
            continue
        if value is None or value == "":
            continue
        name, rank = alias
        current = found.get(name)
        if current is None or rank < current[0]:
            found[name] = (rank, value)
    return {name: v for name, (_, v) in found.items()}, content


def first(attrs: dict[str, Any], *keys: str) -> Any:
    """The first of ``keys`` present with a non-empty value."""
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v
    return None


_INT64 = (-(2**63), 2**63 - 1)


def to_int(v: Any) -> int | None:
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


def to_float(v: Any) -> float | None:
    """A float field: None when absent, not a number, NaN or infinite (JSON has neither)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def to_http_status(v: Any) -> int | None:
    """An HTTP status code, or None outside 100–999."""
    n = to_int(v)
    return n if n is not None and 100 <= n <= 999 else None


def to_str(v: Any) -> str | None:
    """A text field: producers may send any type (an int ``service.name``, a list model)."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list | dict):
        try:
            return orjson.dumps(v, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # nested deeper than JSON writers go
            pass
    return str(v)


def to_bool(v: Any) -> bool | None:
    """A flag: booleans, "true"/"1"/"yes" strings, or any truthy value."""
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    return bool(v)


def to_str_list(v: Any) -> list[str]:
    """A list of strings from a list, a JSON array string or one value."""
    v = msg.parse_json(v)
    if v is None:
        return []
    if isinstance(v, list | tuple):
        return [str(x) for x in v if x is not None]
    return [str(v)]
