"""The token-estimation processor: counts for calls that reported none, never a guess
over a reported count."""

from __future__ import annotations

from datetime import UTC, datetime

from gensight.enrich import tokens
from gensight.enrich.estimate import TokenEstimator, estimate_missing
from gensight.model.records import CallRecord


def _call(**kw) -> CallRecord:
    base = dict(
        id="c", trace_id="t", span_id="s", ts=datetime.now(UTC), duration_ms=1.0,
        source="otlp", operation="chat", request_model="gpt-4o-mini",
    )  # fmt: skip
    return CallRecord(**{**base, **kw})


def test_counts_prompt_and_answer_from_the_messages() -> None:
    call = _call(
        system_instructions=[{"type": "text", "content": "Be brief."}],
        input_messages=[{"role": "user", "content": "What is the capital of France?"}],
        output_messages=[{"role": "assistant", "content": "Paris is the capital of France."}],
    )
    estimate_missing(call)
    want_in = tokens.count_chat_prompt(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        "gpt-4o-mini",
    )
    assert call.tokens_estimated is True
    assert call.input_tokens == want_in and want_in > 10
    assert call.output_tokens == tokens.count_text("Paris is the capital of France.", "gpt-4o")


def test_tool_calls_count_as_output() -> None:
    call = _call(
        input_messages=[{"role": "user", "content": "weather?"}],
        output_messages=[
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "1", "name": "get_weather", "arguments": '{"city":"Oslo"}'}]}
        ],
    )  # fmt: skip
    TokenEstimator()([call])
    assert call.output_tokens == tokens.count_texts(["get_weather", '{"city":"Oslo"}'])


def test_reported_counts_failures_and_empty_calls_are_left_alone() -> None:
    reported = _call(input_messages=[{"role": "user", "content": "hi"}], input_tokens=7)
    failed = _call(input_messages=[{"role": "user", "content": "hi"}], status="error")
    empty = _call()
    agent = _call(operation="invoke_agent", input_messages=[{"role": "user", "content": "hi"}])
    TokenEstimator()([reported, failed, empty, agent])
    assert (reported.input_tokens, reported.output_tokens, reported.tokens_estimated) == (
        7, None, False,
    )  # fmt: skip
    for c in (failed, empty, agent):
        assert (c.input_tokens, c.output_tokens, c.tokens_estimated) == (None, None, False)
