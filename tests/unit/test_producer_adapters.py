"""MLflow tracing, logfire v1 and litellm's OTel callback, on what they really sent.

The fixtures were recorded by tests/producers/run.py (mlflow, logfire, litellm) from the
real libraries driving the real openai client (or litellm) against the fake upstream:
chat, streamed chat, embedding, 429, 500, a chat inside ``rag-request``, and a tool
round trip (a chat answered with a ``get_weather`` call, then the chat with its result).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gensight.receive.otlp.http import traces_to_records

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp"
#: logfire-latest: its default mode today (version=2, gen_ai.* keys; request_data = model)
VARIANTS = ("mlflow-content", "logfire-content", "logfire-latest-content", "litellm",
            "litellm-content")  # fmt: skip

#: what the fake upstream answered, in order (it counts tokens deterministically)
OK_USAGE = [(24, 18), (12, 12), (28, 22), (96, 4), (121, 9)]


def requests(name: str) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted((FIXTURES / name).glob("traces-*.json"))]


def to_records(*bodies: dict):
    calls, spans = [], []
    for body in bodies:
        req = json_format.ParseDict(
            body, trace_service_pb2.ExportTraceServiceRequest(), ignore_unknown_fields=True
        )
        c, s, rejected, error = traces_to_records(req)
        assert rejected == 0, error
        calls += c
        spans += s
    return sorted(calls, key=lambda c: c.ts), spans


def load(name: str):
    return to_records(*requests(name))


@pytest.mark.parametrize("name", VARIANTS)
def test_one_record_per_call_with_the_upstreams_numbers(name):
    producer = name.split("-")[0]
    calls, spans = load(name)
    assert len(calls) == 8
    for c in calls:
        assert (c.producer, c.provider, c.source) == (producer, "openai", "otlp")
        assert c.app == f"producer-{producer}" and c.environment == "test"
        assert c.id == c.span_id
    assert [c.operation for c in calls] == ["chat", "chat", "embeddings"] + ["chat"] * 5
    ok = [c for c in calls if c.status == "ok" and c.operation == "chat"]
    assert [(c.input_tokens, c.output_tokens) for c in ok] == OK_USAGE
    assert all(c.request_model == "gpt-4o-mini" for c in ok)
    assert ok[0].response_model == "gpt-4o-mini-2024-07-18"
    assert all(c.response_id and c.response_id.startswith("chatcmpl-") for c in ok)
    assert (ok[0].temperature, ok[0].max_tokens) == (0.2, 50)
    emb = calls[2]
    assert (emb.request_model, emb.input_tokens, emb.output_tokens) == (
        "text-embedding-3-small",
        3,
        0,
    )
    assert emb.response_id is None  # litellm's own call id is not the provider's
    assert [c.stream for c in ok] == [False, True, False, False, False]

    errors = [c for c in calls if c.status == "error"]
    assert [(c.error_class, c.http_status) for c in errors] == [
        ("rate_limit", 429),
        ("upstream_error", 500),
    ]
    assert "Rate limit reached" in errors[0].error_message
    assert all(c.input_tokens is None and c.cost_usd is None for c in errors)

    # only calls are calls: the app's own spans (and litellm's raw-request copies) are not
    plain = {s.name for s in spans if s.call_id is None}
    assert {"rag-request", "retrieve"} <= plain
    root = next(s for s in spans if s.name == "rag-request")
    assert ok[2].parent_span_id == root.span_id and ok[2].trace_id == root.trace_id


@pytest.mark.parametrize(
    "name", ["mlflow-content", "logfire-content", "logfire-latest-content", "litellm-content"]
)
def test_messages_and_tool_calls(name):
    calls, _ = load(name)
    ok = [c for c in calls if c.status == "ok" and c.operation == "chat"]
    assert [m["content"] for m in ok[0].input_messages] == [
        "You are a terse assistant.",
        "Say hello to the observability team.",
    ]
    assert ok[0].output_messages[0]["role"] == "assistant"
    assert ok[0].output_messages[0]["content"]
    assert ok[1].output_messages[0]["content"]  # the streamed answer, reassembled
    (tool_call,) = ok[3].output_messages[0]["tool_calls"]
    assert (tool_call["name"], tool_call["arguments"]) == ("get_weather", '{"city":"Paris"}')
    assert ok[3].finish_reasons == ["tool_calls"]
    # the second turn carries the assistant's tool call and the tool's answer
    roles = [m["role"] for m in ok[4].input_messages]
    assert roles == ["user", "assistant", "tool"]
    assert ok[4].input_messages[1]["tool_calls"][0]["name"] == "get_weather"
    # content lives in the messages, not again in the attributes
    for c in calls:
        assert not {"mlflow.spanInputs", "mlflow.spanOutputs", "request_data", "response_data",
                    "gen_ai.input.messages"} & set(c.attributes)  # fmt: skip


def test_litellm_without_content_sends_none():
    calls, _ = load("litellm")
    assert all(c.input_messages is None and c.output_messages is None for c in calls)


def test_litellm_cost_is_kept_as_reported_and_the_server_is_named():
    calls, _ = load("litellm")
    first = calls[0]
    assert first.reported_cost_usd == pytest.approx(1.44e-05)
    assert first.server_address == "127.0.0.1"
    assert "llm.request.type" in first.attributes  # the producer's own key is kept


def test_mlflow_stream_ttft_is_its_first_chunk():
    calls, spans = load("mlflow-content")
    streamed = [c for c in calls if c.stream]
    assert len(streamed) == 1
    (s,) = streamed
    assert 0 < s.ttft_ms <= s.duration_ms
    assert all(c.ttft_ms is None for c in calls if not c.stream)
    # the chunks are content: not kept as span events
    srec = next(x for x in spans if x.span_id == s.span_id)
    assert not any(e["name"].startswith("mlflow.chunk") for e in srec.events)
    # attributes are decoded from MLflow's JSON encoding
    assert (
        s.attributes["model"] == "gpt-4o-mini" and s.attributes["mlflow.spanType"] == "CHAT_MODEL"
    )


def test_mlflow_agent_and_chain_spans_are_spans_whatever_usage_they_carry():
    body = requests("mlflow-content")[0]
    spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    chat = copy.deepcopy(next(s for s in spans if s["name"] == "Completions"))
    for span_type in ("AGENT", "CHAIN", "TOOL", "RETRIEVER", "UNKNOWN"):
        agent = copy.deepcopy(chat)
        agent["spanId"] = "ab" * 8
        for kv in agent["attributes"]:
            if kv["key"] == "mlflow.spanType":
                kv["value"] = {"stringValue": json.dumps(span_type)}
        one = {"resourceSpans": [{**body["resourceSpans"][0],
                                  "scopeSpans": [{"scope": {"name": "mlflow"},
                                                  "spans": [agent]}]}]}  # fmt: skip
        calls, out = to_records(one)
        assert calls == [] and out[0].call_id is None, span_type


@pytest.mark.parametrize("name", ["logfire-content", "logfire-latest-content"])
def test_logfire_stream_is_one_call_from_request_start_to_last_chunk(name):
    calls, spans = load(name)
    (streamed,) = [c for c in calls if c.stream]
    log_span = next(s for s in spans if s.span_id == streamed.span_id)
    request_span = next(
        s for s in spans if s.span_id == streamed.attributes["logfire.request_span_id"]
    )
    assert request_span.call_id is None and request_span.name.startswith("Chat Completion")
    assert log_span.call_id == streamed.id
    assert streamed.ts == request_span.ts
    assert streamed.duration_ms > streamed.attributes["duration"] * 1000
    assert streamed.duration_ms >= request_span.duration_ms
    assert (streamed.input_tokens, streamed.output_tokens) == (12, 12)


@pytest.mark.parametrize("name", ["logfire-content", "logfire-latest-content"])
def test_logfire_stream_halves_in_two_exports_still_one_call(name):
    """When the request span went in an earlier export, the log span alone is the call,
    timed by its own ``duration`` (the stream's reading time)."""
    (body,) = requests(name)
    rs = body["resourceSpans"][0]
    first, second = copy.deepcopy(body), copy.deepcopy(body)
    for part, keep in ((first, lambda s: not s["name"].startswith("streaming")),
                       (second, lambda s: s["name"].startswith("streaming"))):  # fmt: skip
        part["resourceSpans"] = [
            {
                **rs,
                "scopeSpans": [
                    {**ss, "spans": [s for s in ss["spans"] if keep(s)]} for ss in rs["scopeSpans"]
                ],
            }  # fmt: skip
        ]
    calls, _ = to_records(first, second)
    assert len(calls) == 8
    (streamed,) = [c for c in calls if c.stream]
    assert streamed.duration_ms == pytest.approx(streamed.attributes["duration"] * 1000, abs=0.01)
    assert "logfire.request_span_id" not in streamed.attributes


def test_litellm_functions_that_are_not_inference_are_spans():
    body = requests("litellm")[0]
    spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
    call = copy.deepcopy(next(s for s in spans if s["name"] == "litellm_request"))
    for kv in call["attributes"]:
        if kv["key"] == "llm.request.type":
            kv["value"] = {"stringValue": "image_generation"}
    scope = {"scope": {"name": "litellm"}, "spans": [call]}
    one = {"resourceSpans": [{**body["resourceSpans"][0], "scopeSpans": [scope]}]}
    calls, out = to_records(one)
    assert calls == [] and out[0].call_id is None


@pytest.mark.parametrize(
    ("scope", "attrs"),
    [
        ("mlflow", {"mlflow.spanType": '"CHAT_MODEL"', "mlflow.spanOutputs": '{"object": [1]}',
                    "mlflow.spanInputs": "[" * 5000,
                    "mlflow.chat.tokenUsage": '{"input_tokens": -5}'}),
        ("logfire.openai", {"request_data": '{"stream": true, "model": ["x"]}', "duration": 1e300,
                            "logfire.span_type": "log", "logfire.msg_template": "Chat Completion"}),
        ("litellm", {"litellm.call_id": "x", "llm.request.type": "completion",
                     "hidden_params": '{"api_base": "http://[::1"}',
                     "gen_ai.completion.7.function_call.name": "f"}),
    ],
)  # fmt: skip
def test_odd_values_from_these_producers_do_not_break_the_batch(scope, attrs):
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "x",
            "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
            "attributes": [{"key": k, "value": {"stringValue": v} if isinstance(v, str)
                            else {"doubleValue": v}} for k, v in attrs.items()]}  # fmt: skip
    body = {"resourceSpans": [{"scopeSpans": [{"scope": {"name": scope}, "spans": [span]}]}]}
    calls, spans = to_records(body)
    assert len(spans) == 1 and len(calls) == 1
    assert calls[0].input_tokens is None
