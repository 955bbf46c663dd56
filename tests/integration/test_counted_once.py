"""Every call stored once, on both stores: resent bodies, lost acknowledgements, and the
same call reported by two producers, in one batch or seconds apart."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace

from gensight.model.records import CallRecord, ContentEvent, SpanRecord
from gensight.model.settings import Settings
from gensight.pipeline.merge import MERGED_FROM
from gensight.pipeline.writer import Pipeline
from gensight.query import answers
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from tests.support.otlp_payloads import record_spans, traces_protobuf
from tests.support.stores import fresh_chdb_store

PB = {"content-type": "application/x-protobuf"}
WIDE = {"since": "2020-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}


@pytest.fixture(params=["duckdb", "chdb"])
def store(request, tmp_path: Path, chdb_path: Path) -> Iterator[Any]:
    s = DuckDBStore(tmp_path / "once.duckdb") if request.param == "duckdb" else (
        fresh_chdb_store(chdb_path))  # fmt: skip
    yield s
    s.close()


@pytest.fixture
def client(store, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=tmp_path), store=store)
    with TestClient(app) as c:
        c.app_state = app.state  # type: ignore[attr-defined]
        yield c


def _post(client: TestClient, body: bytes) -> None:
    r = client.post("/v1/traces", content=body, headers=PB)
    assert r.status_code == 200, r.text
    assert client.app_state.pipeline.flush(10)  # type: ignore[attr-defined]


def _totals(client: TestClient, **params: str) -> dict[str, Any]:
    return client.get("/api/stats/overview", params={**WIDE, **params}).json()["totals"]


def _metric(client: TestClient, name: str, app: str) -> float:
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and f'app="{app}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _chat(tracer: trace.Tracer, name: str, response_id: str, **attrs: Any) -> None:
    with tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT) as sp:
        sp.set_attribute("gen_ai.operation.name", "chat")
        sp.set_attribute("gen_ai.response.id", response_id)
        for k, v in attrs.items():
            sp.set_attribute(k, v)


def test_the_same_otlp_body_sent_twice_is_one_record(client):
    def build(tracer: trace.Tracer) -> None:
        _chat(tracer, "chat gpt-4o-mini", "chatcmpl-twice", **{
            "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 7})  # fmt: skip

    body = traces_protobuf(record_spans(build, service="twice"))
    _post(client, body)
    _post(client, body)  # the exporter's retry after a timeout it did not see succeed
    items = client.get("/api/calls", params={"app": "twice"}).json()["items"]
    assert len(items) == 1
    t = _totals(client, app="twice")
    assert (t["calls"], t["input_tokens"], t["output_tokens"]) == (1, 100, 7)
    assert len(client.get(f"/api/traces/{items[0]['trace_id']}").json()["spans"]) == 1
    assert _metric(client, "gensight_calls_total", "twice") == 1
    assert _metric(client, "gensight_tokens_total", "twice") == 107


def _two_producers(tracer: trace.Tracer) -> None:
    """The anthropic SDK's own span, then OpenLLMetry's for the same call (siblings, so
    the SDK's is exported first)."""
    with tracer.start_as_current_span("handler", kind=trace.SpanKind.SERVER):
        _chat(tracer, "anthropic.messages.create", "msg_01XYZ", **{
            "gen_ai.provider.name": "anthropic", "gen_ai.request.model": "claude-sonnet-4-0",
            "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 12})  # fmt: skip
        _chat(tracer, "anthropic.chat", "msg_01XYZ", **{
            "gen_ai.system": "Anthropic", "gen_ai.request.model": "claude-sonnet-4-0",
            "gen_ai.response.model": "claude-sonnet-4-20250514",
            "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 12,
            "gen_ai.response.finish_reasons": ("end_turn",),
            "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"hi"}]}]',
            "llm.request.type": "chat"})  # fmt: skip


def _assert_one_merged_call(client: TestClient, first_span_id: str, other_span_id: str) -> None:
    items = client.get("/api/calls", params={"app": "two-producers"}).json()["items"]
    assert len(items) == 1, items
    call = client.get(f"/api/calls/{items[0]['id']}").json()
    assert call["id"] == first_span_id  # the first report's id stays
    assert call["response_model"] == "claude-sonnet-4-20250514"  # only the second had it
    assert call["finish_reasons"] == ["end_turn"]
    assert call["input_messages"][0]["role"] == "user"
    assert (call["input_tokens"], call["output_tokens"]) == (40, 12)
    assert [m["span_id"] for m in call["attributes"][MERGED_FROM]] == [other_span_id]
    t = _totals(client, app="two-producers")
    assert (t["calls"], t["input_tokens"], t["output_tokens"]) == (1, 40, 12)
    assert _metric(client, "gensight_calls_total", "two-producers") == 1
    assert _metric(client, "gensight_tokens_total", "two-producers") == 52
    # both reports stay as spans of the trace, both pointing at the one record
    spans = client.get(f"/api/traces/{call['trace_id']}").json()["spans"]
    by_id = {s["span_id"]: s for s in spans}
    assert len(spans) == 3
    assert by_id[first_span_id]["call_id"] == by_id[other_span_id]["call_id"] == call["id"]


def _span_id(span: Any) -> str:
    return f"{span.context.span_id:016x}"


def test_two_producers_in_one_batch_are_one_call(client):
    spans = record_spans(_two_producers, service="two-producers")
    sdk, openllmetry = spans[0], spans[1]
    _post(client, traces_protobuf(spans))
    _assert_one_merged_call(client, _span_id(sdk), _span_id(openllmetry))


def test_two_producers_in_two_batches_are_one_call(client):
    spans = record_spans(_two_producers, service="two-producers")
    sdk, openllmetry, root = spans
    _post(client, traces_protobuf([sdk, root]))
    # the second producer's exporter flushes seconds later
    _post(client, traces_protobuf([openllmetry]))
    _assert_one_merged_call(client, _span_id(sdk), _span_id(openllmetry))
    # and resending either changes nothing
    _post(client, traces_protobuf([openllmetry]))
    _post(client, traces_protobuf([sdk, root]))
    _assert_one_merged_call(client, _span_id(sdk), _span_id(openllmetry))


class LostAcknowledgement:
    """A store whose first write commits, then raises as if the reply never came back."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.failures = 1

    def write(
        self,
        calls: Sequence[CallRecord],
        spans: Sequence[SpanRecord],
        events: Sequence[ContentEvent],
    ) -> None:
        self.store.write(calls, spans, events)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection reset after the insert")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def test_a_write_whose_acknowledgement_is_lost_is_stored_once(store):
    t0 = datetime.now(UTC).replace(microsecond=0)
    calls = [
        CallRecord(id=f"gw-{i}", trace_id=f"{i:032x}", span_id=f"{i:016x}",
                   ts=t0 + timedelta(seconds=i), duration_ms=10.0, source="gateway",
                   app="lost-ack", input_tokens=10, output_tokens=1)
        for i in range(5)
    ]  # fmt: skip
    spans = [SpanRecord(trace_id=c.trace_id, span_id=c.span_id, name="chat", ts=c.ts,
                        duration_ms=10.0, call_id=c.id) for c in calls]  # fmt: skip
    seen: list[str] = []
    pipeline = Pipeline(LostAcknowledgement(store), flush_interval=0.02)
    pipeline.add_observer(lambda cs, ss: seen.extend(c.id for c in cs))
    pipeline.start()
    try:
        assert pipeline.submit(calls, spans)
        deadline = time.monotonic() + 10
        while pipeline.write_errors == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pipeline.flush(10)
    finally:
        pipeline.stop()
    assert pipeline.write_errors == 1  # it was retried
    since, until = t0 - timedelta(hours=1), t0 + timedelta(hours=1)
    from gensight.store.base import CallFilters

    totals = answers.totals(store, CallFilters(since=since, until=until, app="lost-ack"))
    assert (totals["calls"], totals["input_tokens"]) == (5, 50)
    assert store.health()["spans"] == 5
    assert sorted(seen) == sorted(c.id for c in calls)  # observers told exactly once


def test_reports_of_one_call_in_two_traces_and_two_batches_are_one_call(store):
    """Two producers whose spans are roots (two traces), exported seconds apart: the
    stored report is found by response id, by request id, or (a 429 one producer
    records without ids) by failing together, on both engines."""
    t0 = datetime.now(UTC).replace(microsecond=0)
    common = dict(duration_ms=10.0, source="otlp", app="siblings", provider="anthropic",
                  request_model="claude-sonnet-4-5", operation="chat")  # fmt: skip
    first = [
        CallRecord(id="a1", trace_id="1" * 32, span_id="a1" * 8, ts=t0, producer="anthropic-sdk",
                   response_id="msg_1", input_tokens=10, output_tokens=2, **common),
        CallRecord(id="a2", trace_id="2" * 32, span_id="a2" * 8, ts=t0 + timedelta(seconds=1),
                   producer="anthropic-sdk", status="error", error_class="upstream_error",
                   upstream_request_id="req_2", **common),
        CallRecord(id="a3", trace_id="3" * 32, span_id="a3" * 8, ts=t0 + timedelta(seconds=2),
                   producer="anthropic-sdk", status="error", error_class="rate_limit",
                   upstream_request_id="req_3", **common),
    ]  # fmt: skip
    later = [
        CallRecord(id="b1", trace_id="4" * 32, span_id="b1" * 8, ts=t0, producer="traceloop",
                   response_id="msg_1", input_tokens=10, output_tokens=2,
                   cache_read_tokens=4, **common),
        CallRecord(id="b2", trace_id="5" * 32, span_id="b2" * 8, ts=t0 + timedelta(seconds=1),
                   producer="traceloop", status="error", upstream_request_id="req_2", **common),
        CallRecord(id="b3", trace_id="6" * 32, span_id="b3" * 8,
                   ts=t0 + timedelta(seconds=2, milliseconds=3), producer="traceloop",
                   status="error", error_class="rate_limit", **common),
    ]  # fmt: skip
    pipeline = Pipeline(store, flush_interval=0.02)
    pipeline.start()
    try:
        assert pipeline.submit(first, [])
        assert pipeline.flush(10)
        assert pipeline.submit(later, [])
        assert pipeline.flush(10)
    finally:
        pipeline.stop()
    from gensight.store.base import CallFilters

    f = CallFilters(since=t0 - timedelta(hours=1), until=t0 + timedelta(hours=1), app="siblings")
    totals = answers.totals(store, f)
    assert (totals["calls"], totals["input_tokens"]) == (3, 10)
    got = store.get_call("a1")
    assert got is not None and got["cache_read_tokens"] == 4
    assert [m["id"] for m in got["attributes"][MERGED_FROM]] == ["b1"]
