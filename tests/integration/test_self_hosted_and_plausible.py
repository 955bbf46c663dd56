"""Self-hosted calls are not priced publicly (gateway, SDK) and implausible numbers
never reach totals, budgets or /metrics (the whole app in-process, real DuckDB file)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from gensight.demo import ServerThread
from gensight.enrich.pricing import Pricer
from gensight.model.settings import Settings
from gensight.sdk.instrumentor import SCOPE, OpenAIInstrumentor
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from tests.support.otlp_payloads import record_spans, traces_protobuf

MSGS = [{"role": "user", "content": "How far is the moon?"}]


class App:
    """The whole server in a thread (gateway + API), over a DuckDB file."""

    def __init__(self, tmp: Path, **settings: Any) -> None:
        self.app = create_app(
            Settings(data_dir=tmp, flush_interval=0.01, **settings),
            store=DuckDBStore(tmp / "g.duckdb"),
        )
        self.server = ServerThread(self.app, server_header=False).start()
        self.url = self.server.url

    def client(self, upstream: str, session: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/p/{upstream}/v1",
            api_key="sk-test",
            max_retries=0,
            default_headers={"X-Gensight-Session": session},
        )

    def call(self, session: str) -> dict[str, Any]:
        import httpx

        deadline = time.monotonic() + 10
        with httpx.Client(base_url=self.url, timeout=10) as api:
            while time.monotonic() < deadline:
                self.app.state.pipeline.flush()
                items = api.get("/api/calls", params={"session": session}).json()["items"]
                if items:
                    return api.get(f"/api/calls/{items[0]['id']}").json()
                time.sleep(0.05)
        raise AssertionError(f"no call recorded for {session}")

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def gateway(upstream: Any, tmp_path: Path) -> Iterator[App]:
    # priced_hosts as the tests' environment has it: the fake upstream stands for OpenAI
    g = App(tmp_path, upstreams={"openai": upstream.state.url, "ollama": upstream.state.url})
    yield g
    g.stop()


def test_gateway_upstream_named_ollama_is_not_priced(gateway: App) -> None:
    s = "s-" + uuid.uuid4().hex[:10]
    r = gateway.client("ollama", s).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    c = gateway.call(s)
    assert c["provider"] == "ollama"
    assert c["input_tokens"] == r.usage.prompt_tokens > 0
    assert (c["cost_usd"], c["cost_source"]) == (None, "unknown")
    assert c["attributes"]["gensight.cost_reason"] == "self_hosted"
    # the same upstream under the name openai, on a host listed as priced: priced
    s2 = "s-" + uuid.uuid4().hex[:10]
    gateway.client("openai", s2).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    c2 = gateway.call(s2)
    assert c2["cost_source"] == "computed" and c2["cost_usd"] > 0


def test_gateway_upstream_on_loopback_is_self_hosted_by_default(
    upstream: Any, tmp_path: Path
) -> None:
    g = App(tmp_path, upstreams={"openai": upstream.state.url}, priced_hosts=())
    try:
        s = "s-" + uuid.uuid4().hex[:10]
        g.client("openai", s).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        c = g.call(s)
        assert c["provider"] == "openai" and c["input_tokens"] > 0
        assert (c["cost_usd"], c["cost_source"]) == (None, "unknown")
        assert c["attributes"]["gensight.cost_reason"] == "self_hosted"
    finally:
        g.stop()


@pytest.mark.parametrize(("priced_hosts", "priced"), [((), False), (("127.0.0.1",), True)])
def test_sdk_sets_no_cost_for_a_self_hosted_server(
    upstream: Any, priced_hosts: tuple[str, ...], priced: bool
) -> None:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    inst = OpenAIInstrumentor(tracer_provider=tp, pricer=Pricer(priced_hosts=priced_hosts))
    inst.instrument()
    try:
        client = openai.OpenAI(base_url=upstream.state.url, api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    finally:
        inst.uninstrument()
    (span,) = [s for s in exporter.get_finished_spans() if s.instrumentation_scope.name == SCOPE]
    attrs = dict(span.attributes)
    assert attrs["server.address"] == "127.0.0.1" and attrs["gen_ai.usage.input_tokens"] > 0
    assert ("gen_ai.usage.cost" in attrs) is priced
    if priced:
        assert attrs["gen_ai.usage.cost"] > 0


# -- implausible numbers ---------------------------------------------------------------


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, flush_interval=0.01, alert_interval=3600)
    with TestClient(create_app(settings, store=DuckDBStore(tmp_path / "p.duckdb"))) as c:
        yield c


def _chat(tracer: trace.Tracer, model: str, inp: int, out: int, **extra: Any) -> None:
    with tracer.start_as_current_span(f"chat {model}", kind=trace.SpanKind.CLIENT) as s:
        s.set_attribute("gen_ai.operation.name", "chat")
        s.set_attribute("gen_ai.provider.name", "openai")
        s.set_attribute("gen_ai.request.model", model)
        s.set_attribute("gen_ai.usage.input_tokens", inp)
        s.set_attribute("gen_ai.usage.output_tokens", out)
        for k, v in extra.items():
            s.set_attribute(k, v)


def _send(client: TestClient, build: Any, app: str) -> None:
    r = client.post(
        "/v1/traces",
        content=traces_protobuf(record_spans(build, service=app)),
        headers={"content-type": "application/x-protobuf"},
    )
    assert r.status_code == 200, r.text
    assert client.app.state.pipeline.flush(10)


def _tokens(client: TestClient, app: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == "gensight_tokens_total" and s.labels.get("app") == app:
                out[s.labels["type"]] = out.get(s.labels["type"], 0) + s.value
    return out


def test_one_negative_token_count_does_not_drop_its_batch_from_metrics(app_client) -> None:
    app = "metrics-" + uuid.uuid4().hex[:6]

    def build(tracer: trace.Tracer) -> None:
        _chat(tracer, "gpt-4o-mini", 100, 10)
        _chat(tracer, "gpt-4o-mini", -50, 7)  # a producer's bug
        _chat(tracer, "gpt-4o-mini", 200, 20)

    _send(app_client, build, app)
    calls = app_client.get("/api/calls", params={"app": app}).json()["items"]
    assert len(calls) == 3  # the call with the bad count is kept
    assert sorted(c["input_tokens"] is None for c in calls) == [False, False, True]
    tokens = _tokens(app_client, app)
    assert tokens["input"] == 300 and tokens["output"] == 37
    totals = app_client.get("/api/stats/overview", params={"app": app}).json()["totals"]
    assert (totals["calls"], totals["input_tokens"], totals["output_tokens"]) == (3, 300, 37)


def test_a_negative_cost_is_not_stored_and_does_not_disable_a_budget(app_client) -> None:
    app = "budget-" + uuid.uuid4().hex[:6]
    rule = {
        "name": "budget",
        "measure": "cost_usd",
        "window": "1h",
        "filters": {"app": app},
        "op": ">",
        "threshold": 0.0001,
        "action": "block",
    }
    r = app_client.post("/api/alert-rules", json=rule)
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]

    def build(tracer: trace.Tracer) -> None:
        _chat(tracer, "gpt-4o", 10_000, 1_000)  # priced from genai-prices: ~$0.035
        # an unpriced model whose producer "reports" -1e6 USD
        _chat(tracer, "acme-internal-7", 10, 10, **{"gen_ai.usage.cost": -1e6})

    _send(app_client, build, app)
    calls = app_client.get("/api/calls", params={"app": app}).json()["items"]
    by_model = {c["request_model"]: c for c in calls}
    bad = app_client.get(f"/api/calls/{by_model['acme-internal-7']['id']}").json()
    assert (bad["cost_usd"], bad["cost_source"]) == (None, "unknown")
    assert bad["attributes"]["gensight.refused.reported_cost_usd"] == -1e6
    priced = by_model["gpt-4o"]["cost_usd"]
    assert priced > 0.0001
    totals = app_client.get("/api/stats/overview", params={"app": app}).json()["totals"]
    assert totals["cost_usd"] == pytest.approx(priced)

    app_client.app.state.alerts.evaluate()
    states = {a["rule_id"]: a for a in app_client.get("/api/alerts").json()}
    assert states[rule_id]["state"] == "firing"
    assert states[rule_id]["value"] == pytest.approx(priced)
