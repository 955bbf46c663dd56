"""Issue #17 item 1: values of fields that NAME a secret are masked whatever they look
like (attributes, headers, query strings, event attributes, JSON message parts), a bare AWS
secret key is caught, and span names and attribute keys are scanned too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gensight.enrich.redaction import Redactor
from gensight.enrich.secrets import MASK, is_secret_name, is_secret_param, scrub_text
from gensight.model.records import CallRecord, ContentEvent, SpanRecord

PLAIN = "hunter2isplain"  # no key shape at all: only its field's name says it is secret


def _call(**kw: Any) -> CallRecord:
    base: dict[str, Any] = dict(
        id="c1", trace_id="t" * 32, span_id="s" * 16, ts=datetime.now(UTC), duration_ms=1.0,
        source="otlp",
    )  # fmt: skip
    return CallRecord(**(base | kw))


@pytest.mark.parametrize(
    "name",
    ["password", "db_password", "OPENAI_API_KEY", "x-amz-security-token", "sessionToken",
     "Set-Cookie", "client-secret", "aws_secret_access_key", "privateKey"],
)  # fmt: skip
def test_more_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["gen_ai.usage.output_tokens", "max_tokens", "llm.token_count.prompt",
             "cache_key", "gen_ai.request.model", "tokenizer", "secretary"],
)  # fmt: skip
def test_names_that_are_not_secrets(name: str) -> None:
    assert not is_secret_name(name)


def test_query_parameters() -> None:
    assert is_secret_param("key") and is_secret_param("sig") and is_secret_param("api_key")
    assert not is_secret_param("alt") and not is_secret_param("model")
    url = "https://x.example/v1beta/models/g:generateContent?alt=sse&key=plainvalue123&sig=abcDEF"
    assert scrub_text(url) == (
        f"https://x.example/v1beta/models/g:generateContent?alt=sse&key={MASK}&sig={MASK}"
    )
    assert scrub_text("see https://a.example/p?page=2&q=tokens") == (
        "see https://a.example/p?page=2&q=tokens"
    )


def test_bare_aws_secret_key() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert secret not in scrub_text(f"my AWS creds: {secret} ok")
    assert secret not in scrub_text(f"AKIAIOSFODNN7EXAMPLE {secret}")
    sha = "3f786850e387550fdab836ed7e6dc881de23001b"  # hex digests are left alone
    assert scrub_text(f"commit {sha}") == f"commit {sha}"


def test_attributes_headers_events_and_messages_masked_by_name() -> None:
    call = _call(
        attributes={
            "password": PLAIN,
            "db.password": 1234567,
            "http.request.header.authorization": ["Basic " + PLAIN],
            "http.request.header.x-api-key": [PLAIN],
            "http.request.header.cookie": ["gensight_session=" + PLAIN],
            "url.full": f"https://api.example/v1?api_key={PLAIN}&page=1",
            "gen_ai.usage.input_tokens": 12,
            "gen_ai.request.model": "gpt-4o",
        },
        input_messages=[
            {"role": "user", "content": "connect"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"function": {"name": "login", "arguments": {"user": "bob", "password": PLAIN}}}
                ],
            },
        ],  # fmt: skip
    )
    span = SpanRecord(
        trace_id="t" * 32, span_id="s" * 16, name="x", ts=call.ts, duration_ms=1,
        attributes={"client_secret": PLAIN},
        events=[{"name": "exception", "attributes": {"api_key": PLAIN, "ok": "fine"}}],
    )  # fmt: skip
    event = ContentEvent("t" * 32, "s" * 16, call.ts, 0, "input", {"secret": PLAIN})
    Redactor().apply([call], [span], [event])
    assert PLAIN not in repr((call.to_dict(), span.to_dict(), event))
    a = call.attributes
    assert a["password"] == MASK and a["db.password"] == MASK
    assert a["http.request.header.authorization"] == [MASK]
    assert a["url.full"] == f"https://api.example/v1?api_key={MASK}&page=1"
    assert a["gen_ai.usage.input_tokens"] == 12 and a["gen_ai.request.model"] == "gpt-4o"
    args = call.input_messages[1]["tool_calls"][0]["function"]["arguments"]
    assert args == {"user": "bob", "password": MASK}
    assert span.events[0]["attributes"] == {"api_key": MASK, "ok": "fine"}
    assert event.message == {"secret": MASK}


def test_span_names_and_attribute_keys_are_scanned() -> None:
    key = "sk-proj-abc123DEF456ghi789JKL012"
    span = SpanRecord(
        trace_id="t" * 32, span_id="s" * 16, name=f"call with {key}", ts=datetime.now(UTC),
        duration_ms=1, attributes={f"header.{key}": "v", "n": 1},
    )  # fmt: skip
    Redactor().apply([], [span], [])
    assert key not in repr(span.to_dict())
    assert span.attributes["n"] == 1
