"""The anthropic, openai-agents and Vercel AI SDK mappers on what the real producers sent.

Fixtures: tests/fixtures/otlp/<variant>/, recorded by tests/producers/run_more.py from the
real libraries (see tests/producers/README.md). Expected token counts come from the fake
upstreams' deterministic functions, not from the fixtures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gensight.conventions.vercel_ai import provider_of
from gensight.demo.anthropic_upstream import anthropic_input_tokens
from gensight.demo.upstream import reply_pieces
from gensight.enrich.pricing import Pricer
from gensight.pipeline.merge import CallMerger
from gensight.receive.otlp.http import traces_to_records

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp"
CLAUDE = "claude-sonnet-4-5"


def load(name: str):
    """Calls (by start time) and spans of one captured run."""
    calls, spans = [], []
    for f in (FIXTURES / name).glob("traces-*.json"):
        req = json_format.ParseDict(
            json.loads(f.read_text()),
            trace_service_pb2.ExportTraceServiceRequest(),
            ignore_unknown_fields=True,
        )
        c, s, rejected, error = traces_to_records(req)
        assert rejected == 0, error
        calls += c
        spans += s
    assert calls, f"no calls in {name}"
    return sorted(calls, key=lambda c: c.ts), spans


def _anthropic_usage() -> dict[str, tuple[int, int]]:
    """(input incl. cache, output) per scenario step, as the fake Anthropic upstream answers."""
    chat = {
        "system": "You are a terse assistant.",
        "messages": [{"role": "user", "content": "Say hello to the observability team."}],
    }
    stream = {"messages": [{"role": "user", "content": "Stream a short greeting."}]}
    rag_text = "Context: doc1 doc2 doc3. Question: what is RAG?"
    rag = {
        "system": "Answer from the context.",
        "messages": [{"role": "user", "content": rag_text}],
    }
    return {
        "chat": (
            anthropic_input_tokens(chat),
            len(reply_pieces("Say hello to the observability team.", CLAUDE)),
        ),
        "stream": (
            anthropic_input_tokens(stream),
            len(reply_pieces("Stream a short greeting.", CLAUDE)),
        ),
        "rag": (anthropic_input_tokens(rag), len(reply_pieces(rag_text, CLAUDE))),
    }


# --------------------------------------------------------------------------- anthropic


@pytest.mark.parametrize(
    ("name", "producer"),
    [
        ("anthropic", "anthropic-sdk"),
        ("anthropic-content", "anthropic-sdk"),
        ("anthropic-openllmetry", "traceloop"),
        ("anthropic-openllmetry-content", "traceloop"),
    ],
)
def test_anthropic_producers_map_every_call(name: str, producer: str) -> None:
    calls, spans = load(name)
    assert len(calls) == 7  # chat, stream, tool_use, tool_result, 429, 529, rag
    chat, stream, tool1, tool2, e429, e529, rag = calls
    for c in calls:
        assert (c.producer, c.provider, c.operation) == (producer, "anthropic", "chat")
        assert c.request_model == CLAUDE and c.source == "otlp"
        assert c.app == "producer-anthropic" and c.environment == "test"
    usage = _anthropic_usage()
    assert (chat.input_tokens, chat.cache_read_tokens, chat.cache_write_tokens) == (
        usage["chat"][0],
        5,
        3,
    )  # input includes the cache reads and writes (semconv), as both producers say
    assert chat.output_tokens == usage["chat"][1]
    assert (rag.input_tokens, rag.output_tokens) == usage["rag"]
    assert stream.input_tokens == usage["stream"][0]
    if producer == "anthropic-sdk":
        assert stream.output_tokens == usage["stream"][1]
        assert chat.finish_reasons == ["end_turn"] and tool1.finish_reasons == ["tool_use"]
        assert stream.ttft_ms is not None and 0 < stream.ttft_ms <= stream.duration_ms
        assert chat.attributes["anthropic.request.id"].startswith("req_")
    else:
        # OpenLLMetry adds message_start's placeholder output_tokens (1) to message_delta's
        # total: a producer bug, kept as sent (the SDK's span of the same call is right)
        assert stream.output_tokens == usage["stream"][1] + 1
        assert chat.finish_reasons == ["stop"] and tool1.finish_reasons == ["tool_call"]
        assert stream.ttft_ms is None  # not sent
    assert [c.stream for c in calls] == [False, True, False, False, False, False, False]
    for c in (chat, stream, tool1, tool2, rag):
        assert c.status == "ok" and c.response_id.startswith("msg_01")
        assert c.response_model == CLAUDE
    assert (e429.status, e429.error_class, e529.status, e529.error_class) == (
        "error",
        "rate_limit",
        "error",
        "upstream_error",
    )
    if producer == "anthropic-sdk":
        assert (e429.http_status, e529.http_status) == (429, 529)
    for e in (e429, e529):  # the key that ties the two producers' records of a failure
        assert e.attributes["anthropic.request.id"].startswith("req_")
        assert e.response_id is None
    by_name = {s.name: s for s in spans}
    assert by_name["retrieve"].parent_span_id == by_name["rag-request"].span_id
    assert rag.parent_span_id == by_name["rag-request"].span_id


@pytest.mark.parametrize("name", ["anthropic-content", "anthropic-openllmetry-content"])
def test_anthropic_content(name: str) -> None:
    chat, stream, tool1, tool2, *_ = load(name)[0]
    assert [m["content"] for m in chat.input_messages] == ["Say hello to the observability team."]
    assert [m["content"] for m in chat.system_instructions] == ["You are a terse assistant."]
    assert chat.output_messages[0]["content"]
    (tc,) = tool1.output_messages[0]["tool_calls"]
    assert tc["name"] == "get_weather" and json.loads(tc["arguments"]) == {"city": "Paris"}
    assert tool2.output_messages[0]["content"]


@pytest.mark.parametrize("name", ["anthropic", "anthropic-openllmetry"])
def test_anthropic_without_content_has_none(name: str) -> None:
    for c in load(name)[0]:
        assert c.input_messages is None and c.output_messages is None


def test_anthropic_cost_from_genai_prices_with_cache() -> None:
    chat = load("anthropic")[0][0]
    Pricer().price(chat)
    expected = calc_price(
        Usage(input_tokens=chat.input_tokens, output_tokens=chat.output_tokens,
              cache_read_tokens=5, cache_write_tokens=3),
        model_ref=CLAUDE, provider_id="anthropic",
    ).total_price  # fmt: skip
    assert chat.cost_source == "computed"
    assert chat.cost_usd == pytest.approx(float(expected))


def test_anthropic_both_on_report_each_call_twice_with_shared_keys() -> None:
    """SDK spans + OpenLLMetry: two sibling spans per call, in two traces when top-level.

    What the store-level merge must key on: ``response_id`` (shared) — not the trace id,
    which differs — and, for a failed call (no response id), ``anthropic.request.id``.
    """
    calls, _ = load("anthropic-both-content")
    assert len(calls) == 14
    sdk = [c for c in calls if c.producer == "anthropic-sdk"]
    oll = [c for c in calls if c.producer == "traceloop"]
    assert len(sdk) == len(oll) == 7
    for a, b in zip(sdk, oll, strict=True):
        if a.status == "ok":
            assert a.response_id == b.response_id
        else:
            assert a.response_id is None and b.response_id is None
            assert a.attributes["anthropic.request.id"] == b.attributes["anthropic.request.id"]
    assert sum(a.trace_id != b.trace_id for a, b in zip(sdk, oll, strict=True)) == 6
    assert sdk[-1].trace_id == oll[-1].trace_id  # only the one inside rag-request shares


# --------------------------------------------------------------------------- vercel ai


@pytest.mark.parametrize("name", ["vercel-ai", "vercel-ai-content"])
def test_vercel_ai_do_spans_are_the_calls(name: str) -> None:
    calls, spans = load(name)
    # chat, stream, embed, tool step 1, tool step 2, 429, rag: the outer ai.generateText /
    # ai.streamText / ai.embed spans (usage summed over steps) and ai.toolCall are spans
    assert [c.attributes["ai.operationId"] for c in calls] == [
        "ai.generateText.doGenerate",
        "ai.streamText.doStream",
        "ai.embed.doEmbed",
        "ai.generateText.doGenerate",
        "ai.generateText.doGenerate",
        "ai.generateText.doGenerate",
        "ai.generateText.doGenerate",
    ]
    chat, stream, emb, tool1, tool2, e429, rag = calls
    for c in calls:
        assert (c.producer, c.provider) == ("vercel-ai", "openai")
        assert c.app == "producer-vercel-ai" and c.environment == "test"
    assert {s.name for s in spans if s.call_id is None} >= {
        "ai.generateText", "ai.streamText", "ai.embed", "ai.toolCall", "rag-request", "retrieve"
    }  # fmt: skip
    assert [c.operation for c in calls] == ["chat"] * 2 + ["embeddings"] + ["chat"] * 4
    assert [c.stream for c in calls] == [False, True, False, False, False, False, False]
    assert stream.ttft_ms is not None and 0 < stream.ttft_ms <= stream.duration_ms
    assert chat.ttft_ms is None
    for c in (chat, stream, tool1, tool2, rag):
        assert c.request_model == "gpt-4o-mini"
        assert c.response_model == "gpt-4o-mini-2024-07-18"
        assert c.response_id.startswith("chatcmpl-")
        assert c.input_tokens == c.attributes["gen_ai.usage.input_tokens"]
        assert c.output_tokens == c.attributes["gen_ai.usage.output_tokens"]
    assert (chat.temperature, chat.max_tokens) == (0.2, 50)
    assert (emb.request_model, emb.input_tokens, emb.output_tokens) == (
        "text-embedding-3-small",
        3,
        0,
    )
    assert tool1.finish_reasons == ["tool_calls"] and tool2.finish_reasons == ["stop"]
    # with recordOutputs off the SDK replaces the error by "AI SDK operation failed"
    expected = "rate_limit" if name.endswith("-content") else "unknown"
    assert (e429.status, e429.error_class) == ("error", expected)
    outer = next(
        s for s in spans if s.name == "ai.generateText" and s.span_id == tool1.parent_span_id
    )
    # the outer span's usage is the two steps' sum: never counted again
    assert outer.attributes["ai.usage.inputTokens"] == tool1.input_tokens + tool2.input_tokens


def test_vercel_ai_otel_integration_counts_each_call_once() -> None:
    """``ai`` 7 with ``@ai-sdk/otel``'s ``OpenTelemetry()``: GenAI-semconv spans. The
    chat/embeddings spans are the calls; invoke_agent (usage summed over its steps),
    agent_step and execute_tool are spans; the embed span around its doEmbed span is the
    same call, folded into one record by the writer's merge."""
    calls, spans = load("vercel-ai-otel-content")
    merged, spans, _ = CallMerger().resolve(calls, spans, None)
    merged.sort(key=lambda c: c.ts)
    assert [c.operation for c in merged] == ["chat"] * 2 + ["embeddings"] + ["chat"] * 4
    chat, stream, emb, tool1, tool2, e429, rag = merged
    for c in merged:
        assert (c.producer, c.provider) == ("vercel-ai", "openai")
    assert {s.name.split()[0] for s in spans if s.call_id is None} >= {
        "invoke_agent", "step", "execute_tool", "rag-request", "retrieve"
    }  # fmt: skip
    assert [c.stream for c in merged] == [False, True, False, False, False, False, False]
    assert stream.ttft_ms is not None and 0 < stream.ttft_ms <= stream.duration_ms
    for c in (chat, stream, tool1, tool2, rag):
        assert c.response_id.startswith("chatcmpl-")
        assert c.input_tokens == c.attributes["gen_ai.usage.input_tokens"]
    assert (emb.request_model, emb.input_tokens) == ("text-embedding-3-small", 3)
    assert tool1.finish_reasons == ["tool_calls"] and tool2.finish_reasons == ["stop"]
    assert (e429.status, e429.error_class) == ("error", "rate_limit")
    # the agent span's usage is its steps' sum: a span, never counted again
    agent = next(s for s in spans if s.name.startswith("invoke_agent") and
                 s.attributes.get("gen_ai.usage.input_tokens") == 279)  # fmt: skip
    assert agent.attributes["gen_ai.usage.input_tokens"] == tool1.input_tokens + tool2.input_tokens
    both_embed = [s for s in spans if s.name.startswith("embeddings")]
    assert len(both_embed) == 2 and {s.call_id for s in both_embed} == {emb.id}


def test_vercel_ai_content() -> None:
    chat, stream, emb, tool1, tool2, _e429, _rag = load("vercel-ai-content")[0]
    assert chat.input_messages == [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Say hello to the observability team."},
    ]
    assert chat.output_messages[0]["content"] == chat.attributes.get(
        "ai.response.text", chat.output_messages[0]["content"]
    )
    assert "ai.prompt.messages" not in chat.attributes and "ai.response.text" not in chat.attributes
    (tc,) = tool1.output_messages[0]["tool_calls"]
    assert tc["name"] == "get_weather" and json.loads(tc["arguments"]) == {"city": "Paris"}
    roles = [m["role"] for m in tool2.input_messages]
    assert roles == ["user", "assistant", "tool"]
    assert tool2.input_messages[2]["tool_call_id"] == tc["id"]
    assert "Paris" in tool2.input_messages[2]["content"]
    assert emb.input_messages == [{"role": "user", "content": "vector search query"}]
    assert "ai.embeddings" not in emb.attributes


def test_vercel_ai_without_content_has_none() -> None:
    for c in load("vercel-ai")[0]:
        assert c.input_messages is None and c.output_messages is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("openai.chat", "openai"),
        ("openai.responses", "openai"),
        ("openai.embedding", "openai"),
        ("anthropic.messages", "anthropic"),
        ("azure.chat", "azure.ai.openai"),
        ("google.generative-ai", "gcp.gemini"),
        ("", None),
        (None, None),
    ],
)
def test_vercel_provider_names(value, expected) -> None:
    assert provider_of(value) == expected


# --------------------------------------------------------------------------- openai-agents


@pytest.mark.parametrize("name", ["openai-agents", "openai-agents-content"])
def test_openai_agents_only_generations_are_calls(name: str) -> None:
    calls, spans = load(name)
    assert len(calls) == 5  # chat, stream, tool step 1, tool step 2, 429
    kinds = {s.attributes.get("openinference.span.kind") for s in spans if s.call_id is None}
    assert kinds == {"AGENT", "CHAIN", "TOOL"}
    chat, stream, tool1, tool2, e429 = calls
    for c in calls:
        assert (c.producer, c.provider, c.operation) == ("openinference", "openai", "chat")
        assert c.request_model == "gpt-4o-mini"
    for c in (chat, stream, tool1, tool2):
        assert c.input_tokens > 0 and c.output_tokens > 0
    assert (chat.temperature, chat.max_tokens) == (0.2, 50)
    assert (e429.status, e429.error_class) == ("error", "rate_limit")
    assert tool1.attributes["llm.invocation_parameters"]


def test_openai_agents_stream_from_the_response_list() -> None:
    chat, stream, tool1, _tool2, _ = load("openai-agents-content")[0]
    # the streamed call's output.value is a list of Response objects: the only stream sign
    assert [chat.stream, stream.stream, tool1.stream] == [False, True, False]
    assert stream.response_id.startswith("chatcmpl-")
    assert stream.output_messages == [
        {"role": "assistant", "content": stream.output_messages[0]["content"]}
    ]
    assert stream.output_messages[0]["content"].endswith(".")
    assert chat.output_messages[0]["content"] and chat.input_messages[0]["role"] == "system"
    (tc,) = tool1.output_messages[0]["tool_calls"]
    assert tc["name"] == "get_weather"


# --------------------------------------------------------------------------- odd input


def _span(attrs: dict, scope: str, name: str = "x") -> trace_service_pb2.ExportTraceServiceRequest:
    """One span with ``attrs`` (OTLP/JSON values) under instrumentation scope ``scope``."""

    def value(v):
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):  # proto3 JSON spells the non-finite ones as strings
            spelled = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}
            return {"doubleValue": v if math.isfinite(v) else spelled[str(v)]}
        if isinstance(v, list):
            return {"arrayValue": {"values": [value(x) for x in v]}}
        return {"stringValue": str(v)}

    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
        "name": name, "startTimeUnixNano": "1796207216809000000",
        "endTimeUnixNano": "1796207216909000000",
        "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()],
    }  # fmt: skip
    body = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": scope}, "spans": [span]}]}]}
    return json_format.ParseDict(body, trace_service_pb2.ExportTraceServiceRequest())


@pytest.mark.parametrize(
    ("attrs", "scope"),
    [
        (
            {
                "ai.operationId": "ai.streamText.doStream",
                "ai.model.id": 7,
                "ai.model.provider": "",
                "ai.usage.inputTokens": "lots",
                "ai.usage.outputTokens": -5,
                "ai.usage.tokens": 2**63 - 1,
                "ai.response.msToFirstChunk": float("inf"),
                "ai.settings.temperature": float("nan"),
                "ai.settings.seed": 1e300,
                "ai.prompt.messages": "[{not json",
                "ai.response.toolCalls": '{"a": 1}',
                "ai.response.finishReason": "",
                "ai.response.id": ["x"],
            },
            "ai",
        ),
        (
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "output.value": '[{"object": "response", "output": {"k": 1}, "usage": [1],'
                ' "model": 5}, {"object": "response", "output": [{"type": "message",'
                ' "content": "text", "provider_data": {"response_id": 9}}]}, 3]',
            },
            "openinference.instrumentation.openai_agents",
        ),
        (
            {"gen_ai.operation.name": "chat", "anthropic.message.stop_reason": ""},
            "com.anthropic.sdk.python",
        ),
    ],
)
def test_odd_attribute_values_never_break_the_mapping(attrs, scope) -> None:
    calls, spans, rejected, error = traces_to_records(_span(attrs, scope))
    assert (rejected, error, len(spans), len(calls)) == (0, "", 1, 1)
    (call,) = calls
    for field in ("input_tokens", "output_tokens", "cache_read_tokens", "seed", "max_tokens"):
        value = getattr(call, field)
        assert value is None or (isinstance(value, int) and 0 <= value < 2**63), field
    assert call.ttft_ms is None or 0 <= call.ttft_ms < float("inf")
    assert call.temperature is None or call.temperature == call.temperature  # not NaN
    for field in ("response_id", "response_model", "request_model", "provider"):
        assert getattr(call, field) is None or isinstance(getattr(call, field), str), field
    assert call.finish_reasons == [r for r in call.finish_reasons if r]
