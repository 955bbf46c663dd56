"""No 5xx on bad input: property-based tests of OTLP decoding and normalization, and
schemathesis against the server's own OpenAPI schema.

Everything runs in-process (``create_app`` over a DuckDB file, Starlette's TestClient), with
derandomized hypothesis so CI sees the same examples every run. The properties:

* an OTLP/HTTP request, however malformed, truncated, huge, deeply nested or wrongly typed,
  is answered 200 (``partial_success`` naming what was rejected) or a 4xx naming the
  problem: never a 500, never an exception escaping;
* the mappers never raise on arbitrary attribute maps mixing real GenAI keys of every
  convention with values of any type, and what they produce always fits the store's
  columns (a record the writer cannot insert would block every batch behind it);
* every ``/api`` endpoint answers schema-conforming non-5xx responses to any parameters.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import schemathesis
from fastapi.testclient import TestClient
from google.protobuf import json_format
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from gensight.conventions import spans as span_conv
from gensight.conventions.logs import log_to_events
from gensight.conventions.spans import Resource, span_to_records
from gensight.model.records import CALL_FIELD_NAMES, CallRecord, SpanRecord
from gensight.model.settings import Settings
from gensight.receive.otlp.decode import logs_to_events, traces_to_records
from gensight.store import arrow
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
INT64 = (-(2**63), 2**63 - 1)
UINT64 = 2**64 - 1

# -- strategies -------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(*INT64)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.binary(max_size=16)
    | st.sampled_from(
        ["", "NaN", "inf", "-1", "1e400", "1e30", "true", "[", "{", "null", "[]", "{}", "0x1f"]
    )
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _json_text(v: Any) -> str:
    try:
        return orjson.dumps(v, default=lambda b: b.hex()).decode()
    except (TypeError, orjson.JSONEncodeError):
        return "[]"


#: Strings that look like what producers send: JSON messages of every shape.
json_like = st.one_of(
    values.map(_json_text),
    st.sampled_from(
        [
            '[{"role": "user", "content": "hi"}]',
            '[{"role": "assistant", "parts": [{"type": "text", "content": "x"},'
            ' {"type": "tool_call", "name": 1, "arguments": {"a": [1]}}, {"type": "image"},'
            ' 7, {"type": "tool_call_response", "response": {"k": null}},'
            ' {"type": "reasoning", "content": [1, 2]}], "finish_reason": 5}]',
            '{"messages": [{"role": null, "content": [{"type": "text"}, "a", 3]}]}',
            '{"message": {"content": "c", "tool_calls": [1, {"function": 3}]},'
            ' "finish_reason": null, "index": "x"}',
            '{"choices": [1, {"message": {"role": "assistant"}}], "input": 5}',
            '{"model": 5, "temperature": "hot", "max_tokens": 1e999, "stream": [1], "user": {}}',
            '{"model": [1], "max_completion_tokens": "NaN", "seed": 1e30, "top_p": "x"}',
            '["stop", 1, null, {"x": 1}]',
            "[" * 2000 + "]" * 2000,
            "[" * 300 + "]" * 300,
            '{"a":' * 600 + "1" + "}" * 600,
            "user: hello\nassistant: hi",
            '{"messages": 5}',
            '[{"content": 1e400}]',
            '[{"content": 99999999999999999999999999999}]',
        ]
    ),
)

GENAI_KEYS = sorted(
    {key for keys in span_conv._FIELD_KEYS.values() for key in keys}
    | set(span_conv._CONTENT_KEYS)
    | {
        "service.name",
        "error.type",
        "gensight.via_gateway",
        "traceloop.span.kind",
        "event.name",
        "gen_ai.usage.total_tokens",
        "llm.usage.total_tokens",
        "llm.token_count.total",
        "gen_ai.prompt.0.role",
        "gen_ai.prompt.0.content",
        "gen_ai.prompt.1.tool_calls.0.name",
        "gen_ai.prompt.x.content",
        "gen_ai.completion.0.content",
        "gen_ai.completion.0.finish_reason",
        "gen_ai.completion.0.tool_call_id",
        "gen_ai.completion.99999999999999999999.role",
        "llm.input_messages.0.message.role",
        "llm.input_messages.0.message.content",
        "llm.input_messages.0.message.contents.0.message_content.text",
        "llm.input_messages.0.message.tool_calls.0.tool_call.function.arguments",
        "llm.output_messages.0.message.content",
        "llm.output_messages.0.message.name",
        "embedding.embeddings.0.embedding.text",
        "exception.type",
        "exception.message",
    }
)
#: Values the mappers branch on, so both sides of each branch get exercised.
key_values = {
    "openinference.span.kind": st.sampled_from(["LLM", "EMBEDDING", "chain", "TOOL"]),
    "traceloop.span.kind": st.sampled_from(["workflow", "task", "llm"]),
    "gen_ai.operation.name": st.sampled_from(["chat", "embeddings", "completion", "x"]),
    "error.type": st.sampled_from(["_OTHER", "RateLimitError", "429", "timeout"]),
}


@st.composite
def genai_attributes(draw: st.DrawFn) -> dict[str, Any]:
    """An attribute map of real GenAI keys (every convention) and random ones, any values."""
    keys = draw(st.lists(st.sampled_from(GENAI_KEYS), max_size=25, unique=True))
    keys += draw(st.lists(st.text(max_size=20), max_size=3))
    out: dict[str, Any] = {}
    for k in keys:
        special = key_values.get(k)
        strategies = [values, json_like] + ([special] if special is not None else [])
        out[k] = draw(st.one_of(*strategies))
    return out


def to_any_value(v: Any, depth: int = 0) -> common_pb2.AnyValue:
    """A Python value as an OTLP AnyValue (None: an empty AnyValue)."""
    out = common_pb2.AnyValue()
    if v is None:
        return out
    if isinstance(v, bool):
        out.bool_value = v
    elif isinstance(v, int):
        out.int_value = v
    elif isinstance(v, float):
        out.double_value = v
    elif isinstance(v, str):
        out.string_value = v
    elif isinstance(v, bytes):
        out.bytes_value = v
    elif isinstance(v, list):
        out.array_value.values.extend(to_any_value(x, depth + 1) for x in v)
    elif isinstance(v, dict):
        for k, x in v.items():
            out.kvlist_value.values.add(key=k).value.CopyFrom(to_any_value(x, depth + 1))
    return out


def key_values_pb(attrs: dict[str, Any]) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=to_any_value(v)) for k, v in attrs.items()]


def _str_safe(s: str) -> str:
    # protobuf refuses to serialize lone surrogates; the wire cannot carry them anyway
    return s.encode("utf-8", "replace").decode("utf-8")


def _clean(v: Any) -> Any:
    if isinstance(v, str):
        return _str_safe(v)
    if isinstance(v, list):
        return [_clean(x) for x in v]
    if isinstance(v, dict):
        return {_str_safe(k): _clean(x) for k, x in v.items()}
    return v


ids = st.one_of(
    st.binary(min_size=16, max_size=16),
    st.binary(max_size=20),
    st.just(b"\x00" * 16),
)
times = st.one_of(
    st.integers(0, UINT64),
    st.sampled_from([0, 1, UINT64, 2**63, 1_700_000_000_000_000_000]),
)


@st.composite
def spans_pb(draw: st.DrawFn) -> trace_pb2.Span:
    attrs = _clean(draw(genai_attributes()))
    span = trace_pb2.Span(
        trace_id=draw(st.one_of(ids, st.just(bytes(range(1, 17))))),
        span_id=draw(st.one_of(ids, st.just(bytes(range(1, 9))))),
        parent_span_id=draw(ids),
        name=_str_safe(draw(st.text(max_size=30))),
        kind=draw(st.integers(0, 5)),
        start_time_unix_nano=draw(times),
        end_time_unix_nano=draw(times),  # before the start too: negative durations
    )
    span.attributes.extend(key_values_pb(attrs))
    span.status.code = draw(st.integers(0, 2))
    span.status.message = _str_safe(draw(st.text(max_size=20)))
    for _ in range(draw(st.integers(0, 2))):
        e = span.events.add(
            name=draw(
                st.sampled_from(["exception", "gen_ai.content.prompt", "gen_ai.choice", "x"])
            ),
            time_unix_nano=draw(times),
        )
        e.attributes.extend(key_values_pb(_clean(draw(genai_attributes()))))
    return span


@st.composite
def trace_requests(draw: st.DrawFn) -> trace_service_pb2.ExportTraceServiceRequest:
    req = trace_service_pb2.ExportTraceServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(key_values_pb(_clean(draw(genai_attributes()))))
        ss = rs.scope_spans.add()
        ss.scope.name = draw(
            st.sampled_from(["", "openinference.x", "openlit.otel", "gensight", "opentelemetry"])
        )
        ss.spans.extend(draw(st.lists(spans_pb(), min_size=1, max_size=3)))
    return req


@st.composite
def log_requests(draw: st.DrawFn) -> logs_service_pb2.ExportLogsServiceRequest:
    req = logs_service_pb2.ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    for _ in range(draw(st.integers(1, 3))):
        attrs = _clean(draw(genai_attributes()))
        if draw(st.booleans()):
            attrs["event.name"] = draw(
                st.sampled_from(
                    [
                        "gen_ai.user.message",
                        "gen_ai.choice",
                        "gen_ai.tool.message",
                        "gen_ai.client.inference.operation.details",
                        "gen_ai.other",
                    ]
                )
                | values
            )
        rec = logs_pb2.LogRecord(
            trace_id=draw(st.one_of(ids, st.just(bytes(range(1, 17))))),
            span_id=draw(st.one_of(ids, st.just(bytes(range(1, 9))))),
            time_unix_nano=draw(times),
            observed_time_unix_nano=draw(times),
        )
        if draw(st.booleans()):
            rec.event_name = _str_safe(
                draw(st.sampled_from(["gen_ai.choice", "gen_ai.system.message"]) | st.text())
            )
        rec.attributes.extend(key_values_pb(attrs))
        if draw(st.booleans()):
            rec.body.CopyFrom(to_any_value(_clean(draw(st.one_of(values, json_like)))))
        sl.log_records.append(rec)
    return req


def _ld(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    n, varint = len(payload), bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        varint.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes([field << 3 | 2]) + bytes(varint) + payload


def deep_traces_body(depth: int, kind: str) -> bytes:
    """A traces request whose one attribute is an AnyValue ``depth`` levels deep, written
    by hand (the protobuf library refuses to build what it will not parse)."""
    v = _ld(1, b"leaf")  # AnyValue.string_value
    for _ in range(depth):
        # kvlist_value.values[0] = KeyValue(key="k", value=v), or array_value.values[0] = v
        kv = _ld(6, _ld(1, _ld(1, b"k") + _ld(2, v)))
        v = kv if kind == "kvlist" else _ld(5, _ld(1, v))
    attrs = _ld(9, _ld(1, b"gen_ai.input.messages") + _ld(2, v))
    attrs += _ld(9, _ld(1, b"gen_ai.request.model") + _ld(2, _ld(1, b"m")))
    span = _ld(1, bytes(range(1, 17))) + _ld(2, bytes(range(1, 9))) + _ld(5, b"chat") + attrs
    return _ld(1, _ld(2, _ld(2, span)))


def deep_json_value(depth: int, kind: str) -> dict[str, Any]:
    v: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(depth):
        if kind == "kvlist":
            v = {"kvlistValue": {"values": [{"key": "k", "value": v}]}}
        else:
            v = {"arrayValue": {"values": [v]}}
    return v


def _valid_span_request(attrs: list[common_pb2.KeyValue] | None = None) -> bytes:
    req = trace_service_pb2.ExportTraceServiceRequest()
    span = (
        req.resource_spans.add()
        .scope_spans.add()
        .spans.add(
            trace_id=bytes(range(1, 17)),
            span_id=bytes(range(1, 9)),
            name="chat",
            start_time_unix_nano=1_700_000_000_000_000_000,
            end_time_unix_nano=1_700_000_001_000_000_000,
        )
    )
    span.attributes.extend(attrs or key_values_pb({"gen_ai.operation.name": "chat"}))
    return req.SerializeToString()


# -- checks -----------------------------------------------------------------------------


def assert_storable(calls: list[CallRecord], spans: list[SpanRecord], events: list = ()) -> None:
    """What the mappers made fits the store's columns (the writer's first step)."""
    arrow.calls_table(calls)
    arrow.spans_table(spans)
    arrow.events_table(list(events))


OTLP_4XX = {400, 413, 415}


def check_otlp_answer(resp: Any, kind: str) -> None:
    """200 with an Export*ServiceResponse, or a 4xx whose google.rpc.Status names why."""
    assert resp.status_code == 200 or resp.status_code in OTLP_4XX, (
        resp.status_code,
        resp.content[:500],
    )
    if resp.status_code != 200:
        if kind == "json":
            message = orjson.loads(resp.content)["message"]
        else:
            message = status_pb2.Status.FromString(resp.content).message
        assert message, "a 4xx must say why"


# -- (a) in-process decoding and normalization ------------------------------------------


@FUZZ
@given(req=trace_requests())
def test_traces_to_records_never_raises_and_output_is_storable(req):
    calls, spans, rejected, err = traces_to_records(req)
    assert rejected == 0 or err
    assert_storable(calls, spans)
    for c in calls:
        for name in ("temperature", "top_p", "ttft_ms", "reported_cost_usd", "duration_ms"):
            v = getattr(c, name)
            assert v is None or math.isfinite(v), (name, v)


@FUZZ
@given(req=log_requests())
def test_logs_to_events_never_raises_and_output_is_storable(req):
    events, rejected, err = logs_to_events(req)
    assert rejected == 0, err
    assert_storable([], [], events)


# -- (b) the mappers on arbitrary attribute maps -----------------------------------------


@FUZZ
@given(attrs=genai_attributes(), resource=genai_attributes())
def test_span_mapper_never_raises_on_any_attributes(attrs, resource):
    span = trace_pb2.Span(
        trace_id=bytes(range(1, 17)),
        span_id=bytes(range(1, 9)),
        start_time_unix_nano=1_700_000_000_000_000_000,
        end_time_unix_nano=1_700_000_000_500_000_000,
    )
    span.attributes.extend(key_values_pb(_clean(attrs)))
    span.status.code = 2 if "error.type" in attrs else 0
    res = Resource(_clean(resource), "openinference.instrumentation.openai")
    srec, call = span_to_records(span, res, "openinference.instrumentation.openai")
    assert_storable([call] if call else [], [srec])
    if call is not None:
        assert call.id == srec.call_id
        for name in ("app", "user", "session", "request_model", "response_model", "provider"):
            v = getattr(call, name)
            assert v is None or isinstance(v, str), (name, v)


@FUZZ
@given(attrs=genai_attributes(), body=st.one_of(st.none(), values, json_like))
def test_log_mapper_never_raises_on_any_attributes(attrs, body):
    rec = logs_pb2.LogRecord(
        trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)), time_unix_nano=1
    )
    rec.attributes.extend(key_values_pb(_clean(attrs)))
    if body is not None:
        rec.body.CopyFrom(to_any_value(_clean(body)))
    for name in (
        "gen_ai.user.message",
        "gen_ai.choice",
        "gen_ai.client.inference.operation.details",
    ):
        rec.event_name = name
        assert_storable([], [], log_to_events(rec, 0))


# -- (a) the HTTP routes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory):
    """The whole app in-process over a DuckDB file (small body limit: 413s are cheap)."""
    tmp = tmp_path_factory.mktemp("fuzz-otlp")
    store = DuckDBStore(tmp / "fuzz.duckdb")
    settings_ = Settings(data_dir=tmp, max_body=256 * 1024, flush_interval=0.01)
    with TestClient(create_app(settings_, store=store), raise_server_exceptions=True) as c:
        yield c


def assert_pipeline_healthy(client: TestClient) -> None:
    """Everything accepted was written: no batch the store refused (it would block the
    writer, retried forever), and the stored records read back through the API."""
    pipeline = client.app.state.pipeline
    assert pipeline.flush(30)
    stats = pipeline.stats()
    assert stats["write_errors"] == 0, stats["last_error"]
    assert stats["dropped"] == 0
    all_time = {"since": "1970-01-01T00:00:00Z", "until": "9999-01-01T00:00:00Z"}
    r = client.get("/api/calls", params={**all_time, "limit": 1000, "full": "true"})
    assert r.status_code == 200, r.text
    for item in r.json()["items"][:20]:
        assert client.get(f"/api/calls/{item['id']}").status_code == 200
        if item.get("trace_id"):
            assert client.get(f"/api/traces/{item['trace_id']}").status_code == 200
    for path in ("/api/stats/overview", "/api/analysis/latency-vs-tokens"):
        assert client.get(path, params=all_time | {"interval": "1000w"}).status_code in (200, 400)
    assert client.get("/api/stats/overview").status_code == 200


def _post(client: TestClient, signal: str, body: bytes, kind: str, **headers: str) -> Any:
    ctype = "application/x-protobuf" if kind == "protobuf" else "application/json"
    return client.post(f"/v1/{signal}", content=body, headers={"content-type": ctype, **headers})


def _as_otlp_json(msg: Any) -> bytes:
    """A request in OTLP/JSON as exporters write it (hex ids)."""
    data = json_format.MessageToDict(msg)

    def hexify(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("traceId", "spanId", "parentSpanId") and isinstance(v, str):
                    node[k] = base64.b64decode(v).hex()
                else:
                    hexify(v)
        elif isinstance(node, list):
            for x in node:
                hexify(x)

    hexify(data)
    return orjson.dumps(data)


def test_otlp_http_structured_payloads(app_client):
    @FUZZ
    @given(
        req=st.one_of(trace_requests(), log_requests()),
        kind=st.sampled_from(["protobuf", "json"]),
        gz=st.booleans(),
    )
    def run(req, kind, gz):
        signal = (
            "traces" if isinstance(req, trace_service_pb2.ExportTraceServiceRequest) else "logs"
        )
        body = req.SerializeToString() if kind == "protobuf" else _as_otlp_json(req)
        headers = {}
        if gz:
            body = gzip.compress(body, 1)
            headers["content-encoding"] = "gzip"
        resp = _post(app_client, signal, body, kind, **headers)
        check_otlp_answer(resp, kind)

    run()
    assert_pipeline_healthy(app_client)


def test_otlp_http_malformed_and_truncated_bodies(app_client):
    valid = _valid_span_request()

    @FUZZ
    @given(
        body=st.one_of(
            st.binary(max_size=300),
            st.integers(0, len(valid)).map(lambda n: valid[:n]),  # truncated
            st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)).map(
                lambda t: valid[: t[0]] + bytes([t[1]]) + valid[t[0] + 1 :]  # one byte flipped
            ),
            st.binary(max_size=100).map(lambda b: gzip.compress(valid)[:30] + b),
        ),
        signal=st.sampled_from(["traces", "logs", "metrics"]),
        kind=st.sampled_from(["protobuf", "json"]),
        encoding=st.sampled_from([None, "gzip", "deflate", "br", "GZIP ", ""]),
    )
    def run(body, signal, kind, encoding):
        headers = {"content-encoding": encoding} if encoding is not None else {}
        check_otlp_answer(_post(app_client, signal, body, kind, **headers), kind)

    run()
    assert_pipeline_healthy(app_client)


# OTLP/JSON shapes with wrong types in every slot: strings where ints go, NaN and
# infinities as doubles, absurd timestamps, ids that are not hex, nulls, nested junk.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "18446744073709551616", "-5", "1e999", "zz"]),
)
json_junk = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=6,
)


@st.composite
def otlp_json_traces(draw: st.DrawFn) -> dict[str, Any]:
    def maybe(good: st.SearchStrategy) -> Any:
        return draw(st.one_of(good, json_junk))

    attr_value = st.one_of(
        st.fixed_dictionaries({"stringValue": json_scalars}),
        st.fixed_dictionaries({"intValue": json_scalars}),
        st.fixed_dictionaries({"doubleValue": json_scalars}),
        st.fixed_dictionaries({"boolValue": json_scalars}),
        st.fixed_dictionaries({"bytesValue": json_scalars}),
        st.fixed_dictionaries({"arrayValue": st.fixed_dictionaries({"values": json_junk})}),
        json_junk,
    )
    attrs = [
        {"key": maybe(st.sampled_from(GENAI_KEYS)), "value": draw(attr_value)}
        for _ in range(draw(st.integers(0, 4)))
    ]
    span = {
        "traceId": maybe(st.just("0102030405060708090a0b0c0d0e0f10")),
        "spanId": maybe(st.just("0102030405060708")),
        "parentSpanId": maybe(st.just("")),
        "name": maybe(st.text(max_size=10)),
        "kind": maybe(st.sampled_from([1, "SPAN_KIND_CLIENT", 99])),
        "startTimeUnixNano": maybe(st.sampled_from(["1700000000000000000", 1, "-1"])),
        "endTimeUnixNano": maybe(st.sampled_from(["1", "18446744073709551615", 0])),
        "attributes": draw(st.one_of(st.just(attrs), json_junk)),
        "status": maybe(st.fixed_dictionaries({"code": json_scalars, "message": json_scalars})),
    }
    span = {k: v for k, v in span.items() if draw(st.integers(0, 9))}
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": draw(st.one_of(st.just(attrs), json_junk))},
                "scopeSpans": [{"scope": maybe(st.just({"name": "x"})), "spans": [span]}],
            }
        ]
    }


def test_otlp_http_wrongly_typed_json(app_client):
    @FUZZ
    @given(doc=otlp_json_traces())
    def run(doc):
        # the stdlib writes what orjson refuses: integers past 64 bits, NaN, Infinity
        body = json.dumps(doc).encode()
        check_otlp_answer(_post(app_client, "traces", body, "json"), "json")

    run()
    assert_pipeline_healthy(app_client)


@pytest.mark.parametrize("kind", ["kvlist", "array"])
@pytest.mark.parametrize("depth", [10, 30, 60, 200, 1000])
def test_otlp_deeply_nested_any_values(app_client, kind, depth):
    body = deep_traces_body(depth, kind)
    check_otlp_answer(_post(app_client, "traces", body, "protobuf"), "protobuf")
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0102030405060708090a0b0c0d0e0f10",
                                "spanId": "0102030405060708",
                                "name": "chat",
                                "attributes": [
                                    {
                                        "key": "gen_ai.operation.name",
                                        "value": deep_json_value(1, kind),
                                    },
                                    {"key": "x", "value": deep_json_value(depth, kind)},
                                ],
                            }
                        ]
                    }
                ]
            }
        ]
    }
    try:
        body = orjson.dumps(doc)
    except orjson.JSONEncodeError:  # deeper than orjson writes: send it as text
        body = (
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10",'
            b'"spanId":"0102030405060708","attributes":[{"key":"x","value":'
            + b'{"arrayValue":{"values":[' * depth
            + b'{"stringValue":"leaf"}'
            + b"]}}" * depth
            + b"}]}]}]}]}"
        )
    check_otlp_answer(_post(app_client, "traces", body, "json"), "json")
    assert_pipeline_healthy(app_client)


def test_otlp_huge_bodies_and_attribute_counts(app_client):
    # over the limit, declared or not, raw or after gunzip: 413
    big = b"\x00" * (300 * 1024)
    check_otlp_answer(_post(app_client, "traces", big, "protobuf"), "protobuf")
    bomb = gzip.compress(big)
    resp = _post(app_client, "traces", bomb, "protobuf", **{"content-encoding": "gzip"})
    assert resp.status_code == 413
    # just under the limit: thousands of attributes on one span
    attrs = [common_pb2.KeyValue(key=f"k{i}", value=to_any_value(i)) for i in range(8000)]
    attrs.append(common_pb2.KeyValue(key="gen_ai.request.model", value=to_any_value("m")))
    body = _valid_span_request(attrs)
    assert len(body) < 256 * 1024
    assert _post(app_client, "traces", body, "protobuf").status_code == 200
    # a long string attribute and a span with 2000 events
    req = trace_service_pb2.ExportTraceServiceRequest.FromString(_valid_span_request())
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="gen_ai.prompt", value=to_any_value("x" * 200_000))
    resp = _post(app_client, "traces", req.SerializeToString(), "protobuf")
    assert resp.status_code == 200
    span.ClearField("attributes")
    for i in range(2000):
        span.events.add(name="exception", time_unix_nano=i)
    assert _post(app_client, "traces", req.SerializeToString(), "protobuf").status_code == 200
    assert_pipeline_healthy(app_client)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["2026-01-05T12:00:00+00:00", "2026-01-05", "x", "[]", "{}"]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=6,
)


@st.composite
def import_lines(draw: st.DrawFn) -> bytes:
    """JSON lines of would-be CallRecords: valid ones, and every field of any type."""
    lines = []
    for i in range(draw(st.integers(1, 4))):
        rec: dict[str, Any] = {
            "id": f"imp-{i}",
            "trace_id": "ab" * 16,
            "span_id": "cd" * 8,
            "ts": "2026-01-05T12:00:00+00:00",
            "duration_ms": 12.5,
            "source": "otlp",
        }
        for name in draw(st.lists(st.sampled_from(CALL_FIELD_NAMES), max_size=6, unique=True)):
            rec[name] = draw(json_values)
        if draw(st.integers(0, 9)) == 0:
            rec.pop(draw(st.sampled_from(sorted(rec))))
        lines.append(json.dumps(rec))
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=20)))
    return "\n".join(lines).encode("utf-8", "replace")


def test_api_import_any_lines(app_client):
    """POST /api/import: 202 for what the store can hold, 400 naming the line otherwise."""

    @FUZZ
    @given(body=import_lines())
    def run(body):
        r = app_client.post(
            "/api/import", content=body, headers={"content-type": "application/x-ndjson"}
        )
        assert r.status_code in (202, 400), (r.status_code, r.text[:300])
        if r.status_code == 400:
            assert "line" in r.json()["detail"]

    run()
    assert_pipeline_healthy(app_client)


# -- regressions: crashes the properties above found ------------------------------------


def _one_call(attrs: dict[str, Any], resource: dict[str, Any] | None = None) -> CallRecord:
    req = trace_service_pb2.ExportTraceServiceRequest.FromString(
        _valid_span_request(key_values_pb(attrs))
    )
    if resource:
        req.resource_spans[0].resource.attributes.extend(key_values_pb(resource))
    calls, spans, rejected, err = traces_to_records(req)
    assert rejected == 0, err
    assert_storable(calls, spans)
    return calls[0]


def test_regression_non_string_identity_fields_are_stored_as_text(app_client):
    # service.name or a model given as an int/list/dict used to make the Arrow batch fail:
    # the writer then retried that batch forever and nothing after it was stored.
    call = _one_call(
        {
            "gen_ai.request.model": 5,
            "gen_ai.response.model": ["a", 1],
            "gen_ai.provider.name": {"x": 1},
            "user.id": 12,
            "session.id": True,
            "gen_ai.response.id": 1.5,
            "server.address": [],
        },
        {"service.name": 7, "deployment.environment": ["prod"]},
    )
    assert call.request_model == "5" and call.app == "7" and call.user == "12"
    assert call.response_model == '["a",1]' and call.environment == '["prod"]'
    assert isinstance(call.session, str) and isinstance(call.response_id, str)
    body = _valid_span_request(key_values_pb({"gen_ai.request.model": 5}))
    assert _post(app_client, "traces", body, "protobuf").status_code == 200
    assert_pipeline_healthy(app_client)


def test_regression_out_of_range_numbers_are_dropped_not_fatal():
    # int(float("inf")) raised OverflowError (the whole span rejected); a token count past
    # int64 made the Arrow batch fail (the writer blocked); NaN and infinities measure
    # nothing (and JSON cannot carry them): dropped like any other unusable value.
    call = _one_call(
        {
            "gen_ai.request.model": "m",
            "gen_ai.usage.input_tokens": float("inf"),
            "gen_ai.usage.output_tokens": "1e30",
            "gen_ai.usage.reasoning.output_tokens": "-1e400",
            "gen_ai.request.max_tokens": 2**63 - 1,
            "gen_ai.request.temperature": float("nan"),
            "gen_ai.request.top_p": "inf",
            "gen_ai.usage.cost": float("-inf"),
            "gen_ai.response.time_to_first_chunk": float("nan"),
            "gen_ai.request.stream": True,
            "http.response.status_code": 10**12,
        }
    )
    assert call.input_tokens is None and call.output_tokens is None
    assert call.reasoning_tokens is None and call.max_tokens == 2**63 - 1
    assert call.temperature is None and call.top_p is None and call.reported_cost_usd is None
    assert call.ttft_ms is None and call.http_status is None


def test_regression_nan_attributes_read_back_through_the_api(app_client):
    trace_id = bytes([7] * 16)
    req = trace_service_pb2.ExportTraceServiceRequest.FromString(
        _valid_span_request(
            key_values_pb({"gen_ai.request.model": "nan-model", "x": float("nan"), "y": [math.inf]})
        )
    )
    req.resource_spans[0].scope_spans[0].spans[0].trace_id = trace_id
    assert _post(app_client, "traces", req.SerializeToString(), "protobuf").status_code == 200
    assert_pipeline_healthy(app_client)
    r = app_client.get(f"/api/traces/{trace_id.hex()}")
    assert r.status_code == 200


def test_regression_import_of_a_wrongly_typed_record_is_a_400(app_client):
    # An int ts was a 500 (AttributeError); a string duration or a list model was
    # accepted, then failed in the writer, which retried that batch forever.
    base = '{"id": "r1", "trace_id": "t", "span_id": "s", "source": "otlp", '
    for tail in (
        '"ts": 5, "duration_ms": 1}',
        '"ts": "2026-01-05T12:00:00Z", "duration_ms": "slow"}',
        '"ts": "2026-01-05T12:00:00Z", "duration_ms": 1, "request_model": ["a"]}',
        '"ts": "2026-01-05T12:00:00Z", "duration_ms": 1, "input_tokens": 1e30}',
        '"ts": "2026-01-05T12:00:00Z", "duration_ms": 1, "id": null}',  # 500 on its trace
    ):
        r = app_client.post("/api/import", content=(base + tail).encode())
        assert r.status_code == 400 and "line 1" in r.json()["detail"], r.text
    assert_pipeline_healthy(app_client)


def test_regression_log_event_name_of_any_type_is_not_a_rejection():
    req = logs_service_pb2.ExportLogsServiceRequest()
    rec = (
        req.resource_logs.add()
        .scope_logs.add()
        .log_records.add(trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)))
    )
    rec.attributes.extend(key_values_pb({"event.name": ["gen_ai.choice"]}))
    events, rejected, err = logs_to_events(req)
    assert (events, rejected) == ([], 0), err


# -- (c) schemathesis against /openapi.json ----------------------------------------------

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _seed(store: DuckDBStore) -> None:
    calls = [
        CallRecord(
            id=f"c{i:04d}",
            trace_id=f"{i + 1:032x}",
            span_id=f"{i + 1:016x}",
            ts=T0 + timedelta(minutes=i),
            duration_ms=50.0 + i * 13,
            source="otlp" if i % 2 else "gateway",
            app=["shop", "search"][i % 2],
            provider="openai",
            operation="chat",
            request_model=["gpt-4o-mini", "gpt-4o"][i % 2],
            input_tokens=100 + i,
            output_tokens=10 * i,
            cost_usd=0.001 * i,
            cost_source="computed",
            stream=bool(i % 3),
            ttft_ms=10.0 + i if i % 3 else None,
            status="error" if i % 5 == 0 else "ok",
            error_class="rate_limit" if i % 5 == 0 else None,
            user=f"u{i % 4}",
            session=f"s{i % 3}",
            input_messages=[{"role": "user", "content": f"question {i}"}],
            output_messages=[{"role": "assistant", "content": f"answer {i}"}],
            attributes={"k": i},
        )
        for i in range(40)
    ]
    spans = [
        SpanRecord(
            trace_id=c.trace_id,
            span_id=c.span_id,
            name="chat",
            ts=c.ts,
            duration_ms=c.duration_ms,
            app=c.app,
            call_id=c.id,
        )
        for c in calls
    ]
    store.write(calls, spans, [])


def _without_lifespan(app: Any) -> Any:
    """The app for schemathesis' ASGI transport, which runs the lifespan around every call:
    the test runs it once instead (TestClient), so answer lifespan messages trivially."""

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        await app(scope, receive, send)

    return wrapper


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("fuzz-api")
    store = DuckDBStore(tmp / "seed.duckdb")
    _seed(store)
    app = create_app(Settings(data_dir=tmp, alert_interval=3600), store=store)
    with TestClient(app):  # the lifespan (writer, alert engine) once, around all the tests
        yield schemathesis.openapi.from_asgi("/openapi.json", _without_lifespan(app))


def _api_operations() -> list[tuple[str, str]]:
    from gensight.web.api import router

    ops = []
    for route in router.routes:
        for method in sorted(getattr(route, "methods", ()) or ()):
            if method in ("GET", "POST", "DELETE") and route.path.startswith("/api/"):
                ops.append((method, route.path))
    return ops


API_FUZZ = settings(FUZZ, max_examples=60)


@pytest.mark.parametrize("mode", ["positive", "negative"])
@pytest.mark.parametrize(("method", "path"), _api_operations())
def test_api_conforms_and_never_5xx(api_schema, method, path, mode):
    """Every /api operation, with valid and invalid parameters and bodies: never a 5xx,
    and every answer as the schema documents it (status, content type, body)."""
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode, checks

    operation = api_schema[path][method]
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

    @API_FUZZ
    @given(case=strategy)
    def run(case):
        # A schema-valid string may still be a bad value (an unknown cursor, a time that
        # is not one): the API answers 400 naming it, so positive cases may be refused.
        case.call_and_validate(excluded_checks=[checks.positive_data_acceptance])

    try:
        run()
    except Unsatisfiable:
        pytest.skip(f"{method} {path} takes no input that can be made invalid")
