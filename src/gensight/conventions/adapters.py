"""Producers whose spans need translating before the common mapper reads them.

MLflow tracing, logfire (its ``request_data``/``response_data`` mode) and litellm's OTel
callback each say what a call was in attributes of their own, or say it wrongly in the
common ones (litellm's ``llm.request.type=completion`` is a chat). Each has a module
here (``mlflow.py``, ``logfire.py``, ``litellm.py``) whose ``adapt`` returns an
:class:`Adapted`: the common-convention keys to read (over the span's own attributes),
whether the span is a call at all, and corrected start/end times. The span's stored
attributes stay what the producer sent, less the keys that carry message content.

``spans.span_to_records`` calls :func:`adapt` once per span, and the OTLP receiver calls
``logfire.join_streams`` once per export request (a stream split over two spans).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Record id of a call is its span id, so a translated span keeps its identity.
Adapter = Callable[[dict[str, Any], list[dict[str, Any]], str, int, int], "Adapted | None"]


@dataclass
class Adapted:
    """What a producer module made of one span."""

    producer: str
    #: common-convention keys (``gen_ai.*``) to read in place of / besides the span's own;
    #: a ``None`` value hides the span's own key (a wrong value is worse than none)
    fields: dict[str, Any] = field(default_factory=dict)
    #: True/False: the span is / is not an LLM call; None: the common rule decides
    is_call: bool | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    #: the producer's own keys that hold message content (kept out of stored attributes)
    content_keys: frozenset[str] = frozenset()
    #: span events that are content (MLflow's stream chunks), dropped from the record
    content_event_prefix: str | None = None
    #: the span's attributes as they should be read and kept (MLflow JSON-encodes each
    #: value, so ``"gpt-4o-mini"`` arrives with its quotes); None: as sent
    decoded: dict[str, Any] | None = None
    #: attributes added to what the call keeps (e.g. a digest to pair two spans by)
    extra: dict[str, Any] = field(default_factory=dict)

    def view(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The attributes the common mapper reads: the span's, overlaid with ``fields``."""
        merged = {**attrs, **self.fields}
        return {k: v for k, v in merged.items() if v is not None}

    def stored(self, attrs: dict[str, Any], drop: Callable[[str], bool]) -> dict[str, Any]:
        """The attributes a call keeps: the producer's own, less every content key."""
        kept = {k: v for k, v in attrs.items() if k not in self.content_keys and not drop(k)}
        return {**kept, **self.extra}


def _adapters() -> tuple[Adapter, ...]:
    # imported here: each module imports Adapted from this one
    from gensight.conventions import litellm, logfire, mlflow

    return (mlflow.adapt, logfire.adapt, litellm.adapt)


_ADAPTERS: tuple[Adapter, ...] | None = None


def adapt(
    attrs: dict[str, Any], events: list[dict[str, Any]], scope_name: str, start_ns: int, end_ns: int
) -> Adapted | None:
    """The first producer module that recognises this span, or None (common mapping only)."""
    global _ADAPTERS
    if _ADAPTERS is None:
        _ADAPTERS = _adapters()
    for fn in _ADAPTERS:
        adapted = fn(attrs, events, scope_name, start_ns, end_ns)
        if adapted is not None:
            return adapted
    return None


def as_int(value: Any) -> int | None:
    """A token count from a JSON body: a non-negative int, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value >= 0 else None


def as_dict(value: Any) -> dict[str, Any]:
    """A JSON object attribute (string or already decoded) as a dict; {} otherwise."""
    from gensight.conventions.messages import parse_json

    value = parse_json(value)
    return value if isinstance(value, dict) else {}


def usage_fields(usage: dict[str, Any]) -> dict[str, Any]:
    """``gen_ai.usage.*`` keys from an OpenAI (or Anthropic, or MLflow) usage object."""
    out: dict[str, Any] = {}
    inp = as_int(usage.get("input_tokens"))
    if inp is None:
        inp = as_int(usage.get("prompt_tokens"))
    out_t = as_int(usage.get("output_tokens"))
    if out_t is None:
        out_t = as_int(usage.get("completion_tokens"))
    details_in = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    details_out = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    cached = as_int(usage.get("cache_read_input_tokens"))
    if cached is None and isinstance(details_in, dict):
        cached = as_int(details_in.get("cached_tokens"))
    reasoning = None
    if isinstance(details_out, dict):
        reasoning = as_int(details_out.get("reasoning_tokens"))
    for key, value in (
        ("gen_ai.usage.input_tokens", inp),
        ("gen_ai.usage.output_tokens", out_t),
        ("gen_ai.usage.cache_read.input_tokens", cached),
        ("gen_ai.usage.cache_write.input_tokens", as_int(usage.get("cache_creation_input_tokens"))),
        ("gen_ai.usage.reasoning.output_tokens", reasoning),
    ):
        if value is not None:
            out[key] = value
    return out


#: request body parameter → the semconv key the common mapper reads
REQUEST_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_output_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "user": "gen_ai.request.user",
}


def request_fields(body: dict[str, Any]) -> dict[str, Any]:
    """Semconv request keys from a request body (model, parameters, stream)."""
    out: dict[str, Any] = {}
    if isinstance(body.get("model"), str):
        out["gen_ai.request.model"] = body["model"]
    for name, key in REQUEST_PARAMS.items():
        value = body.get(name)
        if value is not None and key not in out and not isinstance(value, dict | list):
            out[key] = value
    if isinstance(body.get("stream"), bool):
        out["gen_ai.request.stream"] = body["stream"]
    return out
