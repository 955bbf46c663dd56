"""Prometheus ``/metrics`` of a running `gensight serve`: parsed with prometheus_client's
own parser, its counters equal the JSON API's totals for the same calls."""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry import trace
from prometheus_client.parser import text_string_to_metric_families

from gensight.export.prometheus import OTHER, Metrics
from gensight.model.records import CallRecord
from tests.support.otlp_payloads import record_spans, traces_protobuf
from tests.support.server import STORES, Server, store_args


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name → [(labels, value)] of a Prometheus text exposition."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def total(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **where: str) -> float:
    return sum(
        v for labels, v in found.get(name, []) if all(labels.get(k) == x for k, x in where.items())
    )


def _otlp_call(tracer: trace.Tracer) -> None:
    with tracer.start_as_current_span("chat gpt-4o", kind=trace.SpanKind.CLIENT) as s:
        s.set_attribute("gen_ai.operation.name", "chat")
        s.set_attribute("gen_ai.provider.name", "openai")
        s.set_attribute("gen_ai.request.model", "gpt-4o")
        s.set_attribute("gen_ai.usage.input_tokens", 1000)
        s.set_attribute("gen_ai.usage.output_tokens", 200)
        s.set_attribute("gen_ai.usage.cache_read.input_tokens", 512)


@pytest.mark.parametrize("store", STORES)
def test_metrics_counters_equal_the_api_totals(tmp_path: Path, upstream: Any, store: str) -> None:
    data = tmp_path / "data"
    since = datetime.now(UTC).isoformat()
    srv = Server(data, *store_args(store, data), "--upstream", f"openai={upstream.state.url}",
                 "--retries", "0")  # fmt: skip
    try:

        def client(app: str) -> openai.OpenAI:
            return openai.OpenAI(
                base_url=f"{srv.url}/openai/v1",
                api_key="sk-test",
                max_retries=0,
                default_headers={"X-Gensight-App": app},
            )

        msgs = [{"role": "user", "content": "What is a counter?"}]
        web, batch = client("web"), client("batch")
        for _ in range(2):
            web.chat.completions.create(model="gpt-4o-mini", messages=msgs)
        stream = batch.chat.completions.create(model="gpt-4o", messages=msgs, stream=True)
        for _ in stream:
            pass
        batch.embeddings.create(model="text-embedding-3-small", input="hello")
        with pytest.raises(openai.InternalServerError):
            web.chat.completions.create(model="fake-500", messages=msgs)
        with pytest.raises(openai.RateLimitError):
            batch.chat.completions.create(model="fake-429", messages=msgs)
        r = srv.client.post(
            "/v1/traces",
            content=traces_protobuf(record_spans(_otlp_call, service="otlp-app")),
            headers={"content-type": "application/x-protobuf"},
        )
        assert r.status_code == 200
        srv.wait_calls(7, since=since)

        # the writer counts a batch right after storing it: a scrape may briefly lag
        deadline = time.monotonic() + 10
        while True:
            response = srv.client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            found = samples(response.text)
            if total(found, "gensight_calls_total") >= 7 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        api = srv.client.get("/api/stats/overview", params={"since": since}).json()["totals"]

        assert total(found, "gensight_calls_total") == api["calls"] == 7
        assert total(found, "gensight_calls_total", status="error") == api["errors"] == 2
        assert total(found, "gensight_errors_total") == api["errors"]
        for error_class in ("upstream_error", "rate_limit"):
            by_class = srv.client.get(
                "/api/stats/overview", params={"since": since, "error_class": error_class}
            ).json()["totals"]
            assert total(found, "gensight_errors_total", error_class=error_class) == (
                by_class["errors"]
            ) == 1  # fmt: skip
        assert total(found, "gensight_tokens_total", type="input") == api["input_tokens"]
        assert total(found, "gensight_tokens_total", type="output") == api["output_tokens"]
        assert total(found, "gensight_tokens_total", type="cache_read") == 512
        assert math.isclose(total(found, "gensight_cost_usd_total"), api["cost_usd"])
        assert api["cost_usd"] > 0
        assert total(found, "gensight_call_duration_seconds_count") == api["calls"]
        assert total(found, "gensight_ttft_seconds_count") == 1  # the one stream

        for app in ("web", "batch", "otlp-app"):
            per_app = srv.client.get(
                "/api/stats/overview", params={"since": since, "app": app}
            ).json()["totals"]
            assert total(found, "gensight_calls_total", app=app) == per_app["calls"]
            assert math.isclose(
                total(found, "gensight_cost_usd_total", app=app), per_app["cost_usd"]
            )
        assert total(found, "gensight_calls_total", model="gpt-4o", provider="openai") == 2

        assert total(found, "gensight_writer_queue_depth") == 0
        assert total(found, "gensight_writer_queue_capacity") > 0
        assert total(found, "gensight_writer_dropped_records_total") == 0
        assert total(found, "gensight_writer_written_records_total") > 0
        assert "gensight_writer_spill_bytes" in found
    finally:
        srv.stop()


def _call(app: str, model: str = "m", cost: float | None = 0.5) -> CallRecord:
    return CallRecord(
        id=app, trace_id="t", span_id="s", ts=datetime.now(UTC), duration_ms=1200.0,
        source="gateway", app=app, provider="openai", request_model=model,
        input_tokens=10, output_tokens=5, cost_usd=cost,
    )  # fmt: skip


def test_label_values_are_bounded() -> None:
    m = Metrics(max_values=2)
    m.observe([_call(f"app-{i}") for i in range(50)] + [_call("app-0")], [])
    found = samples(m.render().decode())
    apps = {labels["app"] for labels, _ in found["gensight_calls_total"]}
    assert apps == {"app-0", "app-1", OTHER}
    assert total(found, "gensight_calls_total") == 51  # nothing lost, only grouped
    assert total(found, "gensight_calls_total", app="app-0") == 2
    assert total(found, "gensight_calls_total", app=OTHER) == 48
    assert total(found, "gensight_cost_usd_total") == 25.5
    assert total(found, "gensight_call_duration_seconds_bucket", le="1.0") == 0
    assert total(found, "gensight_call_duration_seconds_bucket", le="2.0") == 51


def test_unpriced_calls_add_no_cost() -> None:
    m = Metrics()
    m.observe([_call("a", cost=None), _call("a", cost=0.25)], [])
    found = samples(m.render().decode())
    assert total(found, "gensight_calls_total") == 2
    assert total(found, "gensight_cost_usd_total") == 0.25
