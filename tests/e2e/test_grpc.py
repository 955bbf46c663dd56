"""OTLP/gRPC ingest of a running `gensight serve --grpc`.

The main test runs a script under the real ``opentelemetry-instrument`` (opentelemetry-distro
with the OTLP/gRPC exporter and the openai-v2 instrumentation, in its own venv built by
tests/producers/envs.py) with no exporter settings at all when port 4317 is free, and
checks its calls in the API. Set GENSIGHT_SKIP_PRODUCERS=1 to skip that one on a machine
without PyPI access.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from genai_prices import Usage, calc_price
from opentelemetry import trace
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from gensight.demo import ServerThread
from gensight.model.settings import Settings
from gensight.web.app import create_app
from tests.support.otlp_payloads import hex_span_id, record_spans, traces_protobuf
from tests.support.server import Server, free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "producers"))

from envs import ensure_env  # noqa: E402

SCRIPT = """
import os
import openai

client = openai.OpenAI(base_url=os.environ["UPSTREAM"], api_key="sk-test", max_retries=0)
messages = [{"role": "user", "content": "Hello over gRPC"}]
client.chat.completions.create(model="gpt-4o-mini", messages=messages, temperature=0.1)
stream = client.chat.completions.create(
    model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
)
for _ in stream:
    pass
try:
    client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, extra_headers={"x-fake-status": "429"}
    )
except openai.RateLimitError:
    pass
client.embeddings.create(model="text-embedding-3-small", input="Hello over gRPC")
"""

KEY = "k3y-0123456789abcdef"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.skipif(
    os.environ.get("GENSIGHT_SKIP_PRODUCERS") == "1", reason="GENSIGHT_SKIP_PRODUCERS=1"
)
def test_opentelemetry_instrument_with_default_grpc_export(tmp_path: Path, upstream: Any) -> None:
    python = ensure_env("otel-instrument")
    default = _port_free(4317)  # then the script runs with no exporter settings at all
    port = 4317 if default else free_port()
    srv = Server(tmp_path / "data", "--grpc", "--grpc-port", str(port))
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "UPSTREAM": upstream.state.url,
        "OTEL_SERVICE_NAME": "grpc-app",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
    }
    if not default:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
    try:
        proc = subprocess.run(
            [str(python.parent / "opentelemetry-instrument"), str(python), str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        calls = srv.wait_calls(4, timeout=20, app="grpc-app")
        health = srv.client.get("/api/health").json()["ingest"]
        details = {c["id"]: srv.client.get(f"/api/calls/{c['id']}").json() for c in calls}
    finally:
        srv.stop()

    assert health["grpc_traces"] >= 1 and "metric_points" in health
    assert all(c["source"] == "otlp" and c["producer"] == "openai-v2" for c in calls)
    assert all(c["provider"] == "openai" for c in calls)
    chats = sorted((c for c in calls if c["operation"] == "chat"), key=lambda c: c["ts"])
    (emb,) = [c for c in calls if c["operation"] == "embeddings"]
    assert len(chats) == 3

    # tokens and cost are what the upstream sent and what it costs
    sent = [e for e in upstream.state.log if e.usage and e.status == 200]
    plain, streamed, failed = chats
    assert (plain["input_tokens"], plain["output_tokens"]) == (
        sent[0].usage["prompt_tokens"],
        sent[0].usage["completion_tokens"],
    )
    price = calc_price(
        Usage(input_tokens=plain["input_tokens"], output_tokens=plain["output_tokens"]),
        model_ref="gpt-4o-mini",
        provider_id="openai",
    )
    assert plain["cost_usd"] == pytest.approx(float(price.total_price))
    assert plain["temperature"] == 0.1 and plain["response_model"].startswith("gpt-4o-mini")
    assert streamed["output_tokens"] == sent[1].usage["completion_tokens"]
    assert failed["status"] == "error" and failed["error_class"] == "rate_limit"
    assert emb["input_tokens"] == sent[2].usage["prompt_tokens"]

    # message content arrived as log events over gRPC and joined its call
    content = details[plain["id"]]
    assert content["input_messages"], content
    assert "Hello over gRPC" in str(content["input_messages"])
    assert content["output_messages"]


def _chat_span(tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT) as s:
        s.set_attribute("gen_ai.operation.name", "chat")
        s.set_attribute("gen_ai.provider.name", "openai")
        s.set_attribute("gen_ai.request.model", "gpt-4o")
        s.set_attribute("gen_ai.usage.input_tokens", 100)
        s.set_attribute("gen_ai.usage.output_tokens", 20)


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[httpx.Client, int]]:
    """An in-process server with ``--api-key k3y --grpc`` and an API client with the key."""
    port = free_port()
    settings = Settings(data_dir=tmp_path / "data", api_key=KEY, grpc=True, grpc_port=port)
    with (
        ServerThread(create_app(settings)) as srv,
        httpx.Client(base_url=srv.url, headers={"X-Gensight-Key": KEY}) as api,
    ):
        yield api, port


def test_grpc_receivers_with_the_key(keyed: tuple[httpx.Client, int]) -> None:
    api, port = keyed
    spans = record_spans(_chat_span, service="grpc-direct")
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.ParseFromString(traces_protobuf(spans))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        traces = trace_service_pb2_grpc.TraceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            traces.Export(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError):
            traces.Export(request, metadata=[("authorization", "Bearer nope")], timeout=10)

        answer = traces.Export(request, metadata=[("authorization", f"Bearer {KEY}")], timeout=10)
        assert not answer.partial_success.rejected_spans
        logs = logs_service_pb2_grpc.LogsServiceStub(channel)
        logs.Export(
            logs_service_pb2.ExportLogsServiceRequest(),
            metadata=[("x-gensight-key", KEY)],
            timeout=10,
        )
        metrics = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        metrics.Export(
            metrics_service_pb2.ExportMetricsServiceRequest(),
            metadata=[("x-gensight-key", KEY)],
            compression=grpc.Compression.Gzip,
            timeout=10,
        )

    deadline = time.monotonic() + 10
    while not (items := api.get("/api/calls", params={"app": "grpc-direct"}).json()["items"]):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (call,) = items
    assert call["id"] == hex_span_id(spans[0])
    assert (call["request_model"], call["input_tokens"], call["output_tokens"]) == (
        "gpt-4o", 100, 20,
    )  # fmt: skip
    assert call["cost_usd"] > 0
    counters = api.get("/api/health").json()["ingest"]
    assert counters["grpc_unauthenticated"] == 2 and counters["grpc_traces"] == 1


def test_a_busy_grpc_port_stops_the_server(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="gRPC"):
            Server(tmp_path / "data", "--grpc", "--grpc-port", str(port))
        assert time.monotonic() - started < 30
