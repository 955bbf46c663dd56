"""The mappers on what the real producers sent (tests/fixtures/otlp, captured by
tests/producers/capture.py from each producer driving the real openai client) and on the
corner cases of each convention."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from gensight.conventions.errors import classify, error_class_for_type
from gensight.enrich.secrets import scrub_text
from gensight.receive.otlp.decode import logs_to_events, traces_to_records

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "otlp"


def load(name: str):
    """All calls, spans and content events of one captured producer run."""
    calls, spans, events = [], [], []
    for f in sorted((FIXTURES / name).glob("traces-*.json")):
        req = json_format.ParseDict(
            json.loads(f.read_text()),
            trace_service_pb2.ExportTraceServiceRequest(),
            ignore_unknown_fields=True,
        )
        c, s, rejected, _ = traces_to_records(req)
        assert rejected == 0
        calls += c
        spans += s
    for f in sorted((FIXTURES / name).glob("logs-*.json")):
        req = json_format.ParseDict(
            json.loads(f.read_text()),
            logs_service_pb2.ExportLogsServiceRequest(),
            ignore_unknown_fields=True,
        )
        events += logs_to_events(req)[0]
    return calls, spans, events


PRODUCERS = {
    "openai-v2": "openai-v2",
    "openai-v2-latest": "openai-v2",
    "openlit": "openlit",
    "traceloop": "traceloop",
    "traceloop-legacy": "traceloop",
    "openinference": "openinference",
}


@pytest.mark.parametrize("capture", ["", "-content"])
@pytest.mark.parametrize("name", sorted(PRODUCERS))
def test_each_producer_maps_to_the_same_calls(name, capture):
    calls, spans, events = load(name + capture)
    chats = [c for c in calls if c.operation == "chat"]
    embeddings = [c for c in calls if c.operation == "embeddings"]
    assert len(chats) == 5 and len(embeddings) == 1
    for c in calls:
        assert c.producer == PRODUCERS[name]
        assert c.provider == "openai"
        assert c.app == f"producer-{PRODUCERS[name]}"
        assert c.source == "otlp" and c.id == c.span_id
    ok = [c for c in chats if c.status == "ok"]
    assert len(ok) == 3
    for c in ok:
        assert c.request_model == "gpt-4o-mini"
        assert c.response_model == "gpt-4o-mini-2024-07-18"
        if c.stream and name == "traceloop-legacy":
            continue  # old OpenLLMetry sends no usage for streamed calls
        assert c.input_tokens > 0 and c.output_tokens > 0
    first = min(ok, key=lambda c: c.ts)
    assert (first.input_tokens, first.output_tokens) == (24, 18)
    assert first.temperature == 0.2 and first.max_tokens == 50
    assert embeddings[0].input_tokens == 3
    assert embeddings[0].request_model == "text-embedding-3-small"
    errors = sorted((c for c in chats if c.status == "error"), key=lambda c: c.ts)
    assert [(c.error_class, c.http_status) for c in errors] == [
        ("rate_limit", 429),
        ("upstream_error", 500),
    ]
    assert "Rate limit reached" in errors[0].error_message

    # the traced workflow: rag-request → retrieve, rag-request → … → chat
    by_name = {s.name: s for s in spans}
    root, retrieve = by_name["rag-request"], by_name["retrieve"]
    assert root.parent_span_id is None and retrieve.parent_span_id == root.span_id
    rag_call = max(ok, key=lambda c: c.ts)
    assert rag_call.trace_id == root.trace_id
    ancestors, parent = set(), rag_call.parent_span_id
    parents = {s.span_id: s.parent_span_id for s in spans}
    while parent:
        ancestors.add(parent)
        parent = parents.get(parent)
    assert root.span_id in ancestors

    if capture:
        messages = {c.id: (c.input_messages, c.output_messages) for c in calls}
        if not any(m[0] for m in messages.values()):  # content arrived as log events
            assert {(e.trace_id, e.span_id) for e in events} >= {
                (c.trace_id, c.span_id) for c in ok
            }
            texts = [e.message["content"] for e in events]
        else:
            texts = [m["content"] for c in ok for m in (c.input_messages or [])]
            texts += [m["content"] for c in ok for m in (c.output_messages or [])]
        assert "Say hello to the observability team." in texts
        assert "You are a terse assistant." in texts
    else:
        for c in calls:
            assert c.input_messages is None and c.output_messages is None, c
        assert events == []


def test_streaming_flag_where_the_producer_says_so():
    for name in ("openlit", "traceloop", "traceloop-legacy", "openinference"):
        calls, _, _ = load(name)
        streamed = [c for c in calls if c.stream]
        assert len(streamed) == 1, name
        if name != "traceloop-legacy":  # which sends no usage for streams
            assert (streamed[0].input_tokens, streamed[0].output_tokens) == (12, 12)
    calls, _, _ = load("openlit")
    (streamed,) = [c for c in calls if c.stream]
    assert streamed.ttft_ms is not None and 0 < streamed.ttft_ms <= streamed.duration_ms
    assert all(c.ttft_ms is None for c in calls if not c.stream)


def test_openlit_reported_cost_is_kept():
    calls, _, _ = load("openlit")
    ok = [c for c in calls if c.status == "ok"]
    assert all(c.reported_cost_usd and c.reported_cost_usd > 0 for c in ok)


@pytest.mark.parametrize(
    ("status", "etype", "message", "expected"),
    [
        (429, None, None, "rate_limit"),
        (None, "RateLimitError", None, "rate_limit"),
        (None, "openai.APITimeoutError", None, "timeout"),
        (None, "APIConnectionError", None, "connection"),
        (None, "httpx.ConnectError", None, "connection"),
        (None, "BadRequestError", None, "invalid_request"),
        (None, "AuthenticationError", None, "auth"),
        (None, "PermissionDeniedError", None, "auth"),
        (None, "InternalServerError", None, "upstream_error"),
        (None, "_OTHER", "Error code: 503 - overloaded", "upstream_error"),
        (None, "400", None, "invalid_request"),
        (None, "asyncio.CancelledError", None, "cancelled"),
        (None, "ValueError", "boom", "unknown"),
        (401, "RateLimitError", None, "auth"),  # the provider's status wins
    ],
)
def test_error_classes_however_spelled(status, etype, message, expected):
    assert classify(status, etype, message) == expected


def test_error_class_for_type_without_anything_is_unknown():
    assert error_class_for_type(None) == "unknown"


def test_credentials_are_masked():
    text = "{'Authorization': 'Bearer sk-abcdefghijklmnopqrstuvwx', 'x-trace': '1'}"
    out = scrub_text(text)
    assert "sk-abc" not in out and "x-trace" in out
    assert scrub_text("api-key: 0123456789abcdef") == "api-key: [REDACTED]"
    assert scrub_text("gen_ai.usage.input_tokens") == "gen_ai.usage.input_tokens"
