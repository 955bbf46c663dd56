"""One call, one record: the merge rule and the writer's merge step, without a store."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from gensight.model.records import CallRecord, SpanRecord
from gensight.pipeline.merge import MERGED_FROM, CallMerger, merge_calls

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TRACE = "ab" * 16


def _call(span_id: str, **kw) -> CallRecord:
    base = dict(
        id=span_id,
        trace_id=TRACE,
        span_id=span_id,
        ts=T0,
        duration_ms=100.0,
        source="otlp",
        operation="chat",
        provider="anthropic",
        response_id="msg_1",
    )
    base.update(kw)
    return CallRecord(**base)


def test_richer_fields_win_and_the_first_identity_stays():
    first = _call(
        "a" * 16,
        producer="anthropic-sdk",
        request_model="claude-sonnet-4",
        input_tokens=50,
        output_tokens=20,
        attributes={"k": 1, "shared": "first"},
    )
    other = _call(
        "b" * 16,
        producer="traceloop",
        ts=T0 + timedelta(milliseconds=3),
        response_model="claude-sonnet-4-20250514",
        input_tokens=50,
        output_tokens=20,
        cache_read_tokens=8,
        finish_reasons=["end_turn"],
        input_messages=[{"role": "user", "content": "hi"}],
        stream=True,
        ttft_ms=40.0,
        attributes={"shared": "other", "llm.request.type": "chat"},
    )
    m = merge_calls(first, other)
    assert (m.id, m.span_id, m.ts, m.producer) == (first.id, first.span_id, T0, "anthropic-sdk")
    assert m.request_model == "claude-sonnet-4"
    assert m.response_model == "claude-sonnet-4-20250514"
    assert (m.input_tokens, m.output_tokens, m.cache_read_tokens) == (50, 20, 8)
    assert m.finish_reasons == ["end_turn"] and m.stream and m.ttft_ms == 40.0
    assert m.input_messages == [{"role": "user", "content": "hi"}]
    assert m.attributes["shared"] == "first" and m.attributes["llm.request.type"] == "chat"
    assert m.attributes[MERGED_FROM] == [
        {"id": other.id, "span_id": other.span_id, "producer": "traceloop"}
    ]
    # neither input changed
    assert first.response_model is None and MERGED_FROM not in first.attributes


def test_reported_tokens_beat_estimated_ones_and_the_price_is_recomputed():
    estimated = _call("a" * 16, input_tokens=40, output_tokens=30, tokens_estimated=True,
                      cost_usd=0.5, cost_source="computed", request_model="m")  # fmt: skip
    reported = _call("b" * 16, input_tokens=52, output_tokens=None, request_model="m")
    m = merge_calls(estimated, reported)
    # the reported group wins whole: an estimate never fills a reported count's gap
    assert (m.input_tokens, m.output_tokens, m.tokens_estimated) == (52, None, False)
    assert m.cost_usd is None and m.cost_source == "unknown"  # the pricer computes it again
    # the other way round, the reported counts stay and so does their price
    priced = dataclasses.replace(reported, cost_usd=0.25, cost_source="computed")
    m2 = merge_calls(priced, estimated)
    assert (m2.input_tokens, m2.output_tokens, m2.tokens_estimated) == (52, None, False)
    assert (m2.cost_usd, m2.cost_source) == (0.25, "computed")


def test_an_error_outcome_and_its_details_win():
    ok = _call("a" * 16)
    failed = _call("b" * 16, status="error", error_class="rate_limit", http_status=429)
    m = merge_calls(ok, failed)
    assert (m.status, m.error_class, m.http_status) == ("error", "rate_limit", 429)


def test_merging_is_idempotent():
    a = _call("a" * 16, input_tokens=5, tags=["x"])
    b = _call("b" * 16, response_model="r", tags=["y", "x"], attributes={"z": 1})
    m = merge_calls(a, b)
    assert m.tags == ["x", "y"]
    assert merge_calls(m, b) == m
    assert merge_calls(m, a) == m
    assert merge_calls(a, a) is a


def test_the_merge_step_folds_a_batch_and_repoints_spans():
    a = _call("a" * 16, input_tokens=5)
    b = _call("b" * 16, response_model="r")
    unrelated = _call("c" * 16, response_id="msg_2")
    resent = dataclasses.replace(unrelated)
    spans = [
        SpanRecord(trace_id=TRACE, span_id=c.span_id, name="chat", ts=T0, duration_ms=1.0,
                   call_id=c.id)
        for c in (a, b, unrelated)
    ]  # fmt: skip
    merger = CallMerger()
    calls, out_spans, counted = merger.resolve([a, b, unrelated, resent], spans, None)
    assert [c.id for c in calls] == [a.id, unrelated.id]
    assert calls[0].response_model == "r" and calls[0].input_tokens == 5
    assert [s.call_id for s in out_spans] == [a.id, a.id, unrelated.id]
    assert [s.span_id for s in out_spans] == [a.span_id, b.span_id, unrelated.span_id]
    assert [c.id for c in counted] == [a.id, unrelated.id]


def test_the_merge_step_against_stored_calls_counts_each_call_once():
    stored: dict[str, CallRecord] = {}

    def lookup(calls):
        keys = {(c.trace_id, c.response_id) for c in calls}
        return [s for s in stored.values() if s.id in {c.id for c in calls}
                or (s.trace_id, s.response_id) in keys]  # fmt: skip

    merger = CallMerger()
    a = _call("a" * 16, input_tokens=5)
    calls, _, counted = merger.resolve([a], [], lookup)
    assert calls == [a] and counted == [a]
    # the write of that batch failed after committing: the retry writes nothing new but
    # still tells the observers, who never heard of it
    stored[a.id] = a
    calls, _, counted = merger.resolve([a], [], lookup)
    assert calls == [] and counted == [a]
    merger.told(counted)
    # a resend later: nothing to write, nothing to count
    assert merger.resolve([a], [], lookup)[::2] == ([], [])
    # the second producer's report arrives: merged into the stored record, not counted again
    b = _call("b" * 16, response_model="r")
    span = SpanRecord(trace_id=TRACE, span_id=b.span_id, name="chat", ts=T0, duration_ms=1.0,
                      call_id=b.id)  # fmt: skip
    calls, spans, counted = merger.resolve([b], [span], lookup)
    assert [(c.id, c.response_model, c.input_tokens) for c in calls] == [(a.id, "r", 5)]
    assert spans[0].call_id == a.id and counted == []
    stored[a.id] = calls[0]
    assert merger.resolve([b], [span], lookup)[::2] == ([], [])


def _resolved_ids(calls: list[CallRecord]) -> list[str]:
    merged, _, _ = CallMerger().resolve(calls, [], None)
    return sorted(c.id for c in merged)


def test_two_producers_as_siblings_at_the_root_are_one_call():
    """Two instrumentations whose spans are both roots get two trace ids: the provider's
    response id (or, for a failed call, its request id) still makes them one call."""
    sdk = _call("a" * 16, producer="anthropic-sdk", input_tokens=10, output_tokens=5)
    other = _call("b" * 16, trace_id="cd" * 16, producer="traceloop",
                  ts=T0 + timedelta(milliseconds=5), input_tokens=10, output_tokens=5)  # fmt: skip
    assert _resolved_ids([sdk, other]) == [sdk.id]
    failed = dict(response_id=None, upstream_request_id="req_011", error_class="upstream_error")
    f1 = _call("c" * 16, **failed)
    f2 = _call("d" * 16, trace_id="ef" * 16, **failed)
    assert _resolved_ids([f1, f2]) == [f1.id]


def test_ids_shared_across_traces_are_not_enough_on_their_own():
    # a local server hands out the same id twice: never one call across traces
    local = dict(provider="ollama", server_address="127.0.0.1", response_id="chatcmpl-1")
    l1 = _call("a" * 16, **local)
    l2 = _call("b" * 16, trace_id="cd" * 16, **local)
    assert _resolved_ids([l1, l2]) == sorted([l1.id, l2.id])
    # within one trace the same response id still is one call
    l3 = _call("c" * 16, **local)
    assert _resolved_ids([l1, l3]) == [l1.id]
    # a public provider's id in two traces far apart, or for another model: two calls
    far = _call("d" * 16, trace_id="cd" * 16, ts=T0 + timedelta(minutes=5))
    assert _resolved_ids([_call("e" * 16), far]) == sorted(["e" * 16, far.id])
    m1 = _call("f" * 16, response_model="claude-sonnet-4")
    m2 = _call("9" * 16, trace_id="cd" * 16, response_model="claude-haiku-4")
    assert _resolved_ids([m1, m2]) == sorted([m1.id, m2.id])


def test_a_sibling_report_arriving_later_merges_with_the_stored_one():
    stored = _call("a" * 16, producer="anthropic-sdk", input_tokens=10, output_tokens=5)
    later = _call("b" * 16, trace_id="cd" * 16, producer="traceloop",
                  cache_read_tokens=3, input_tokens=10, output_tokens=5)  # fmt: skip
    merger = CallMerger()
    calls, _, _ = merger.resolve([later], [], lambda batch: [stored])
    assert [c.id for c in calls] == [stored.id]
    assert calls[0].cache_read_tokens == 3


def test_a_failed_call_two_producers_report_without_ids_is_one_call():
    """A 429 has no response id and one producer may not record the request id: two
    producers' reports that start together for the same model are one call; one
    producer's two concurrent failures stay two."""
    fail = dict(response_id=None, status="error", error_class="rate_limit",
                request_model="claude-sonnet-4-5")  # fmt: skip
    sdk = _call("a" * 16, producer="anthropic-sdk", upstream_request_id="req_1", **fail)
    tl = _call("b" * 16, trace_id="cd" * 16, producer="traceloop",
               ts=T0 + timedelta(milliseconds=2), **fail)  # fmt: skip
    assert _resolved_ids([sdk, tl]) == [sdk.id]
    # two concurrent failures, each told by both producers: two records
    sdk2 = _call("c" * 16, trace_id="ef" * 16, producer="anthropic-sdk",
                 upstream_request_id="req_2", ts=T0 + timedelta(milliseconds=1),
                 **fail)  # fmt: skip
    tl2 = _call("d" * 16, trace_id="12" * 16, producer="traceloop",
                ts=T0 + timedelta(milliseconds=3), **fail)  # fmt: skip
    assert len(_resolved_ids([sdk, sdk2, tl, tl2])) == 2
    # the same producer twice, another model, or far apart: never one call
    assert len(_resolved_ids([sdk, sdk2])) == 2
    other = _call("e" * 16, producer="traceloop", **{**fail, "request_model": "claude-haiku-4"})
    assert len(_resolved_ids([sdk, other])) == 2
    late = _call("f" * 16, producer="traceloop", ts=T0 + timedelta(seconds=3), **fail)
    assert len(_resolved_ids([sdk, late])) == 2


def test_an_inference_span_inside_the_same_call_is_folded_into_it():
    """A second instrumentation wrapping the same client call (or a framework's span
    around its provider call) nests a span of the same operation and model: one call."""
    outer = _call("a" * 16, response_id=None, producer="openinference", input_tokens=None)
    inner = _call("b" * 16, parent_span_id=outer.span_id, producer="openai-v2",
                  response_id="chatcmpl-9", input_tokens=7, output_tokens=3)  # fmt: skip
    for batch in ([outer, inner], [inner, outer]):  # whichever is exported first
        merged, _, _ = CallMerger().resolve(batch, [], None)
        assert len(merged) == 1 and merged[0].input_tokens == 7
    # a failed attempt inside a retrying wrapper, or another model inside: its own call
    failed = _call("c" * 16, parent_span_id=outer.span_id, status="error", response_id=None)
    assert len(_resolved_ids([outer, failed])) == 2
    other = _call("d" * 16, parent_span_id=outer.span_id, request_model="gpt-4o")
    assert len(_resolved_ids([dataclasses.replace(outer, request_model="o3"), other])) == 2
    emb = _call("e" * 16, parent_span_id=outer.span_id, operation="embeddings")
    assert len(_resolved_ids([outer, emb])) == 2
