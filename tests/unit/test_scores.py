"""Scores (#20): validation, the filter's grammar, the semconv event's mapping, the journal
format and the scopes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from gensight.model.records import Score
from gensight.model.scores import (
    ScoreError,
    ScoreFilter,
    parse_score_filter,
    score_from_dict,
    scores_from_body,
)
from gensight.pipeline.codec import decode_batch, encode_batch, record_dict
from gensight.receive.auth import allowed, parse_api_keys, required_scope
from gensight.receive.otlp.decode import logs_to_scores, replay_logs, traces_to_scores

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_a_score_takes_its_target_in_order_call_trace_session():
    s = score_from_dict({"call_id": "ABC", "trace_id": TRACE.upper(), "name": "h", "value": 1})
    assert (s.target, s.target_id, s.trace_id, s.source) == ("call", "abc", TRACE, "api")
    s = score_from_dict({"trace_id": TRACE, "session": "conv-1", "name": "h", "label": "ok"})
    assert (s.target, s.target_id) == ("trace", TRACE)
    s = score_from_dict({"session": "Conv-1", "name": "h", "label": "ok", "source": "user"})
    assert (s.target, s.target_id, s.source) == ("session", "Conv-1", "user")
    # the stored form (an export) reads back as it was
    again = score_from_dict({k: v for k, v in s.to_dict().items() if v is not None})
    assert again == s


def test_ids_and_times():
    a = score_from_dict({"call_id": "c", "name": "h", "value": 0})
    b = score_from_dict({"call_id": "c", "name": "h", "value": 0})
    assert a.id != b.id and len(a.id) == 32
    s = score_from_dict(
        {"call_id": "c", "name": "h", "value": 2, "id": "x", "ts": "2026-01-02T03:04:05Z"}
    )
    assert s.id == "x" and s.ts == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and s.value == 2.0


@pytest.mark.parametrize(
    ("d", "field"),
    [
        ({"call_id": "c", "name": "h", "value": float("nan")}, "value"),
        ({"call_id": "c", "name": "h" * 201, "value": 1}, "name"),
        ({"call_id": "c", "name": "h", "value": 1, "comment": 5}, "comment"),
        ({"target": "span", "target_id": "x", "name": "h", "value": 1}, "target"),
        ({"target": "call", "name": "h", "value": 1}, "target_id"),
    ],
)
def test_bad_fields_are_named(d, field):
    with pytest.raises(ScoreError) as e:
        score_from_dict(d)
    assert e.value.field == field


def test_a_batch_names_the_bad_one_by_index():
    with pytest.raises(ScoreError) as e:
        scores_from_body({"scores": [{"call_id": "c", "name": "h", "value": 1}, {"call_id": "c"}]})
    assert e.value.field == "scores[1].name"
    assert len(scores_from_body([{"call_id": "c", "name": "h", "value": 1}] * 3)) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("helpful", ScoreFilter("helpful")),
        ("helpful:<0.5", ScoreFilter("helpful", "<", value=0.5)),
        ("helpful:<=1", ScoreFilter("helpful", "<=", value=1.0)),
        ("helpful: >= 0.7", ScoreFilter("helpful", ">=", value=0.7)),
        ("thumbs:=down", ScoreFilter("thumbs", "=", label="down")),
        ("thumbs:!=down", ScoreFilter("thumbs", "!=", label="down")),
    ],
)
def test_score_filter_grammar(text, expected):
    assert parse_score_filter(text) == expected


@pytest.mark.parametrize("bad", [":1", "h:", "h:~1", "h:<", "h:>good"])
def test_bad_score_filters_say_why(bad):
    with pytest.raises(ValueError):
        parse_score_filter(bad)


def _kv(key: str, value) -> KeyValue:
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _logs(*records: LogRecord, service: str = "support-bot") -> bytes:
    req = logs_service_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(_kv("service.name", service))
    rl.scope_logs.add().log_records.extend(records)
    return req.SerializeToString()


def test_the_semconv_evaluation_log_event_is_a_score_of_its_span():
    record = LogRecord(
        time_unix_nano=1_767_225_600_000_000_000,
        event_name="gen_ai.evaluation.result",
        trace_id=bytes.fromhex(TRACE),
        span_id=bytes.fromhex(SPAN),
        attributes=[
            _kv("gen_ai.evaluation.name", "relevance"),
            _kv("gen_ai.evaluation.score.value", 0.75),
            _kv("gen_ai.evaluation.score.label", "relevant"),
            _kv("gen_ai.evaluation.explanation", "mentions tea"),
        ],
    )
    other = LogRecord(event_name="gen_ai.user.message", trace_id=bytes.fromhex(TRACE))
    payload = _logs(record, other)
    (score,) = logs_to_scores(logs_service_pb2.ExportLogsServiceRequest.FromString(payload))
    assert (score.target, score.target_id, score.trace_id) == ("call", SPAN, TRACE)
    assert (score.name, score.value, score.label, score.comment) == (
        "relevance",
        0.75,
        "relevant",
        "mentions tea",
    )
    assert (score.source, score.app) == ("eval", "support-bot")
    assert score.ts == datetime(2026, 1, 1, tzinfo=UTC)
    # a replayed or resent payload gives the same id: stored once
    assert replay_logs(payload)[3] == [score]


def test_an_event_naming_its_target_and_an_event_without_a_value():
    named = LogRecord(
        event_name="gen_ai.evaluation.result",
        attributes=[
            _kv("gen_ai.evaluation.name", "thumbs"),
            _kv("gen_ai.evaluation.score.label", "up"),
            _kv("gensight.score.trace_id", TRACE),
            _kv("gensight.score.id", "sdk-1"),
            _kv("gensight.score.source", "user"),
        ],
    )
    useless = LogRecord(
        event_name="gen_ai.evaluation.result",
        trace_id=bytes.fromhex(TRACE),
        attributes=[_kv("gen_ai.evaluation.name", "thumbs")],
    )
    req = logs_service_pb2.ExportLogsServiceRequest.FromString(_logs(named, useless))
    (score,) = logs_to_scores(req)
    assert (score.id, score.target, score.target_id, score.source) == (
        "sdk-1",
        "trace",
        TRACE,
        "user",
    )


def test_span_events_are_scores_of_their_span():
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    span = Span(trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(SPAN), name="chat m")
    event = span.events.add()
    event.name = "gen_ai.evaluation.result"
    event.time_unix_nano = 1_767_225_600_000_000_000
    event.attributes.extend(
        [_kv("gen_ai.evaluation.name", "correct"), _kv("gen_ai.evaluation.score.value", 1.0)]
    )
    rs.scope_spans.add().spans.append(span)
    (score,) = traces_to_scores(req)
    assert (score.target, score.target_id, score.name, score.value) == (
        "call",
        SPAN,
        "correct",
        1.0,
    )


def test_the_journal_keeps_scores_and_reads_batches_from_before_them():
    s = Score(id="s1", ts=datetime(2026, 1, 1, tzinfo=UTC), target="call", target_id="c",
              name="h", value=1.0)  # fmt: skip
    result = decode_batch(encode_batch([], [], [], [record_dict(s)]))
    assert result.batch[3] == [s] and not result.unreadable
    old = decode_batch(b'{"v": 1, "calls": [], "spans": [], "events": []}')
    assert old.batch == ([], [], [], [])


def test_scopes_for_scores():
    assert required_scope("POST", "/api/scores") == "annotate"
    assert required_scope("POST", "/calls/abc/scores") == "annotate"
    assert required_scope("GET", "/api/scores") == "read"
    (_, ingest), (_, annotate), (_, admin) = parse_api_keys("ingest:a,annotate:b,admin:c")
    assert allowed("annotate", "/api/scores", ingest)  # an app's thumbs-up with its key
    assert not allowed("annotate", "/calls/abc/scores", ingest)  # the UI form is not ingest
    assert allowed("annotate", "/calls/abc/scores", annotate)
    assert not allowed("read", "/api/calls", annotate)
    assert allowed("annotate", "/calls/abc/scores", admin)


def _exported_row(scores: list[dict]) -> dict:
    return {
        "id": "c1",
        "trace_id": TRACE,
        "span_id": SPAN,
        "ts": "2026-01-01T00:00:00+00:00",
        "duration_ms": 5.0,
        "source": "otlp",
        "scores": scores,
    }


def test_exported_calls_carry_their_scores_through_jsonl_and_parquet(tmp_path):
    import orjson

    from gensight.export.files import ParquetSink, read_parquet, records_from_jsonl

    own = Score(id="s1", ts=datetime(2026, 1, 1, tzinfo=UTC), target="call", target_id="c1",
                name="helpful", value=0.5, comment="ok", source="human", author="ann")  # fmt: skip
    of_trace = Score(id="s2", ts=datetime(2026, 1, 1, tzinfo=UTC), target="trace",
                     target_id=TRACE, name="resolved", label="yes")  # fmt: skip
    row = _exported_row([own.to_dict(), of_trace.to_dict()])
    twice = orjson.dumps(row) + b"\n" + orjson.dumps({**row, "id": "c2"}) + b"\n"
    calls, scores = records_from_jsonl(twice)
    assert [c.id for c in calls] == ["c1", "c2"]
    assert scores == [own, of_trace]  # the trace's score, on both calls, once
    sink = ParquetSink(tmp_path / "x.parquet")
    sink.write(row)
    sink.write({**row, "id": "c2", "scores": []})
    sink.close()
    read = list(read_parquet(tmp_path / "x.parquet"))
    assert [(c.id, s) for c, s in read] == [("c1", [own, of_trace]), ("c2", [])]


def test_an_exported_score_that_is_not_one_names_the_line():
    import orjson

    from gensight.export.files import BadRecord, records_from_jsonl

    bad = orjson.dumps(_exported_row([{"target": "call", "target_id": "c1", "value": 1}]))
    with pytest.raises(BadRecord) as e:
        records_from_jsonl(b"\n" + bad)
    assert "line 2" in str(e.value) and "scores[0].name" in str(e.value)
