"""OTLP/HTTP ingest against a running `gensight serve`: encodings, bad input, joins, paging."""

from __future__ import annotations

import gzip
import uuid

import pytest
from genai_prices import Usage, calc_price
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry import trace
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from tests.support.otlp_payloads import (
    hex_span_id,
    hex_trace_id,
    record_spans,
    traces_json,
    traces_protobuf,
)

PB = {"content-type": "application/x-protobuf"}


def _chat_workflow(app: str, *, error: bool = False, content: bool = True):
    def build(tracer: trace.Tracer) -> None:
        with tracer.start_as_current_span("handle-request", kind=trace.SpanKind.SERVER):
            with tracer.start_as_current_span("retrieve") as r:
                r.set_attribute("db.system", "qdrant")
            with tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT) as s:
                s.set_attribute("gen_ai.operation.name", "chat")
                s.set_attribute("gen_ai.provider.name", "openai")
                s.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                s.set_attribute("gen_ai.request.temperature", 0.2)
                s.set_attribute("gen_ai.request.max_tokens", 300)
                s.set_attribute("gen_ai.response.model", "gpt-4o-mini-2024-07-18")
                s.set_attribute("gen_ai.usage.input_tokens", 1200)
                s.set_attribute("gen_ai.usage.output_tokens", 345)
                s.set_attribute("gen_ai.usage.cache_read.input_tokens", 1024)
                s.set_attribute("gen_ai.response.finish_reasons", ["stop"])
                s.set_attribute("user.id", f"user-{app}")
                if content:
                    s.set_attribute(
                        "gen_ai.input.messages",
                        '[{"role":"user","parts":[{"type":"text","content":"Where is '
                        f'{app}?"}}]}}]',
                    )
                    s.set_attribute(
                        "gen_ai.output.messages",
                        '[{"role":"assistant","parts":[{"type":"text","content":"Here."}],'
                        '"finish_reason":"stop"}]',
                    )
                if error:
                    s.set_attribute("error.type", "openai.RateLimitError")
                    s.record_exception(RuntimeError("Error code: 429 - rate limited"))
                    s.set_status(trace.StatusCode.ERROR, "Error code: 429 - rate limited")

    return build


def _app() -> str:
    return f"app-{uuid.uuid4().hex[:8]}"


def test_protobuf_body_becomes_calls_and_a_trace_tree(server):
    app = _app()
    spans = record_spans(_chat_workflow(app), service=app, **{"deployment.environment": "prod"})
    r = server.client.post("/v1/traces", content=traces_protobuf(spans), headers=PB)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/x-protobuf"
    resp = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 0

    (call,) = server.wait_calls(1, app=app)
    llm = next(s for s in spans if s.name.startswith("chat"))
    assert call["id"] == hex_span_id(llm)
    assert call["trace_id"] == hex_trace_id(llm)
    assert call["provider"] == "openai"
    assert call["operation"] == "chat"
    assert call["request_model"] == "gpt-4o-mini"
    assert call["response_model"] == "gpt-4o-mini-2024-07-18"
    assert (call["input_tokens"], call["output_tokens"], call["cache_read_tokens"]) == (
        1200,
        345,
        1024,
    )
    assert call["environment"] == "prod"
    assert call["user"] == f"user-{app}"
    assert call["temperature"] == 0.2 and call["max_tokens"] == 300
    expected = calc_price(
        Usage(input_tokens=1200, output_tokens=345, cache_read_tokens=1024),
        model_ref="gpt-4o-mini-2024-07-18",
        provider_id="openai",
    ).total_price
    assert call["cost_usd"] == pytest.approx(float(expected))
    assert call["cost_source"] == "computed"
    assert call["status"] == "ok" and call["error_class"] is None
    assert "input_messages" not in call  # the list leaves content out

    detail = server.client.get(f"/api/calls/{call['id']}").json()
    assert detail["input_messages"] == [{"role": "user", "content": f"Where is {app}?"}]
    assert detail["output_messages"][0]["content"] == "Here."
    assert detail["finish_reasons"] == ["stop"]

    tree = server.client.get(f"/api/traces/{call['trace_id']}").json()
    by_name = {s["name"]: s for s in tree["spans"]}
    assert set(by_name) == {"handle-request", "retrieve", "chat gpt-4o-mini"}
    root = by_name["handle-request"]
    assert root["parent_span_id"] is None and root["kind"] == "server"
    assert by_name["retrieve"]["parent_span_id"] == root["span_id"]
    assert by_name["retrieve"]["attributes"]["db.system"] == "qdrant"
    assert by_name["chat gpt-4o-mini"]["parent_span_id"] == root["span_id"]
    assert by_name["chat gpt-4o-mini"]["call_id"] == call["id"]
    assert [c["id"] for c in tree["calls"]] == [call["id"]]


def test_json_and_gzip_bodies(server):
    app_json, app_gz = _app(), _app()
    body = traces_json(record_spans(_chat_workflow(app_json), service=app_json))
    r = server.client.post("/v1/traces", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"

    gz = gzip.compress(traces_protobuf(record_spans(_chat_workflow(app_gz), service=app_gz)))
    r = server.client.post("/v1/traces", content=gz, headers={**PB, "content-encoding": "gzip"})
    assert r.status_code == 200

    for app in (app_json, app_gz):
        (call,) = server.wait_calls(1, app=app)
        assert call["input_tokens"] == 1200 and call["request_model"] == "gpt-4o-mini"


def test_error_spans_get_their_class(server):
    app = _app()
    spans = record_spans(_chat_workflow(app, error=True), service=app)
    server.client.post("/v1/traces", content=traces_protobuf(spans), headers=PB)
    (call,) = server.wait_calls(1, app=app)
    assert call["status"] == "error"
    assert call["error_class"] == "rate_limit"
    assert call["http_status"] == 429
    assert "rate limited" in call["error_message"]
    assert server.wait_calls(1, app=app, status="error", error_class="rate_limit")
    assert (
        server.client.get("/api/calls", params={"app": app, "status": "ok"}).json()["items"] == []
    )


def _status(r) -> str:
    if r.headers["content-type"].startswith("application/json"):
        return r.json()["message"]
    return status_pb2.Status.FromString(r.content).message


@pytest.mark.parametrize(
    ("body", "headers", "code", "needle"),
    [
        (b"\xff\xff\xff garbage", PB, 400, "not a valid protobuf"),
        (b"{not json", {"content-type": "application/json"}, 400, "not valid JSON"),
        (b'{"resourceSpans": 5}', {"content-type": "application/json"}, 400, "OTLP/JSON"),
        (b"x", {"content-type": "text/plain"}, 415, "unsupported Content-Type"),
        (b"x", {**PB, "content-encoding": "br"}, 415, "Content-Encoding"),
        (b"not gzip at all", {**PB, "content-encoding": "gzip"}, 400, "not valid gzip"),
    ],
)
def test_bad_bodies_get_a_4xx_naming_the_problem(server, body, headers, code, needle):
    r = server.client.post("/v1/traces", content=body, headers=headers)
    assert r.status_code == code
    assert needle in _status(r)


def test_oversized_bodies_get_413_before_and_after_gunzip(tmp_path):
    from tests.support.server import Server

    srv = Server(tmp_path / "d", "--max-body", "64KiB")
    try:
        big = b"\0" * (65 * 1024)
        r = srv.client.post("/v1/traces", content=big, headers=PB)
        assert r.status_code == 413
        bomb = gzip.compress(b"\0" * (10 * 1024 * 1024))  # ~10 KiB compressed, 10 MiB inflated
        assert len(bomb) < 64 * 1024
        r = srv.client.post("/v1/traces", content=bomb, headers={**PB, "content-encoding": "gzip"})
        assert r.status_code == 413
        assert "decompressed" in _status(r)
        assert srv.client.get("/api/health").json()["status"] == "ok"
    finally:
        srv.stop()
    # uvicorn re-raises the SIGTERM after its graceful shutdown; what matters is that it ran
    assert "Application shutdown complete" in srv.log_path.read_text()


def test_invalid_spans_are_rejected_alone_with_partial_success(server):
    app = _app()
    req = trace_service_pb2.ExportTraceServiceRequest()
    json_format.Parse(traces_json_for_partial(app), req)
    r = server.client.post("/v1/traces", content=req.SerializeToString(), headers=PB)
    assert r.status_code == 200
    resp = trace_service_pb2.ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 1
    assert "trace_id" in resp.partial_success.error_message
    (call,) = server.wait_calls(1, app=app)
    assert call["request_model"] == "good-model"


def traces_json_for_partial(app: str) -> str:
    """Two spans, one with an all-zero (invalid) trace id; protobuf JSON (base64 ids)."""
    good = {
        "traceId": "AAECAwQFBgcICQoLDA0ODw==",
        "spanId": "AQIDBAUGBwg=",
        "name": "chat good-model",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001000000000",
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "good-model"}},
        ],
    }
    bad = {**good, "traceId": "AAAAAAAAAAAAAAAAAAAAAA==", "spanId": "AQIDBAUGBwk="}
    import json

    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": app}}]
                    },
                    "scopeSpans": [{"spans": [good, bad]}],
                }
            ]
        }
    )


def _content_logs(trace_id: bytes, span_id: bytes, question: str) -> bytes:
    def rec(name: str, body: common_pb2.AnyValue) -> logs_pb2.LogRecord:
        return logs_pb2.LogRecord(
            time_unix_nano=1_700_000_000_000_000_000,
            event_name=name,
            trace_id=trace_id,
            span_id=span_id,
            body=body,
            attributes=[
                common_pb2.KeyValue(
                    key="gen_ai.system", value=common_pb2.AnyValue(string_value="openai")
                )
            ],
        )

    def kv(**items: common_pb2.AnyValue) -> common_pb2.AnyValue:
        return common_pb2.AnyValue(
            kvlist_value=common_pb2.KeyValueList(
                values=[common_pb2.KeyValue(key=k, value=v) for k, v in items.items()]
            )
        )

    def s(text: str) -> common_pb2.AnyValue:
        return common_pb2.AnyValue(string_value=text)

    records = [
        rec("gen_ai.system.message", kv(content=s("Be brief."))),
        rec("gen_ai.user.message", kv(content=s(question))),
        rec(
            "gen_ai.choice",
            kv(
                index=common_pb2.AnyValue(int_value=0),
                finish_reason=s("stop"),
                message=kv(role=s("assistant"), content=s("Paris.")),
            ),
        ),
    ]
    req = logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[logs_pb2.ResourceLogs(scope_logs=[logs_pb2.ScopeLogs(log_records=records)])]
    )
    return req.SerializeToString()


@pytest.mark.parametrize("logs_first", [True, False])
def test_legacy_content_events_join_their_span_in_either_order(server, logs_first):
    app = _app()
    spans = record_spans(_chat_workflow(app, content=False), service=app)
    llm = next(s for s in spans if s.name.startswith("chat"))
    question = f"What is the capital of France, {app}?"
    logs = _content_logs(
        llm.context.trace_id.to_bytes(16, "big"), llm.context.span_id.to_bytes(8, "big"), question
    )
    posts = [("/v1/logs", logs), ("/v1/traces", traces_protobuf(spans))]
    for path, body in posts if logs_first else reversed(posts):
        assert server.client.post(path, content=body, headers=PB).status_code == 200
    (call,) = server.wait_calls(1, app=app)
    detail = server.client.get(f"/api/calls/{call['id']}").json()
    assert [(m["role"], m["content"]) for m in detail["input_messages"]] == [
        ("system", "Be brief."),
        ("user", question),
    ]
    assert detail["output_messages"] == [
        {"role": "assistant", "content": "Paris.", "finish_reason": "stop"}
    ]
    # q searches content that arrived as events too
    found = server.wait_calls(1, q=app.upper())
    assert [c["id"] for c in found] == [call["id"]]


def test_metrics_are_accepted(server):
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

    r = server.client.post(
        "/v1/metrics",
        content=metrics_service_pb2.ExportMetricsServiceRequest().SerializeToString(),
        headers=PB,
    )
    assert r.status_code == 200


def test_paging_with_cursor_is_newest_first_and_complete(server):
    app = _app()

    def build(tracer: trace.Tracer) -> None:
        for i in range(7):
            with tracer.start_as_current_span(f"chat m{i}") as s:
                s.set_attribute("gen_ai.operation.name", "chat")
                s.set_attribute("gen_ai.request.model", f"m{i}")

    server.client.post("/v1/traces", content=traces_protobuf(record_spans(build, app)), headers=PB)
    server.wait_calls(7, app=app)
    seen, cursor = [], None
    while True:
        params = {"app": app, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = server.client.get("/api/calls", params=params).json()
        seen += page["items"]
        cursor = page["next"]
        if not cursor:
            break
    assert [c["request_model"] for c in seen] == [f"m{i}" for i in reversed(range(7))]
    assert len({c["id"] for c in seen}) == 7


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"since": "yesterday-ish"}, "since"),
        ({"until": "12 o'clock"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "meh"}, "status"),
        ({"error_class": "oops"}, "error_class"),
        ({"cursor": "!!!"}, "cursor"),
        ({"since": "1h", "until": "2h"}, "since"),
    ],
)
def test_bad_query_parameters_get_400_naming_them(server, params, param):
    r = server.client.get("/api/calls", params=params)
    assert r.status_code == 400
    assert r.json()["param"] == param
    assert param in r.json()["detail"]


def test_unknown_ids_get_404_and_openapi_is_served(server):
    assert server.client.get("/api/calls/nope").status_code == 404
    assert server.client.get("/api/traces/" + "0" * 32).status_code == 404
    schema = server.client.get("/openapi.json").json()
    assert "/api/calls" in schema["paths"] and "/api/traces/{trace_id}" in schema["paths"]


def test_relative_and_absolute_time_filters(server):
    app = _app()
    server.client.post(
        "/v1/traces",
        content=traces_protobuf(record_spans(_chat_workflow(app), service=app)),
        headers=PB,
    )
    server.wait_calls(1, app=app)
    assert len(server.client.get("/api/calls", params={"app": app, "since": "5m"}).json()["items"])
    old = {"app": app, "until": "2001-01-01T00:00:00Z"}
    assert server.client.get("/api/calls", params=old).json()["items"] == []
