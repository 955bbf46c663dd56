"""The gateway's readers of Anthropic's and Gemini's own wires, and the fake Gemini API
(in-process, no socket)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from gensight.demo.gemini_upstream import create_app as gemini_app
from gensight.demo.gemini_upstream import gemini_prompt_tokens
from gensight.enrich.pricing import CACHE_WRITE_1H
from gensight.model.records import CallRecord
from gensight.model.settings import parse_upstreams
from gensight.receive.gateway.anthropic import CACHE_CREATION_PREFIX, AnthropicCapture
from gensight.receive.gateway.gemini import GeminiCapture, retry_delay, split_path
from gensight.receive.gateway.upstreams import Upstream


def _record() -> CallRecord:
    return CallRecord(id="x", trace_id="t", span_id="s", ts=datetime.now(UTC), duration_ms=1.0,
                      source="gateway")  # fmt: skip


def _event(cap: AnthropicCapture, name: str, data: dict) -> None:
    cap.on_event(name, json.dumps({"type": name, **data}).encode())


ASK = json.dumps(
    {"model": "claude-sonnet-4-5", "max_tokens": 9, "stream": True,
     "messages": [{"role": "user", "content": "hi"}]}
).encode()  # fmt: skip


def test_anthropic_message_delta_usage_is_cumulative_and_input_adds_the_cache() -> None:
    cap = AnthropicCapture("POST", "/v1/messages", ASK)
    start = {"id": "msg_1", "model": "claude-sonnet-4-5", "usage": {
        "input_tokens": 5, "cache_creation_input_tokens": 2, "cache_read_input_tokens": 7,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 2},
        "output_tokens": 1}}  # fmt: skip
    _event(cap, "message_start", {"message": start})
    _event(cap, "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    assert not cap.has_output  # message_start is not a token
    _event(cap, "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}})
    assert cap.has_output
    _event(
        cap, "message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 6}}
    )
    _event(cap, "message_delta", {"delta": {}, "usage": {"output_tokens": 8}})
    call = _record()
    cap.fill(call, True)
    assert (call.input_tokens, call.output_tokens) == (14, 8)  # not 6 + 8
    assert (call.cache_read_tokens, call.cache_write_tokens) == (7, 2)
    assert call.attributes[CACHE_WRITE_1H] == 2
    assert CACHE_WRITE_1H == CACHE_CREATION_PREFIX + "ephemeral_1h_input_tokens"
    assert call.finish_reasons == ["end_turn"] and call.response_id == "msg_1"
    assert call.output_messages == [
        {"role": "assistant", "content": "Hi", "finish_reason": "end_turn"}
    ]


def test_anthropic_error_event_makes_an_error_and_keeps_the_partial_answer() -> None:
    cap = AnthropicCapture("POST", "/v1/messages", ASK)
    _event(cap, "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    _event(cap, "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Pa"}})
    _event(cap, "error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
    call = _record()
    cap.fill(call, True)
    assert (call.status, call.error_class) == ("error", "upstream_error")
    assert "overloaded_error" in call.error_message
    assert call.output_messages[0]["content"] == "Pa"
    cap = AnthropicCapture("POST", "/v1/messages", ASK)
    _event(cap, "error", {"error": {"type": "rate_limit_error", "message": "slow down"}})
    call = _record()
    cap.fill(call, False)
    assert call.error_class == "rate_limit" and call.output_messages is None


def test_anthropic_request_messages_and_what_is_a_call() -> None:
    body = {
        "model": "m", "max_tokens": 5,
        "system": [{"type": "text", "text": "Be terse."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "A" * 1000}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": "s"},
                {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
        ],
        "metadata": {"user_id": "u-9"},
    }  # fmt: skip
    cap = AnthropicCapture("POST", "/v1/messages", json.dumps(body).encode())
    inputs, system = cap.input_messages()
    assert system == [{"role": "system", "content": "Be terse."}]
    user, assistant, tool = inputs
    assert user["content"] == "Look" and "1000 characters not stored" in json.dumps(user["parts"])
    assert assistant["tool_calls"] == [{"id": "toolu_1", "name": "f", "arguments": '{"a":1}'}]
    assert tool == {"role": "tool", "tool_call_id": "toolu_1", "content": "ok"}
    call = _record()
    cap.fill(call, True)
    assert call.user == "u-9" and call.stream is False
    assert not AnthropicCapture("POST", "/v1/messages/count_tokens", b"{}").is_call
    assert not AnthropicCapture("GET", "/v1/models", b"").is_call


def test_gemini_paths_usage_and_retry_info() -> None:
    assert split_path("/v1beta/models/gemini-2.5-flash:streamGenerateContent") == (
        "gemini-2.5-flash", "streamGenerateContent")  # fmt: skip
    assert split_path("/v1beta/files") == (None, None)
    assert not GeminiCapture("POST", "/v1beta/models/m:countTokens", b"{}").is_call
    cap = GeminiCapture("POST", "/v1beta/models/gemini-2.5-flash:streamGenerateContent", b"{}")
    assert cap.stream and cap.operation == "generate_content"
    for i, (text, usage) in enumerate([("Hel", {"promptTokenCount": 9}), ("lo", {
        "promptTokenCount": 9, "candidatesTokenCount": 2, "thoughtsTokenCount": 5,
        "cachedContentTokenCount": 4, "toolUsePromptTokenCount": 1})]):  # fmt: skip
        cand = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
        if i:
            cand["finishReason"] = "STOP"
        cap.on_event(None, json.dumps({"candidates": [cand], "usageMetadata": usage}).encode())
    call = _record()
    cap.fill(call, True)
    assert (call.input_tokens, call.output_tokens, call.reasoning_tokens) == (9, 7, 5)
    assert call.cache_read_tokens == 4 and call.finish_reasons == ["STOP"]
    assert call.output_messages[0]["content"] == "Hello"
    body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}]}}  # fmt: skip
    assert retry_delay(json.dumps(body)) == 7.0
    assert retry_delay("not json") is None and retry_delay('{"error": {}}') is None


def test_gemini_error_inside_a_json_array_stream() -> None:
    cap = GeminiCapture("POST", "/v1beta/models/m:streamGenerateContent", b"{}")
    part = {"candidates": [{"content": {"parts": [{"text": "a"}]}}]}
    cap.on_body(json.dumps([part, {"error": {"code": 503, "status": "UNAVAILABLE"}}]).encode())
    call = _record()
    cap.fill(call, True)
    assert (call.status, call.error_class) == ("error", "upstream_error")


def test_upstream_wire_settings() -> None:
    ups = parse_upstreams(["claude=anthropic:http://127.0.0.1:9", "g=gemini:https://x"])
    assert ups["claude"] == "anthropic:http://127.0.0.1:9"
    claude = Upstream.from_config("claude", ups["claude"])
    assert (claude.wire, claude.provider, claude.url) == (
        "anthropic",
        "anthropic",
        "http://127.0.0.1:9",
    )
    g = Upstream.from_config("g", ups["g"])
    assert (g.wire, g.provider) == ("gemini", "gcp.gemini")
    assert Upstream.from_config("o", "https://api.openai.com/v1").wire == "openai"
    with pytest.raises(ValueError, match="anthropic"):
        parse_upstreams(["bad=anthropic:ftp://x"])
    # an upstream's own key (--upstream-key) goes in its wire's header
    keyed = {"claude": "anthropic:http://127.0.0.1:9", "g": "gemini:https://x"}
    from gensight.receive.gateway.upstreams import configure

    ups, _ = configure(keyed, {"claude": "K1", "g": "K2"}, {}, {"K1": "a", "K2": "b"})
    assert ups["claude"].auth_header() == ("x-api-key", "a")
    assert ups["g"].auth_header() == ("x-goog-api-key", "b")


# -- the fake Gemini API ---------------------------------------------------------------

KEY = {"x-goog-api-key": "k"}
GEN = {"contents": [{"role": "user", "parts": [{"text": "Say hello."}]}]}


@pytest.fixture
def gemini() -> TestClient:
    return TestClient(gemini_app())


def test_gemini_fake_answer_shape(gemini: TestClient) -> None:
    r = gemini.post("/v1beta/models/gemini-2.0-flash:generateContent", json=GEN, headers=KEY)
    d = r.json()
    (cand,) = d["candidates"]
    assert cand["finishReason"] == "STOP" and cand["content"]["role"] == "model"
    u = d["usageMetadata"]
    assert u["promptTokenCount"] == gemini_prompt_tokens(GEN)
    assert u["totalTokenCount"] == u["promptTokenCount"] + u["candidatesTokenCount"]
    assert "thoughtsTokenCount" not in u  # 2.0 does not think
    u25 = gemini.post(
        "/v1beta/models/gemini-2.5-flash:generateContent", json=GEN, headers=KEY
    ).json()["usageMetadata"]
    assert u25["totalTokenCount"] == sum(
        u25[k] for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")
    )


def test_gemini_fake_streams(gemini: TestClient) -> None:
    url = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    sse = gemini.post(url + "?alt=sse", json=GEN, headers=KEY)
    assert sse.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(e[6:]) for e in sse.text.split("\r\n\r\n") if e]
    assert all("finishReason" not in e["candidates"][0] for e in events[:-1])
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    counts = [e["usageMetadata"].get("candidatesTokenCount", 0) for e in events]
    assert counts == sorted(counts) and counts[-1] == len(events)
    array = gemini.post(url, json=GEN, headers=KEY)
    assert array.headers["content-type"].startswith("application/json")
    assert array.json() == [{**e, "responseId": array.json()[0]["responseId"]} for e in events]


@pytest.mark.parametrize(
    ("status", "name"), [(429, "RESOURCE_EXHAUSTED"), (503, "UNAVAILABLE"), (500, "INTERNAL")]
)
def test_gemini_fake_errors(gemini: TestClient, status: int, name: str) -> None:
    r = gemini.post("/v1beta/models/m:generateContent", json=GEN,
                    headers={**KEY, "x-fake-status": str(status)})  # fmt: skip
    assert r.status_code == status and "retry-after" not in r.headers
    err = r.json()["error"]
    assert (err["code"], err["status"]) == (status, name)
    assert ("details" in err) == (status == 429)


def test_gemini_fake_needs_a_key_and_contents(gemini: TestClient) -> None:
    url = "/v1beta/models/m:generateContent"
    assert gemini.post(url, json=GEN).json()["error"]["status"] == "PERMISSION_DENIED"
    assert gemini.post(url + "?key=k", json=GEN).status_code == 200
    r = gemini.post(url, json={"contents": []}, headers=KEY)
    assert r.status_code == 400 and "contents" in r.json()["error"]["message"]


def test_gateway_errors_in_each_wires_shape() -> None:
    from gensight.receive.gateway.errors import stream_error_event, wire_error

    a = json.loads(wire_error("anthropic", 504, "slow", "upstream_error"))
    assert a == {"type": "error", "error": {"type": "timeout_error", "message": "slow"}}
    g = json.loads(wire_error("gemini", 429, "over budget", "budget_exceeded"))
    assert g == {"error": {"code": 429, "message": "over budget", "status": "RESOURCE_EXHAUSTED"}}
    o = json.loads(wire_error("openai", 413, "big", "invalid_request_error", "request_too_large"))
    assert (
        o["error"]["code"] == "request_too_large" and o["error"]["type"] == "invalid_request_error"
    )
    event = stream_error_event("anthropic", 502, "cut", "upstream_connection")
    assert event.startswith(b"event: error\ndata: {") and event.endswith(b"\n\n")
    assert json.loads(event.split(b"data: ", 1)[1])["error"]["type"] == "api_error"
    assert stream_error_event("gemini", 502, "cut", "x").endswith(b"\r\n\r\n")
    assert stream_error_event(None, 502, "cut", "x").startswith(b'data: {"error"')
