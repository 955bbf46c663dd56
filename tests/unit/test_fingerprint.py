"""Request fingerprints: what makes two requests the same for a cache."""

from __future__ import annotations

from datetime import UTC, datetime

from gensight.enrich import fingerprint
from gensight.enrich.redaction import Redactor
from gensight.model.records import CallRecord


def _call(**kw) -> CallRecord:
    base = dict(id="a", trace_id="t", span_id="s", ts=datetime(2026, 1, 1, tzinfo=UTC),
                duration_ms=1.0, source="otlp", provider="openai", operation="chat",
                request_model="gpt-4o-mini")  # fmt: skip
    base.update(kw)
    return CallRecord(**base)


def _msgs(*texts: str) -> list[dict]:
    return [{"role": "user", "content": t} for t in texts]


def _hashed(**kw) -> CallRecord:
    c = _call(**kw)
    fingerprint.fill_from_record(c)
    return c


def test_equal_requests_share_a_hash_and_what_changes_output_splits_them():
    a = _hashed(input_messages=_msgs("hi"))
    b = _hashed(id="b", input_messages=_msgs("hi"), user="someone-else", app="other")
    assert a.request_hash == b.request_hash and len(a.request_hash) == 32
    for change in (
        {"input_messages": _msgs("hello")},
        {"request_model": "gpt-4o"},
        {"temperature": 0.7},
        {"seed": 3},
        {"attributes": {"gen_ai.request.tools": '["lookup"]'}},
        {"attributes": {"gen_ai.output.type": "json_object"}},
        {"system_instructions": [{"role": "system", "content": "be brief"}]},
    ):
        assert _hashed(**{"input_messages": _msgs("hi"), **change}).request_hash != a.request_hash


def test_prefix_is_everything_but_the_last_message():
    system = [{"role": "system", "content": "You are a support agent. " * 200}]
    a = _hashed(system_instructions=system, input_messages=_msgs("first", "question one"))
    b = _hashed(system_instructions=system, input_messages=_msgs("first", "question two"))
    assert a.request_hash != b.request_hash
    assert a.prefix_hash == b.prefix_hash
    assert 900 < a.prefix_tokens < 1300  # "You are a support agent. " is 6 tokens
    lone = _hashed(input_messages=_msgs("only one"))
    assert lone.request_hash and lone.prefix_hash is None and lone.prefix_tokens is None


def test_no_messages_no_hash_and_a_hash_is_kept():
    assert _hashed().request_hash is None
    c = _hashed(input_messages=_msgs("x"), request_hash="kept")
    assert c.request_hash == "kept"


def test_hash_is_taken_before_redaction_masks_the_text():
    secret = "sk-proj-abcdefghijklmnop1234567890ABCD"
    c = _call(input_messages=_msgs(f"my key is {secret}"))
    fingerprint.fill_from_record(c)
    before = c.request_hash
    Redactor().apply([c], [], [])
    assert secret not in str(c.input_messages)
    assert c.request_hash == before
    assert _hashed(input_messages=_msgs(f"my key is {secret}")).request_hash == before
