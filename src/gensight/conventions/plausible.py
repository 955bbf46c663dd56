"""Implausible numbers are refused, not stored.

A producer's bug (or a hostile client) must not turn into a dashboard total: a
negative token count, a cost of ``-1e6`` USD that cancels a budget, a span stamped
1970 or next year. The choice made here, field by field, keeping the record:

* **token counts** (input, output, cache read/write, reasoning) that are negative or
  above ``MAX_TOKENS`` (10^9; no model takes or gives that many in one call), and
  **costs** (the producer's reported cost, a precomputed cost) that are negative or not
  finite, are stored as absent (null: "not reported"), never as a number;
* **durations and TTFT** that are negative or not finite are absent;
* **timestamps** before 2020-01-01 or more than a day after the receive time are
  clamped to the receive time (a record without a time cannot be shown or counted).

The call itself is kept (its status, model, other fields are still right), and each
refused value is kept in ``attributes`` as ``gensight.refused.<field>`` (the original,
as sent), so nothing is silently lost and the producer's bug can be found. The OTLP
answer still accepts the span: refusing the whole span for one bad field would lose
the call.

Applied by the OTLP mapper to every span (``refuse_implausible_call`` /
``plausible_time``) and by the pricer to every call it prices (all sources).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

#: No single call takes or produces this many tokens; above it is a producer's bug.
MAX_TOKENS = 10**9
#: Earliest plausible record time (Gensight and GenAI telemetry are younger).
EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)
#: How far ahead of the receive time a clock may run.
MAX_FUTURE = timedelta(days=1)

REFUSED_PREFIX = "gensight.refused."

_TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
_COST_FIELDS = ("reported_cost_usd", "cost_usd")
_MS_FIELDS = ("ttft_ms",)


def _bad_count(v: Any) -> bool:
    return v is not None and not (0 <= v <= MAX_TOKENS)


def _bad_amount(v: Any) -> bool:
    return v is not None and not (math.isfinite(v) and v >= 0)


def refuse_implausible_call(call: Any) -> list[str]:
    """Clear a CallRecord's implausible numbers in place (see the module docstring);
    returns the names of the fields refused (empty when all were plausible)."""
    refused: list[str] = []
    for name in _TOKEN_FIELDS:
        v = getattr(call, name)
        if _bad_count(v):
            refused.append(name)
            _refuse(call, name, v)
    for name in _COST_FIELDS + _MS_FIELDS:
        v = getattr(call, name)
        if _bad_amount(v):
            refused.append(name)
            _refuse(call, name, v)
    if "cost_usd" in refused and call.cost_source != "unknown":
        call.cost_source = "unknown"
    d = call.duration_ms
    if d is not None and not (math.isfinite(d) and d >= 0):
        refused.append("duration_ms")
        _refuse(call, "duration_ms", d, 0.0)
    return refused


def _refuse(record: Any, name: str, value: Any, replacement: Any = None) -> None:
    attrs = record.attributes
    if attrs is None:
        attrs = record.attributes = {}
    elif not isinstance(attrs, dict):
        attrs = record.attributes = dict(attrs)
    attrs[REFUSED_PREFIX + name] = value
    setattr(record, name, replacement)


def plausible_time(ts: datetime, received: datetime) -> datetime | None:
    """None when ``ts`` is plausible for a record received at ``received``; else the
    time to store instead (the receive time)."""
    if EARLIEST <= ts <= received + MAX_FUTURE:
        return None
    return received
