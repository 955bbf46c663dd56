"""Implausible numbers from OTLP producers are refused, field by field, and self-hosted
calls mapped from OTLP are not priced publicly (mapper + pricer, no sockets)."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gensight.enrich.pricing import Pricer
from gensight.receive.otlp.decode import traces_to_records
from tests.support.otlp_payloads import record_spans, traces_protobuf

NOW_NS = time.time_ns()
CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 20,
}


def mapped(*spans: tuple[dict[str, Any], int, int]):
    """Map spans given as (attributes, start ns, end ns) the way OTLP ingest does."""

    def build(tracer: Any) -> None:
        for attrs, start, end in spans:
            span = tracer.start_span("chat", start_time=start)
            for k, v in attrs.items():
                span.set_attribute(k, v)
            span.end(end_time=end)

    req = trace_service_pb2.ExportTraceServiceRequest.FromString(
        traces_protobuf(record_spans(build))
    )
    calls, records, rejected, _ = traces_to_records(req)
    assert rejected == 0
    return calls, records


def one(attrs: dict[str, Any], start: int = NOW_NS - 10**9, end: int = NOW_NS):
    (call,), (span,) = mapped((attrs, start, end))
    return call, span


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("gen_ai.usage.input_tokens", -3, "input_tokens"),
        ("gen_ai.usage.output_tokens", -1, "output_tokens"),
        ("gen_ai.usage.input_tokens", 10**9 + 1, "input_tokens"),
        ("gen_ai.usage.output_tokens", 5 * 10**12, "output_tokens"),
        ("gen_ai.usage.cache_read.input_tokens", -10, "cache_read_tokens"),
        ("gen_ai.usage.cache_write.input_tokens", -10, "cache_write_tokens"),
        ("gen_ai.usage.reasoning.output_tokens", 10**15, "reasoning_tokens"),
        ("gen_ai.usage.cost", -1e6, "reported_cost_usd"),
        ("gen_ai.response.time_to_first_chunk", -0.5, "ttft_ms"),
    ],
)
def test_an_implausible_number_is_refused_and_kept_as_an_attribute(key, value, field):
    call, span = one({**CHAT, key: value})
    assert getattr(call, field) is None
    assert call.attributes[f"gensight.refused.{field}"] == (
        value * 1000 if field == "ttft_ms" else value
    )
    # the rest of the call is kept as sent
    assert call.request_model == "gpt-4o-mini" and call.status == "ok"
    if field not in ("input_tokens", "output_tokens"):
        assert (call.input_tokens, call.output_tokens) == (100, 20)
    assert span.call_id == call.id


def test_non_finite_numbers_are_absent():
    call, _ = one({**CHAT, "gen_ai.usage.cost": math.inf, "gen_ai.usage.input_tokens": math.nan})
    assert call.reported_cost_usd is None and call.input_tokens is None
    assert call.output_tokens == 20


def test_a_negative_cost_never_lowers_a_total():
    pricer = Pricer(priced_hosts=())
    calls, _ = mapped(
        (
            {
                **CHAT,
                "gen_ai.request.model": "acme-x",
                "gen_ai.response.model": "acme-x",
                "gen_ai.usage.cost": -1e6,
            },
            NOW_NS - 10**9,
            NOW_NS,
        ),  # fmt: skip
        ({**CHAT, "gen_ai.usage.cost": 0.5}, NOW_NS - 10**9, NOW_NS),
    )
    for c in calls:
        pricer.price(c)
    costs = sorted((c.cost_usd for c in calls), key=lambda x: (x is None, x))
    assert costs[0] > 0 and costs[1] is None  # priced from genai-prices; refused
    assert sum(c.cost_usd or 0 for c in calls) > 0


@pytest.mark.parametrize(
    "start",
    [
        0,  # 1970: an unset clock
        int(datetime(2019, 12, 31, tzinfo=UTC).timestamp() * 1e9),
        NOW_NS + int(timedelta(days=2).total_seconds() * 1e9),
    ],
)
def test_an_implausible_time_is_clamped_to_the_receive_time(start):
    before = datetime.now(tz=UTC)
    call, span = one(CHAT, start=start, end=start + 2 * 10**9)
    after = datetime.now(tz=UTC)
    assert before <= call.ts <= after and before <= span.ts <= after
    sent = datetime.fromtimestamp(start / 1e9, tz=UTC)
    kept = datetime.fromisoformat(call.attributes["gensight.refused.ts"])
    assert abs(kept - sent) <= timedelta(microseconds=1)  # float seconds round at 1 µs
    assert call.duration_ms == pytest.approx(2000.0)  # start and end agree: kept


def test_a_time_within_a_day_ahead_is_kept_and_a_broken_duration_is_not():
    ahead = NOW_NS + int(timedelta(hours=20).total_seconds() * 1e9)
    call, _ = one(CHAT, start=ahead, end=ahead + 10**9)
    assert call.ts == datetime.fromtimestamp(ahead / 1e9, tz=UTC).replace(
        microsecond=call.ts.microsecond
    )
    assert "gensight.refused.ts" not in call.attributes
    # a start stamped 1970 and a real end: no 56-year duration
    call, _ = one(CHAT, start=0, end=NOW_NS)
    assert call.duration_ms == 0.0 and "gensight.refused.duration_ms" in call.attributes


def test_ollama_via_openai_v2_on_localhost_is_not_priced():
    """An Ollama ``deepseek-r1`` as the openai-v2 instrumentation reports it."""
    pricer = Pricer(priced_hosts=())
    attrs = {
        **CHAT,
        "gen_ai.request.model": "deepseek-r1",
        "gen_ai.response.model": "deepseek-r1",
        "server.address": "localhost",
        "server.port": 11434,
        "gen_ai.usage.input_tokens": 50_000,
        "gen_ai.usage.output_tokens": 20_000,
    }
    call, _ = one(attrs)
    pricer.price(call)
    assert (call.cost_usd, call.cost_source) == (None, "unknown")
    assert call.attributes["gensight.cost_reason"] == "self_hosted"
    # the same model at DeepSeek itself is priced (it is the address that decides)
    public, _ = one({**attrs, "server.address": "api.deepseek.com"})
    assert public.provider == "deepseek"
    pricer.price(public)
    assert public.cost_source == "computed" and public.cost_usd > 0
    # a self-hosted provider name decides too, whatever the address
    named, _ = one({**attrs, "gen_ai.system": "ollama", "server.address": "gpu.example.com"})
    pricer.price(named)
    assert (named.cost_usd, named.cost_source) == (None, "unknown")
