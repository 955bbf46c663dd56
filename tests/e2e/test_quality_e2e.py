"""Issue #20's "done when", from outside, on both stores: an app calls models through the
gateway with the real ``openai`` client, sends thumbs up/down for each call, filters the
failed-quality calls and sees which model gives the best answers per dollar; and an
evaluator's ``gen_ai.evaluation.result`` events, sent by the real OpenTelemetry SDK over
OTLP/HTTP before and after the span they judge, become scores of that call.

The call id an app passes back is the gateway's ``X-Gensight-Call-Id`` answer header (#14),
checked against the record ``GET /api/calls`` lists for the response id the client got.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from genai_prices import Usage, calc_price
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.support.server import STORES, Server, store_args

# per model, the thumbs the app's users give its four answers (1 = up, 0 = down)
THUMBS = {"gpt-4o": [1, 1, 1, 0], "gpt-4o-mini": [1, 0, 0, 0]}


@pytest.fixture(scope="module", params=STORES)
def gateway(request: pytest.FixtureRequest, upstream: Any, tmp_path_factory) -> Iterator[Server]:
    data: Path = tmp_path_factory.mktemp(f"quality-{request.param}")
    srv = Server(
        data, *store_args(request.param, data), "--upstream", f"openai={upstream.state.url}"
    )
    yield srv
    srv.stop()


def _wait(fetch: Any, ok: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not ok(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = fetch()
    return value


def _price(model: str, usage: Any) -> float:
    cached = getattr(usage.prompt_tokens_details, "cached_tokens", None) or 0
    used = Usage(
        input_tokens=usage.prompt_tokens,
        cache_read_tokens=cached,
        output_tokens=usage.completion_tokens,
    )
    return float(calc_price(used, model_ref=model, provider_id="openai").total_price)


def test_thumbs_from_the_app_find_bad_answers_and_the_best_model_per_dollar(gateway: Server):
    srv = gateway
    app = f"helpdesk-{uuid.uuid4().hex[:8]}"
    client = openai.OpenAI(
        base_url=f"{srv.url}/openai/v1",
        api_key="sk-test",
        max_retries=0,
        default_headers={"X-Gensight-App": app},
    )
    answers: list[tuple[str, Any, int, str]] = []  # (model, response, thumb, call id)
    for model, thumbs in THUMBS.items():
        for i, thumb in enumerate(thumbs):
            question = f"Question {i} about invoices for {model}?"
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=[{"role": "user", "content": question}]
            )
            answers.append((model, raw.parse(), thumb, raw.headers["x-gensight-call-id"]))
    # thumbs may come back before the call is stored: send them at once
    call_ids: dict[str, int] = {}
    for _model, _r, thumb, call_id in answers:
        body = {
            "call_id": call_id,
            "name": "thumbs",
            "value": thumb,
            "label": "up" if thumb else "down",
            "source": "user",
            "author": "end-user-7",
        }
        sent = srv.client.post("/api/scores", json=body)
        assert sent.status_code == 202, sent.text
        call_ids[call_id] = thumb
    calls = srv.wait_calls(len(answers), app=app, timeout=20)
    by_response = {c["response_id"]: c["id"] for c in calls}
    assert {by_response[r.id]: cid for _m, r, _t, cid in answers} == {
        cid: cid for *_, cid in answers
    }

    down = {cid for cid, thumb in call_ids.items() if thumb == 0}

    def failed() -> set[str]:
        params = {"app": app, "score": "thumbs:<1", "limit": 100}
        return {c["id"] for c in srv.client.get("/api/calls", params=params).json()["items"]}

    assert _wait(failed, lambda got: got == down) == down
    by_label = srv.client.get("/api/calls", params={"app": app, "score": "thumbs:=down"})
    assert {c["id"] for c in by_label.json()["items"]} == down
    one = srv.client.get(f"/api/calls/{next(iter(down))}").json()
    assert [(s["name"], s["value"], s["label"], s["source"]) for s in one["scores"]] == [
        ("thumbs", 0.0, "down", "user")
    ]

    # best answers per dollar, computed here from what the client was told (usage, priced
    # by genai-prices) and the thumbs it sent
    expected: dict[str, float] = {}
    for model, thumbs in THUMBS.items():
        costs = [_price(m, r.usage) for m, r, _t, _c in answers if m == model]
        share = sum(thumbs) / len(thumbs)
        expected[model] = (sum(costs) / len(costs)) / share
    r = srv.client.get(
        "/api/analysis/cost-per-good-answer",
        params={"app": app, "score": "thumbs", "threshold": 1, "group_by": "model"},
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    got = {i["group"]: i["cost_per_good_answer_usd"] for i in items}
    assert got == pytest.approx(expected, rel=1e-6)
    assert [i["group"] for i in items] == sorted(expected, key=expected.get)
    assert {i["group"]: i["good_share"] for i in items} == pytest.approx(
        {m: sum(t) / len(t) for m, t in THUMBS.items()}
    )
    # the overview's model groups carry the thumbs' mean and count
    ov = srv.client.get("/api/stats/overview", params={"app": app, "group_by": "model"}).json()
    means = {g["group"]: g["scores"]["thumbs"] for g in ov["groups"]}
    for model, thumbs in THUMBS.items():
        assert means[model]["mean"] == pytest.approx(sum(thumbs) / len(thumbs))
        assert means[model]["count"] == len(thumbs)
    # the analysis page shows the same ranking, best first
    page = httpx.get(
        srv.url + "/analysis", params={"app": app, "quality_score": "thumbs", "threshold": "1"}
    ).text
    table = page[page.index('id="good-answers-table"') :]
    best, worst = sorted(expected, key=expected.get)
    assert table.index(f">{best}<") < table.index(f">{worst}<")


def _chat_span(tracer: trace.Tracer, model: str) -> trace.Span:
    span = tracer.start_span(f"chat {model}", kind=trace.SpanKind.CLIENT)
    span.set_attribute("gen_ai.operation.name", "chat")
    span.set_attribute("gen_ai.provider.name", "openai")
    span.set_attribute("gen_ai.request.model", model)
    span.set_attribute("gen_ai.usage.input_tokens", 120)
    span.set_attribute("gen_ai.usage.output_tokens", 30)
    return span


def test_evaluation_events_before_and_after_their_span_become_its_scores(gateway: Server):
    srv = gateway
    app = f"evaluator-{uuid.uuid4().hex[:8]}"
    resource = Resource.create({"service.name": app})
    spans = TracerProvider(resource=resource)
    spans.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(f"{srv.url}/v1/traces")))
    logs = LoggerProvider(resource=resource)
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(f"{srv.url}/v1/logs")))
    tracer, logger = spans.get_tracer("tests.evaluator"), logs.get_logger("tests.evaluator")
    try:
        span = _chat_span(tracer, "gpt-4o-mini")
        ctx = trace.set_span_in_context(span)
        # judged while the span is still open: the event reaches the server first
        logger.emit(
            event_name="gen_ai.evaluation.result",
            context=ctx,
            attributes={
                "gen_ai.evaluation.name": "relevance",
                "gen_ai.evaluation.score.value": 0.25,
                "gen_ai.evaluation.score.label": "irrelevant",
                "gen_ai.evaluation.explanation": "answers another question",
            },
        )
        call_id = f"{span.get_span_context().span_id:016x}"

        def scores() -> list[dict[str, Any]]:
            return srv.client.get("/api/scores", params={"app": app}).json()["items"]

        assert len(_wait(scores, lambda s: len(s) == 1)) == 1
        assert srv.client.get(f"/api/calls/{call_id}").status_code == 404
        span.end()
        (call,) = srv.wait_calls(1, app=app)
        assert call["id"] == call_id
        # judged after the span was exported: a label only
        logger.emit(
            event_name="gen_ai.evaluation.result",
            context=ctx,
            attributes={
                "gen_ai.evaluation.name": "toxicity",
                "gen_ai.evaluation.score.label": "none",
            },
        )
    finally:
        spans.shutdown()
        logs.shutdown()

    def joined() -> list[dict[str, Any]]:
        return srv.client.get(f"/api/calls/{call_id}").json()["scores"]

    got = {s["name"]: s for s in _wait(joined, lambda s: len(s) == 2)}
    assert (got["relevance"]["value"], got["relevance"]["label"]) == (0.25, "irrelevant")
    assert got["relevance"]["comment"] == "answers another question"
    assert (got["toxicity"]["value"], got["toxicity"]["label"]) == (None, "none")
    assert {s["source"] for s in got.values()} == {"eval"}
    assert {s["app"] for s in got.values()} == {app}
    found = srv.client.get("/api/calls", params={"app": app, "score": "relevance:<0.5"})
    assert [c["id"] for c in found.json()["items"]] == [call_id]


def test_scores_acknowledged_before_a_sigkill_are_replayed_from_the_journal(tmp_path: Path):
    srv = Server(tmp_path / "d", "--flush-interval", "60")  # nothing reaches the store
    api = [
        {"id": f"api-{i}", "call_id": f"{i:016x}", "name": "helpful", "value": i / 10}
        for i in range(10)
    ]
    assert srv.client.post("/api/scores", json=api).status_code == 202
    # an evaluation event over OTLP, journaled as the bytes received
    logs = LoggerProvider(resource=Resource.create({"service.name": "journaled"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(f"{srv.url}/v1/logs")))
    spans = TracerProvider()
    span = spans.get_tracer("tests").start_span("chat")
    logs.get_logger("tests").emit(
        event_name="gen_ai.evaluation.result",
        context=trace.set_span_in_context(span),
        attributes={"gen_ai.evaluation.name": "correct", "gen_ai.evaluation.score.value": 1},
    )
    logs.shutdown()
    srv.stop(signal.SIGKILL)  # the queue dies with the process; the journal does not
    again = Server(tmp_path / "d")
    try:
        got = _wait(
            lambda: again.client.get("/api/scores", params={"limit": 100}).json()["items"],
            lambda s: len(s) >= 11,
        )
        assert sorted(s["id"] for s in got if s["name"] == "helpful") == sorted(
            s["id"] for s in api
        )
        (correct,) = [s for s in got if s["name"] == "correct"]
        assert correct["target_id"] == f"{span.get_span_context().span_id:016x}"
        assert (correct["value"], correct["source"], correct["app"]) == (1.0, "eval", "journaled")
        # resent after the restart: the same ids, stored once
        marker = {"id": "after", "call_id": "f" * 16, "name": "helpful", "value": 1}
        assert again.client.post("/api/scores", json=[*api, marker]).status_code == 202
        items = _wait(
            lambda: again.client.get("/api/scores", params={"limit": 100}).json()["items"],
            lambda s: "after" in {x["id"] for x in s},
        )
        assert len(items) == 12
    finally:
        again.stop()


def test_evaluation_span_events_and_log_records_over_grpc(tmp_path: Path):
    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    from tests.support.otlp_payloads import logs_protobuf, record_spans, traces_protobuf
    from tests.support.server import free_port

    port = free_port()
    srv = Server(tmp_path / "data", "--grpc", "--grpc-port", str(port))
    try:

        def build(tracer: trace.Tracer) -> None:
            span = _chat_span(tracer, "gpt-4o")
            # an evaluator inside the app, judging the span it is in (a span event)
            span.add_event(
                "gen_ai.evaluation.result",
                {"gen_ai.evaluation.name": "groundedness", "gen_ai.evaluation.score.value": 0.4},
            )
            span.end()

        spans = record_spans(build, service="grpc-evals")
        call_id = f"{spans[0].context.span_id:016x}"
        exporter = InMemoryLogRecordExporter()
        logs = LoggerProvider(resource=Resource.create({"service.name": "grpc-evals"}))
        logs.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logs.get_logger("tests").emit(
            event_name="gen_ai.evaluation.result",
            context=trace.set_span_in_context(trace.NonRecordingSpan(spans[0].context)),
            attributes={"gen_ai.evaluation.name": "tone", "gen_ai.evaluation.score.label": "ok"},
        )
        logs.shutdown()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            # the log record first: its call is not there yet
            request = logs_service_pb2.ExportLogsServiceRequest.FromString(
                logs_protobuf(list(exporter.get_finished_logs()))
            )
            logs_service_pb2_grpc.LogsServiceStub(channel).Export(request, timeout=10)
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(traces_protobuf(spans))
            trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)
        (call,) = srv.wait_calls(1, app="grpc-evals")
        assert call["id"] == call_id

        def scores() -> dict[str, Any]:
            got = srv.client.get(f"/api/calls/{call_id}").json()["scores"]
            return {s["name"]: (s["value"], s["label"], s["source"]) for s in got}

        assert _wait(scores, lambda s: len(s) == 2) == {
            "groundedness": (0.4, None, "eval"),
            "tone": (None, "ok", "eval"),
        }
    finally:
        srv.stop()
