"""The two Anthropic producers: the ``anthropic`` SDK's own spans and OpenLLMetry's.

* The ``anthropic`` Python SDK (≥ 2) traces every API call itself, on by default
  (``ANTHROPIC_OPEN_TELEMETRY=false`` turns it off), scope ``com.anthropic.sdk.python``,
  span ``anthropic.messages.create`` (CLIENT). It follows the GenAI semconv
  (``gen_ai.usage.input_tokens`` already includes cache reads and writes;
  ``gen_ai.usage.cache_read.input_tokens``, ``gen_ai.usage.cache_write.input_tokens``,
  ``gen_ai.response.time_to_first_chunk``, ``gen_ai.request.stream``), but its stop reason
  is only ``anthropic.message.stop_reason`` (``end_turn``, ``tool_use``, ``max_tokens`` …)
  and its provider request id ``anthropic.request.id``; ``error.type`` is the API's error
  type (``rate_limit_error``, ``overloaded_error``) beside ``http.response.status_code``.
* OpenLLMetry's ``opentelemetry-instrumentation-anthropic`` (scope
  ``opentelemetry.instrumentation.anthropic``, span ``anthropic.chat``): semconv names,
  finish reasons already mapped (``stop``, ``tool_call``), ``gen_ai.is_streaming``; its
  error spans name the request id only inside the error text (``'request_id': 'req_…'``).
  It does not make its span current, so with the SDK's tracing on the same call is two
  sibling spans in two different traces, sharing ``gen_ai.response.id`` (and, for a
  failed call, the request id this module copies to ``anthropic.request.id``).

The generic mapper (``spans.py``) reads everything semconv; this module adds what it
cannot know.
"""

from __future__ import annotations

import re
from typing import Any

from gensight.model.records import CallRecord

SDK_SCOPE = "com.anthropic.sdk.python"
OPENLLMETRY_SCOPE = "opentelemetry.instrumentation.anthropic"
#: the provider's request id, on both producers' records once refined
REQUEST_ID = "anthropic.request.id"

_REQUEST_ID_RE = re.compile(r"""['"]request_id['"]\s*:\s*['"](req_[A-Za-z0-9]+)['"]""")


def is_anthropic_scope(scope_name: str) -> bool:
    """Whether a span comes from one of the two Anthropic producers."""
    return scope_name.startswith((SDK_SCOPE, OPENLLMETRY_SCOPE))


def refine(call: CallRecord, attrs: dict[str, Any], scope_name: str, message: str | None) -> None:
    """Complete ``call`` (already mapped by the generic mapper) with Anthropic's own fields."""
    if scope_name.startswith(SDK_SCOPE):
        call.producer = "anthropic-sdk"
        stop = attrs.get("anthropic.message.stop_reason")
        if stop and not call.finish_reasons:
            call.finish_reasons = [str(stop)]
    else:
        call.producer = "traceloop"  # OpenLLMetry, like its openai instrumentation
        if REQUEST_ID not in call.attributes:
            found = _REQUEST_ID_RE.search(message or call.error_message or "")
            if found:
                call.attributes = {**call.attributes, REQUEST_ID: found.group(1)}
    if call.provider is None:
        call.provider = "anthropic"
