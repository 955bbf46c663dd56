"""``gensight.init()`` in real app processes, exporting to a real ``gensight serve``.

Each test runs a small app (a Python subprocess: ``init()`` sets process-wide
OpenTelemetry providers) that calls the fake upstream with the real ``openai`` client,
then reads what Gensight made of it through ``/api/calls`` and ``/api/traces``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gensight.demo.upstream import create_app, serve
from tests.support.server import ROOT, Server, free_port


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve(create_app()) as base_url:
        yield base_url


PRELUDE = """
import json, os, sys, time
import openai
import gensight

UPSTREAM = os.environ["UPSTREAM"]
client = openai.OpenAI(base_url=UPSTREAM, api_key="sk-test", max_retries=0)
MESSAGES = [{"role": "system", "content": "You are terse."},
            {"role": "user", "content": "How do I make tea?"}]
"""


def run_app(
    code: str, upstream: str, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run ``PRELUDE + code`` as an app process; its stdout and stderr are returned."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GENSIGHT_"))}
    clean.update(env or {})
    clean["UPSTREAM"] = upstream
    clean["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + clean.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=clean,
        timeout=timeout,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def calls_of(server: Server, app: str, n: int) -> list[dict[str, Any]]:
    items = server.wait_calls(n, timeout=20, app=app)
    return sorted(items, key=lambda c: c["ts"])


def test_calls_reach_gensight(server: Server, upstream: str):
    app = f"sdk-{uuid.uuid4().hex[:8]}"
    run_app(
        f"""
        assert gensight.init(endpoint={server.url!r}, app={app!r}, environment="test")
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0.3)
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                stream=True,
                                                extra_headers={{"x-fake-ttft-ms": "80"}}):
            pass
        client.embeddings.create(model="text-embedding-3-small", input="tea")
        client.responses.create(model="gpt-4o-mini", input="Tea?")
        try:
            client.chat.completions.create(model="fake-429", messages=MESSAGES)
        except openai.RateLimitError:
            pass
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                           extra_headers={{"x-fake-status": "503"}})
        except openai.InternalServerError:
            pass
        """,
        upstream,
    )
    chat, stream, embed, resp, limited, down = calls_of(server, app, 6)
    for c in (chat, stream, embed, resp, limited, down):
        assert c["source"] == "otlp" and c["producer"] == "gensight-sdk"
        assert c["app"] == app and c["environment"] == "test"
        assert c["provider"] == "openai"
    assert chat["operation"] == "chat" and chat["request_model"] == "gpt-4o-mini"
    assert chat["response_model"] == "gpt-4o-mini-2024-07-18"
    assert chat["temperature"] == 0.3
    assert chat["input_tokens"] > 0 and chat["output_tokens"] > 0
    assert chat["cost_usd"] > 0 and chat["cost_source"] == "computed"
    assert chat["status"] == "ok" and chat["stream"] is False and chat["ttft_ms"] is None
    assert chat["finish_reasons"] == ["stop"]
    assert stream["stream"] is True
    assert stream["ttft_ms"] >= 80
    assert stream["output_tokens"] > 0 and stream["cost_usd"] > 0
    assert embed["operation"] == "embeddings" and embed["input_tokens"] > 0
    assert resp["operation"] == "responses"  # semconv says chat; the record names the API
    attributes = server.client.get(f"/api/calls/{resp['id']}").json()["attributes"]
    assert attributes["openai.api.type"] == "responses"
    assert limited["status"] == "error" and limited["error_class"] == "rate_limit"
    assert limited["http_status"] == 429
    assert down["error_class"] == "upstream_error" and down["http_status"] == 503
    for c in (chat, stream, embed, resp):  # capture is off by default
        full = server.client.get(f"/api/calls/{c['id']}").json()
        assert full["input_messages"] is None and full["output_messages"] is None


def test_a_request_is_one_trace(server: Server, upstream: str):
    app = f"sdk-{uuid.uuid4().hex[:8]}"
    out = run_app(
        f"""
        gensight.init(endpoint={server.url!r}, app={app!r})

        @gensight.trace
        def retrieve(question):
            with gensight.span("vector search", k=3):
                return ["Boil water.", "Steep 3 minutes."]

        @gensight.trace("answer")
        def answer(question):
            docs = retrieve(question)
            return client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{{"role": "user", "content": question + " " + " ".join(docs)}}],
            )

        with gensight.span("POST /ask") as root:
            answer("How do I make tea?")
            client.embeddings.create(model="text-embedding-3-small", input="tea")
        print(format(root.get_span_context().trace_id, "032x"))
        """,
        upstream,
    )
    trace_id = out.stdout.split()[-1]
    calls_of(server, app, 2)
    deadline = time.monotonic() + 10
    while True:
        tree = server.client.get(f"/api/traces/{trace_id}").json()
        if len(tree.get("spans", [])) >= 6 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    spans = {s["name"]: s for s in tree["spans"]}
    assert set(spans) == {
        "POST /ask",
        "answer",
        "retrieve",
        "vector search",
        "chat gpt-4o-mini",
        "embeddings text-embedding-3-small",
    }
    root = spans["POST /ask"]
    assert root["parent_span_id"] is None
    assert spans["answer"]["parent_span_id"] == root["span_id"]
    assert spans["retrieve"]["parent_span_id"] == spans["answer"]["span_id"]
    assert spans["vector search"]["parent_span_id"] == spans["retrieve"]["span_id"]
    assert spans["vector search"]["attributes"]["k"] == 3
    assert spans["chat gpt-4o-mini"]["parent_span_id"] == spans["answer"]["span_id"]
    assert spans["embeddings text-embedding-3-small"]["parent_span_id"] == root["span_id"]
    assert spans["chat gpt-4o-mini"]["kind"] == "client"
    assert {c["operation"] for c in tree["calls"]} == {"chat", "embeddings"}
    assert spans["chat gpt-4o-mini"]["call_id"] in {c["id"] for c in tree["calls"]}


def test_content_capture_from_the_environment(server: Server, upstream: str):
    app = f"sdk-{uuid.uuid4().hex[:8]}"
    run_app(
        """
        gensight.init()
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        client.responses.create(model="gpt-4o-mini", input="Tea?", instructions="Be brief.")
        """,
        upstream,
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": server.url,
            "OTEL_SERVICE_NAME": app,
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging,team=search",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
        },
    )
    chat, resp = calls_of(server, app, 2)
    assert chat["environment"] == "staging"
    full = server.client.get(f"/api/calls/{chat['id']}").json()
    assert full["input_messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "How do I make tea?"},
    ]
    assert full["output_messages"][0]["role"] == "assistant"
    assert full["output_messages"][0]["content"]
    resp_full = server.client.get(f"/api/calls/{resp['id']}").json()
    assert resp_full["system_instructions"][0]["content"] == "Be brief."
    assert resp_full["input_messages"] == [{"role": "user", "content": "Tea?"}]
    found = server.client.get("/api/calls", params={"app": app, "q": "make tea"}).json()
    assert [c["id"] for c in found["items"]] == [chat["id"]]


def test_content_capture_as_events(server: Server, upstream: str):
    app = f"sdk-{uuid.uuid4().hex[:8]}"
    run_app(
        f"""
        gensight.init(endpoint={server.url!r}, app={app!r}, capture_content="event_only")
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        """,
        upstream,
    )
    (chat,) = calls_of(server, app, 1)
    deadline = time.monotonic() + 10
    while True:  # the log record may land after the span
        full = server.client.get(f"/api/calls/{chat['id']}").json()
        if full["input_messages"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert full["input_messages"][1] == {"role": "user", "content": "How do I make tea?"}


def test_init_twice_and_shutdown(server: Server, upstream: str):
    app = f"sdk-{uuid.uuid4().hex[:8]}"
    out = run_app(
        f"""
        import logging
        logging.basicConfig(level=logging.WARNING)
        print(gensight.init(endpoint={server.url!r}, app={app!r}))
        print(gensight.init(endpoint={server.url!r}, app={app!r}))
        print(gensight.init(endpoint={server.url!r}, app="other"))  # ignored, one warning
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        gensight.shutdown()
        gensight.shutdown()
        print(gensight.init(endpoint={server.url!r}, app={app!r}))  # after shutdown: no-op
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # untraced
        """,
        upstream,
    )
    assert out.stdout.split() == ["True", "True", "True", "False"]
    assert out.stderr.count("already called") == 1
    time.sleep(1)
    assert len(calls_of(server, app, 1)) == 1  # one span per call, not two


def test_unreachable_endpoint_does_not_slow_the_app(upstream: str):
    port = free_port()
    out = run_app(
        f"""
        import logging
        logging.basicConfig(level=logging.WARNING)
        for _ in range(3):  # warm up the client
            openai.OpenAI(base_url=UPSTREAM, api_key="k").models.list()
        def timed(n):
            t = time.perf_counter()
            for _ in range(n):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            return (time.perf_counter() - t) / n
        before = timed(20)
        assert gensight.init(endpoint="http://127.0.0.1:{port}", app="offline")
        from gensight.sdk import setup
        deadline = time.monotonic() + 30  # the price data loads in the background first
        while setup._state.instrumentor.telemetry.pricer is None and time.monotonic() < deadline:
            time.sleep(0.1)
        timed(5)
        after = timed(20)
        gensight.flush(timeout=1)  # an export fails: one warning
        for _ in range(20):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        gensight.flush(timeout=1)
        t = time.perf_counter()
        gensight.shutdown()
        print(json.dumps({{"before": before, "after": after,
                           "shutdown": time.perf_counter() - t}}))
        """,
        upstream,
        timeout=60,
    )
    timings = json.loads(out.stdout.strip().splitlines()[-1])
    assert timings["after"] < timings["before"] * 1.5 + 0.005
    assert timings["shutdown"] < 3
    warnings = [line for line in out.stderr.splitlines() if "gensight" in line]
    assert len(warnings) == 1, out.stderr
    assert f"127.0.0.1:{port}" in warnings[0]
    assert "Traceback" not in out.stderr


def test_bad_endpoint_logs_one_warning(upstream: str):
    out = run_app(
        """
        import logging
        logging.basicConfig(level=logging.WARNING)
        from openai.resources.chat.completions.completions import Completions
        print(gensight.init(endpoint="localhost:4318"))
        print(gensight.init(endpoint="localhost:4318"))
        r = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        print(bool(r.choices))
        print(hasattr(Completions.__dict__["create"], "__gensight_original__"))
        print(gensight.init(endpoint="http://127.0.0.1:9"))  # a usable one still works
        print(hasattr(Completions.__dict__["create"], "__gensight_original__"))
        """,
        upstream,
    )
    assert out.stdout.split() == ["False", "False", "True", "False", "True", "True"]
    warnings = [line for line in out.stderr.splitlines() if "localhost:4318" in line]
    assert len(warnings) == 1 and "gensight" in warnings[0]


def test_the_apps_own_providers_are_used(server: Server, upstream: str):
    app = f"sdk-{uuid.uuid4().hex[:8]}"
    out = run_app(
        f"""
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        mine = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({{"service.name": {app!r}}}))
        provider.add_span_processor(SimpleSpanProcessor(mine))
        trace.set_tracer_provider(provider)
        gensight.init(endpoint={server.url!r})  # explicit endpoint: Gensight gets spans too
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        gensight.flush()
        print(json.dumps([s.name for s in mine.get_finished_spans()]))
        """,
        upstream,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["chat gpt-4o-mini"]
    (call,) = calls_of(server, app, 1)
    assert call["app"] == app


def test_the_sdk_imports_nothing_of_the_server(upstream: str):
    out = run_app(
        """
        gensight.init(endpoint="http://127.0.0.1:9")
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        time.sleep(2)  # let the price data load
        heavy = {"duckdb", "fastapi", "uvicorn", "pyarrow", "starlette", "typer", "rich"}
        print(sorted({m.split(".")[0] for m in sys.modules} & heavy))
        """,
        upstream,
        env={"GENSIGHT_COST": "true"},
    )
    assert out.stdout.split()[-1] == "[]"


def test_import_gensight_alone_is_cheap():
    code = "import sys, gensight; print(sorted(m for m in sys.modules if 'opentelemetry' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
