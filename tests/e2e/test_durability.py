"""What was accepted survives: SIGTERM flushes the writer queue, restart reads the file."""

from __future__ import annotations

from opentelemetry import trace

from gensight.store.duckdb import MIGRATIONS
from tests.support.otlp_payloads import record_spans, traces_protobuf
from tests.support.server import Server


def _many_calls(n: int):
    def build(tracer: trace.Tracer) -> None:
        for i in range(n):
            with tracer.start_as_current_span(f"chat {i}") as s:
                s.set_attribute("gen_ai.operation.name", "chat")
                s.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                s.set_attribute("gen_ai.usage.input_tokens", 10 + i)
                s.set_attribute("gen_ai.usage.output_tokens", 5)

    return build


def test_sigterm_right_after_accepting_loses_nothing(tmp_path):
    body = traces_protobuf(record_spans(_many_calls(2000), service="durable"))
    srv = Server(tmp_path / "d")
    for _ in range(5):
        r = srv.client.post(
            "/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
        )
        assert r.status_code == 200
    srv.stop()  # SIGTERM at once: the queue must be drained before exit
    assert "Application shutdown complete" in srv.log_path.read_text()

    again = Server(tmp_path / "d")
    try:
        health = again.client.get("/api/health").json()
        assert health["store"]["calls"] == 10_000
        assert health["store"]["schema_version"] == len(MIGRATIONS)
        total = again.client.get("/api/calls", params={"app": "durable", "limit": 5}).json()
        assert total["items"][0]["cost_source"] == "computed"
    finally:
        again.stop()


def test_accepted_calls_are_queryable_within_a_second(server):
    import time

    body = traces_protobuf(record_spans(_many_calls(50), service="fast-visible"))
    t0 = time.monotonic()
    server.client.post(
        "/v1/traces", content=body, headers={"content-type": "application/x-protobuf"}
    )
    server.wait_calls(50, timeout=5, app="fast-visible")
    assert time.monotonic() - t0 < 1.0
