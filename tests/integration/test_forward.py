"""OTLP forwarding from a running `gensight serve` to a loopback OTLP/HTTP sink.

Every recorded call (gateway and OTLP ingest) reaches the sink as one GenAI span whose
attributes equal what the JSON API shows for that call; a dead or slow target changes
nothing for the gateway's clients.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gensight.export.otlp import Forwarder, encode_calls, traces_url
from gensight.model.records import CallRecord
from tests.support.otlp_payloads import hex_span_id, hex_trace_id, record_spans, traces_protobuf
from tests.support.server import Server, free_port
from tests.support.sinks import OTLPSink, Receiver


def gateway_client(srv: Server, app: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{srv.url}/openai/v1",
        api_key="sk-test",
        max_retries=0,
        default_headers={"X-Gensight-App": app, "X-Gensight-User": "u-1",
                         "X-Gensight-Session": "s-1"},
    )  # fmt: skip


def _ingested(tracer: trace.Tracer) -> None:
    with (
        tracer.start_as_current_span("rag", kind=trace.SpanKind.SERVER),
        tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT) as s,
    ):
        s.set_attribute("gen_ai.operation.name", "chat")
        s.set_attribute("gen_ai.provider.name", "openai")
        s.set_attribute("gen_ai.request.model", "gpt-4o")
        s.set_attribute("gen_ai.usage.input_tokens", 800)
        s.set_attribute("gen_ai.usage.output_tokens", 120)
        s.set_attribute("error.type", "openai.RateLimitError")
        s.set_status(trace.StatusCode.ERROR, "Error code: 429")


def test_forwarded_spans_carry_the_genai_attributes(tmp_path: Path, upstream: Any) -> None:
    with OTLPSink() as sink:
        srv = Server(
            tmp_path / "data",
            "--upstream", f"openai={upstream.state.url}",
            "--forward-otlp", f"{sink.url}/otel",
            "--forward-header", "X-Token=s3cret,X-Team=llm",
        )  # fmt: skip
        try:
            client = gateway_client(srv, "forwarded")
            msgs = [{"role": "user", "content": "Forward me"}]
            client.chat.completions.create(model="gpt-4o-mini", messages=msgs, temperature=0.3)
            for _ in client.chat.completions.create(model="gpt-4o-mini", messages=msgs,
                                                    stream=True):  # fmt: skip
                pass
            spans = record_spans(_ingested, service="ingested-app")
            r = srv.client.post(
                "/v1/traces",
                content=traces_protobuf(spans),
                headers={"content-type": "application/x-protobuf"},
            )
            assert r.status_code == 200
            calls = srv.wait_calls(3)
            deadline = time.monotonic() + 15
            while len(sink.spans()) < 3:
                assert time.monotonic() < deadline, sink.spans()
                time.sleep(0.1)
            health = srv.client.get("/api/health").json()["forward"]
        finally:
            srv.stop()

    assert {r["path"] for r in sink.requests} == {"/otel/v1/traces"}
    headers = sink.requests[0]["headers"]
    assert headers["x-token"] == "s3cret" and headers["x-team"] == "llm"
    assert headers["content-type"] == "application/x-protobuf"
    assert health["sent"] == 3 and health["dropped"] == 0 and health["failed"] == 0

    forwarded = {s["span_id"]: s for s in sink.spans()}
    assert len(forwarded) == 3  # one span per call, no other spans
    for call in calls:
        span = forwarded[call["span_id"]]
        a = span["attributes"]
        assert span["trace_id"] == call["trace_id"]
        assert span["kind"] == 3  # CLIENT
        assert span["name"] == f"chat {call['request_model']}"
        assert span["resource"]["service.name"] == call["app"]
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.provider.name"] == a["gen_ai.system"] == "openai"
        assert a["gen_ai.request.model"] == call["request_model"]
        assert a["gen_ai.usage.input_tokens"] == call["input_tokens"]
        assert a["gen_ai.usage.output_tokens"] == call["output_tokens"]
        assert math.isclose(a["gen_ai.usage.cost"], call["cost_usd"])
        assert a["gensight.source"] == call["source"]
        assert math.isclose(span["duration_ms"], call["duration_ms"], abs_tol=0.01)

    gw = [c for c in calls if c["source"] == "gateway"]
    assert len(gw) == 2
    for call in gw:
        a = forwarded[call["span_id"]]["attributes"]
        assert a["gen_ai.response.model"] == call["response_model"]
        assert a["gen_ai.response.id"] == call["response_id"]
        assert a["gen_ai.response.finish_reasons"] == ["stop"]
        assert a["user.id"] == "u-1" and a["session.id"] == a["gen_ai.conversation.id"] == "s-1"
        assert a["server.address"] == "127.0.0.1"
        assert forwarded[call["span_id"]]["status"] == 0
    streamed = next(c for c in gw if c["stream"])
    a = forwarded[streamed["span_id"]]["attributes"]
    assert math.isclose(a["gen_ai.response.time_to_first_chunk"], streamed["ttft_ms"] / 1000)
    plain = next(c for c in gw if not c["stream"])
    assert forwarded[plain["span_id"]]["attributes"]["gen_ai.request.temperature"] == 0.3

    (ingested,) = [c for c in calls if c["source"] == "otlp"]
    span = forwarded[ingested["span_id"]]
    assert ingested["span_id"] == hex_span_id(spans[0]) and span["trace_id"] == hex_trace_id(
        spans[0]
    )
    assert span["parent_span_id"] == hex_span_id(spans[1])  # still under its "rag" span
    assert span["status"] == 2 and span["attributes"]["error.type"] == "rate_limit"


@pytest.mark.parametrize("target", ["dead", "slow"])
def test_a_dead_or_slow_target_changes_nothing_for_clients(
    tmp_path: Path, upstream: Any, target: str
) -> None:
    with Receiver(delay=8) as slow:
        url = f"http://127.0.0.1:{free_port()}" if target == "dead" else slow.url
        srv = Server(tmp_path / "data", "--upstream", f"openai={upstream.state.url}",
                     "--forward-otlp", url)  # fmt: skip
        try:
            client = gateway_client(srv, f"app-{target}")
            msgs = [{"role": "user", "content": "Still fast?"}]
            first = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
            srv.wait_calls(1)
            timings = []
            for _ in range(10):
                started = time.perf_counter()
                answer = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
                timings.append(time.perf_counter() - started)
                assert answer.choices[0].message.content == first.choices[0].message.content
            srv.wait_calls(11)
            assert max(timings) < 2.0, timings
            health = srv.client.get("/api/health").json()
            assert health["status"] == "ok" and health["dropped"] == 0
            if target == "dead":
                assert health["forward"]["sent"] == 0
                deadline = time.monotonic() + 10
                while not health["forward"]["last_error"]:
                    assert time.monotonic() < deadline
                    time.sleep(0.2)
                    health = srv.client.get("/api/health").json()
                assert "Connect" in health["forward"]["last_error"]
        finally:
            srv.stop()


def _call(n: int) -> CallRecord:
    return CallRecord(
        id=str(n), trace_id="ab" * 16, span_id=f"{n:016x}", ts=datetime.now(UTC),
        duration_ms=10.0, source="gateway", app="a", operation="chat", request_model="m",
    )  # fmt: skip


def test_the_queue_is_bounded_and_drops_are_counted() -> None:
    f = Forwarder("http://127.0.0.1:9", queue_size=5)  # never started: nothing is sent
    f.observe([_call(n) for n in range(3)], [])
    f.observe([_call(n) for n in range(3, 7)], [])
    assert f.stats()["queued"] == 5 and f.stats()["dropped"] == 2


def test_encoding_and_urls() -> None:
    req = ExportTraceServiceRequest()
    req.ParseFromString(encode_calls([_call(1), _call(2)]))
    (rs,) = req.resource_spans
    assert [s.span_id.hex() for s in rs.scope_spans[0].spans] == [f"{1:016x}", f"{2:016x}"]
    assert traces_url("http://x:9529/otel") == "http://x:9529/otel/v1/traces"
    assert traces_url("http://x:4318/v1/traces") == "http://x:4318/v1/traces"
    assert traces_url("http://x:4318/") == "http://x:4318/v1/traces"
