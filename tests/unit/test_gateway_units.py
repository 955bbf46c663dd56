"""The gateway's small pieces: SSE framing, trace context, Retry-After, providers, tokens."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest
from multidict import CIMultiDict

from gensight.enrich import tokens
from gensight.receive.gateway.capture import Capture, operation_for
from gensight.receive.gateway.forward import accept_encoding
from gensight.receive.gateway.policy import retry_after
from gensight.receive.gateway.record import parse_traceparent
from gensight.receive.gateway.sse import SSESplitter, parse_event
from gensight.receive.gateway.upstreams import Upstream, provider_for


def test_sse_events_split_across_chunks_keep_their_bytes() -> None:
    stream = b'data: {"a":1}\n\nevent: x\ndata: {"b":\ndata: 2}\n\n: keep-alive\n\ndata: [DONE]\n\n'
    for size in (1, 2, 3, 7, len(stream)):
        sp = SSESplitter()
        events: list[bytes] = []
        for i in range(0, len(stream), size):
            events += sp.feed(stream[i : i + size])
        assert b"".join(events) == stream and sp.tail() == b""
        assert [parse_event(e) for e in events] == [
            (None, b'{"a":1}'),
            ("x", b'{"b":\n2}'),
            (None, None),
            (None, b"[DONE]"),
        ]


def test_sse_crlf_and_unterminated_tail() -> None:
    sp = SSESplitter()
    assert sp.feed(b"data: one\r\n\r\ndata: two\r\n") == [b"data: one\r\n\r\n"]
    assert sp.tail() == b"data: two\r\n"
    assert parse_event(b"data:no-space\r\n\r\n") == (None, b"no-space")


def test_traceparent() -> None:
    tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    assert parse_traceparent(f"00-{tid}-{sid}-01".encode()) == (tid, sid)
    assert parse_traceparent(f"00-{tid.upper()}-{sid}-00".encode()) == (tid, sid)
    for bad in (b"", b"garbage", f"ff-{tid}-{sid}-01".encode(), f"00-{'0' * 32}-{sid}-01".encode()):
        assert parse_traceparent(bad) is None


def test_retry_after_forms() -> None:
    assert retry_after(CIMultiDict({"Retry-After": "2"})) == 2.0
    assert retry_after(CIMultiDict({"retry-after-ms": "250", "retry-after": "9"})) == 0.25
    future = formatdate(time.time() + 30, usegmt=True)
    assert 25 < retry_after(CIMultiDict({"Retry-After": future})) <= 30
    assert retry_after(CIMultiDict()) is None
    assert retry_after(CIMultiDict({"Retry-After": "soon"})) is None


def test_accept_encoding_keeps_what_can_be_read_back() -> None:
    assert accept_encoding(b"gzip, deflate, zstd") == b"gzip, deflate"
    assert accept_encoding(b"zstd") is None


@pytest.mark.parametrize(
    ("name", "url", "provider"),
    [
        ("openai", "https://api.openai.com/v1", "openai"),
        ("work", "https://myres.openai.azure.com/openai/v1", "azure.ai.openai"),
        ("azure", "http://127.0.0.1:9000/v1", "azure.ai.openai"),
        ("deepseek", "https://api.deepseek.com/v1", "deepseek"),
        ("kimi", "http://127.0.0.1:9000/v1", "moonshot_ai"),
        ("local", "http://127.0.0.1:11434/v1", "local"),
    ],
)
def test_provider_for(name: str, url: str, provider: str) -> None:
    assert provider_for(name, url) == provider


def test_upstream_address_has_no_credentials() -> None:
    up = Upstream.from_config("x", "https://user:pw@example.com:8443/v1/?k=1")
    assert up.address == "https://example.com:8443/v1/" and up.host == "example.com"
    with pytest.raises(ValueError):
        Upstream.from_config("x", "ftp://example.com")


def test_operations() -> None:
    assert operation_for("POST", "/chat/completions") == "chat"
    assert operation_for("POST", "/deployments/gpt4/chat/completions") == "chat"
    assert operation_for("POST", "/completions") == "text_completion"
    assert operation_for("POST", "/embeddings") == "embeddings"
    assert operation_for("POST", "/responses") == "responses"
    assert operation_for("GET", "/models") is None
    generic = Capture("POST", "/images/generations", b'{"model": "gpt-image-1", "prompt": "x"}')
    assert generic.operation == "images.generations"
    assert Capture("POST", "/files", b"--multipart").operation is None


def test_include_usage_is_injected_only_for_streams_without_it() -> None:
    plain = b'{"model":"m","messages":[],"stream":true}'
    cap = Capture("POST", "/chat/completions", plain)
    assert cap.injected_usage and b'"include_usage":true' in cap.upstream_body
    asked = b'{"model":"m","stream":true,"stream_options":{"include_usage":true}}'
    cap = Capture("POST", "/chat/completions", asked)
    assert not cap.injected_usage and cap.upstream_body is asked
    kept = Capture(
        "POST",
        "/chat/completions",
        b'{"model":"m","stream":true,"stream_options":{"include_obfuscation":false}}',
    )
    assert b'"stream_options":{"include_obfuscation":false,"include_usage":true}' in (
        kept.upstream_body
    )
    body = b'{"model":"m","prompt":"x","stream":true}'
    legacy = Capture("POST", "/completions", body)
    assert legacy.injected_usage and b'"include_usage":true' in legacy.upstream_body
    # an upstream that rejects stream_options gets the client's own body
    assert legacy.body_for(False) is body and not legacy.injected_usage
    assert legacy.body_for(True) is legacy.upstream_body and legacy.injected_usage


def test_token_estimates() -> None:
    assert tokens.encoding_name("gpt-4o-mini") == tokens.O200K
    assert tokens.encoding_name("gpt-4-turbo") == tokens.CL100K
    assert tokens.encoding_name("gpt-3.5-turbo") == tokens.CL100K
    assert tokens.encoding_name("deepseek-chat") == tokens.O200K
    assert tokens.count_text("hello world", "gpt-4o") == 2
    assert tokens.count_text("", "gpt-4o") == 0
    # OpenAI's documented framing: 3 per message + role + content, 3 to prime the reply
    msgs = [{"role": "user", "content": "hello world"}]
    assert tokens.count_chat_prompt(msgs, "gpt-4o") == 3 + 3 + 1 + 2
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}]
    assert tokens.count_chat_prompt(parts, "gpt-4o") == 3 + 3 + 1 + 2
    assert tokens.ready("gpt-4o")
