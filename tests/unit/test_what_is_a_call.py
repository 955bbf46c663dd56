"""Only inference and embedding spans are calls: pydantic-ai's real spans (recorded in
tests/fixtures/otlp/pydantic-ai*) and each convention's agent/tool/workflow kinds."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gensight.conventions.operations import CALL_OPERATIONS, call_operation
from gensight.receive.otlp.decode import traces_to_records
from tests.support.otlp_payloads import record_spans, traces_protobuf
from tests.unit.test_conventions import load

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp"


def raw_spans(name: str) -> list[dict[str, Any]]:
    """The recorded spans of a fixture as OTLP/JSON, attributes as a plain dict."""
    out = []
    for f in sorted((FIXTURES / name).glob("traces-*.json")):
        for rs in json.loads(f.read_text())["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    attrs = {}
                    for a in s.get("attributes", []):
                        (v,) = a["value"].values()
                        attrs[a["key"]] = v
                    # load() parses the fixtures' hex ids as OTLP/JSON's base64: do the same
                    ids = {k: base64.b64decode(s[k]).hex() for k in ("traceId", "spanId")}
                    out.append({**s, **ids, "attrs": attrs})
    return out


@pytest.mark.parametrize("name", ["pydantic-ai", "pydantic-ai-content"])
def test_pydantic_ai_agent_runs_give_one_record_per_model_request(name):
    calls, spans, _ = load(name)
    raw = raw_spans(name)
    # what pydantic-ai itself says were model requests (its ``chat``/``embeddings`` spans)
    requests = [s for s in raw if s["attrs"].get("gen_ai.operation.name") in CALL_OPERATIONS]
    agents = [s for s in raw if s["attrs"].get("gen_ai.operation.name") == "invoke_agent"]
    tools = [s for s in raw if s["attrs"].get("gen_ai.operation.name") == "execute_tool"]
    assert len(requests) == 6 and len(agents) == 4 and len(tools) == 1
    assert len(calls) == len(requests)
    assert {c.id for c in calls} == {s["spanId"] for s in requests}
    assert len(spans) == len(raw)  # agent and tool spans are kept, as spans
    by_id = {s.span_id: s for s in spans}
    for s in agents + tools:
        assert by_id[s["spanId"]].call_id is None
        assert by_id[s["spanId"]].attributes["gen_ai.operation.name"] in (
            "invoke_agent",
            "execute_tool",
        )

    # tokens: each agent run's own aggregate equals the sum over its calls, counted once
    for agent in agents:
        mine = [c for c in calls if c.trace_id == agent["traceId"]]
        agg_in = agent["attrs"].get("gen_ai.aggregated_usage.input_tokens")
        if agg_in is None:  # the failed run: no usage
            assert [c.status for c in mine] == ["error"]
            assert mine[0].error_class == "rate_limit"
            continue
        assert sum(c.input_tokens for c in mine) == int(agg_in)
        agg_out = agent["attrs"]["gen_ai.aggregated_usage.output_tokens"]
        assert sum(c.output_tokens for c in mine) == int(agg_out)
    for c in calls:
        assert c.producer == "pydantic-ai" and c.provider == "openai"
        assert c.app == "producer-pydantic-ai"

    # the tool round trip: two chat calls in one trace, the first one asking for the tool
    (tool,) = tools
    round_trip = sorted((c for c in calls if c.trace_id == tool["traceId"]), key=lambda c: c.ts)
    assert [c.finish_reasons for c in round_trip] == [["tool_call"], ["stop"]]

    # the stream: pydantic-ai's time to first chunk (seconds) is the call's TTFT
    (streamed,) = [c for c in calls if c.stream]
    (raw_stream,) = [
        s for s in requests if "gen_ai.client.operation.time_to_first_chunk" in s["attrs"]
    ]
    assert streamed.id == raw_stream["spanId"]
    ttft_s = raw_stream["attrs"]["gen_ai.client.operation.time_to_first_chunk"]
    assert streamed.ttft_ms == pytest.approx(ttft_s * 1000)
    assert 0 < streamed.ttft_ms <= streamed.duration_ms
    assert all(c.ttft_ms is None for c in calls if not c.stream)

    (emb,) = [c for c in calls if c.operation == "embeddings"]
    assert emb.input_tokens == 2 and emb.output_tokens == 0
    assert emb.reported_cost_usd is not None  # pydantic-ai's own ``operation.cost``


def _map(attributes: dict[str, Any], scope: str = "tests.producer"):
    def build(tracer: Any) -> None:
        with tracer.start_as_current_span("span") as span:
            for k, v in attributes.items():
                span.set_attribute(k, v)

    req = trace_service_pb2.ExportTraceServiceRequest.FromString(
        traces_protobuf(record_spans(build))
    )
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            ss.scope.name = scope
    calls, spans, rejected, _ = traces_to_records(req)
    assert rejected == 0 and len(spans) == 1
    return calls[0] if calls else None


USAGE = {
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.usage.input_tokens": 100,
    "gen_ai.usage.output_tokens": 20,
}


@pytest.mark.parametrize(
    "attrs",
    [
        {"gen_ai.operation.name": op, **USAGE}
        for op in (
            "invoke_agent",
            "create_agent",
            "invoke_workflow",
            "execute_tool",
            "retrieval",
            "memory",
            "plan",
            "unknown",
            "UNKNOWN",
            "vectordb",
            "rerank",
        )
    ]
    + [
        {"traceloop.span.kind": k, "llm.request.type": "chat", **USAGE}
        for k in ("workflow", "task", "agent", "tool")
    ]  # fmt: skip
    + [
        {"openinference.span.kind": k, "llm.model_name": "gpt-4o-mini", "llm.token_count.prompt": 5}
        for k in (
            "AGENT",
            "CHAIN",
            "TOOL",
            "RETRIEVER",
            "RERANKER",
            "GUARDRAIL",
            "EVALUATOR",
            "UNKNOWN",
        )
    ]  # fmt: skip
    + [
        {"llm.request.type": "unknown", **USAGE},
        {"llm.request.type": "rerank", **USAGE},
        # an agent span with usage but nothing naming an inference or a model
        {"gen_ai.system": "openai", "gen_ai.usage.input_tokens": 5},
        {"gen_ai.aggregated_usage.input_tokens": 500, "gen_ai.agent.name": "a"},
    ],
    ids=lambda a: (
        "/".join(f"{k}={v}" for k, v in a.items() if "kind" in k or "type" in k or "operation" in k)
        or "usage-only"
    ),  # fmt: skip
)
def test_agent_tool_workflow_spans_are_spans_not_calls(attrs):
    assert call_operation(attrs) is None
    assert _map(attrs) is None


@pytest.mark.parametrize(
    ("attrs", "operation"),
    [
        ({"gen_ai.operation.name": "chat", **USAGE}, "chat"),
        ({"gen_ai.operation.name": "text_completion", **USAGE}, "text_completion"),
        ({"gen_ai.operation.name": "generate_content", **USAGE}, "generate_content"),
        ({"gen_ai.operation.name": "embeddings", **USAGE}, "embeddings"),
        ({"gen_ai.operation.name": "responses", **USAGE}, "responses"),
        ({"llm.request.type": "chat", **USAGE}, "chat"),
        ({"llm.request.type": "completion", **USAGE}, "text_completion"),
        ({"llm.request.type": "embedding", **USAGE}, "embeddings"),
        ({"openinference.span.kind": "LLM", "llm.model_name": "m"}, "chat"),
        ({"openinference.span.kind": "EMBEDDING", "embedding.model_name": "m"}, "embeddings"),
        ({"traceloop.span.kind": "llm", "gen_ai.operation.name": "chat", **USAGE}, "chat"),
        (USAGE, "chat"),  # older instrumentations: a model and usage, no operation
    ],
)
def test_inference_and_embedding_spans_are_calls(attrs, operation):
    assert call_operation(attrs) == operation
    call = _map(attrs)
    assert call is not None and call.operation == operation


def test_semconv_renames_and_ttft_means_stream():
    call = _map(
        {
            "gen_ai.operation.name": "chat",
            **USAGE,
            "gen_ai.usage.cache_write.input_tokens": 40,
            "gen_ai.usage.cache_read.input_tokens": 10,
            "gen_ai.request.max_output_tokens": 256,
            "gen_ai.response.time_to_first_chunk": 0.25,
        }
    )
    assert (call.cache_write_tokens, call.cache_read_tokens) == (40, 10)
    assert call.max_tokens == 256
    assert call.stream is True and call.ttft_ms == pytest.approx(250.0)
    # the former name still maps
    old = _map({"gen_ai.operation.name": "chat", **USAGE,
                "gen_ai.usage.cache_creation.input_tokens": 7})  # fmt: skip
    assert old.cache_write_tokens == 7 and old.stream is False and old.ttft_ms is None
    # pydantic-ai's name of the same measure
    pa = _map({"gen_ai.operation.name": "chat", **USAGE,
               "gen_ai.client.operation.time_to_first_chunk": 0.1})  # fmt: skip
    assert pa.stream is True and pa.ttft_ms == pytest.approx(100.0)
    # an explicit "not streamed" wins (OpenLIT's first-token time of whole responses)
    ol = _map({"gen_ai.operation.name": "chat", **USAGE, "gen_ai.request.is_stream": False,
               "gen_ai.server.time_to_first_token": 0.3})  # fmt: skip
    assert ol.stream is False and ol.ttft_ms is None
