"""The fake Anthropic Messages upstream answers as the real API does (in-process, no socket).

The real ``anthropic`` client is driven against it by tests/producers (run_more.py).
"""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from gensight.demo.anthropic_upstream import anthropic_input_tokens, create_app
from gensight.demo.upstream import reply_pieces

HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
BODY = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "system": "Be terse.",
    "messages": [{"role": "user", "content": "Say hello."}],
}
TOOLS = [
    {
        "name": "get_weather",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app())


def _events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_message_shape_and_usage(client: TestClient) -> None:
    r = client.post("/v1/messages", json=BODY, headers=HEADERS)
    assert r.status_code == 200 and r.headers["request-id"].startswith("req_")
    m = r.json()
    assert m["type"] == "message" and m["role"] == "assistant" and m["id"].startswith("msg_")
    assert m["stop_reason"] == "end_turn" and m["stop_sequence"] is None
    pieces = reply_pieces("Say hello.", "claude-sonnet-4-5")
    assert m["content"] == [{"type": "text", "text": "".join(pieces)}]
    assert m["usage"] == {
        "input_tokens": anthropic_input_tokens(BODY),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": len(pieces),
        "service_tier": "standard",
    }


def test_bearer_key_is_accepted_as_the_v2_client_sends_it(client: TestClient) -> None:
    headers = {"authorization": "Bearer sk-ant-x", "anthropic-version": "2023-06-01"}
    assert client.post("/v1/messages", json=BODY, headers=headers).status_code == 200


def test_cache_tokens_are_outside_input_tokens(client: TestClient) -> None:
    headers = {**HEADERS, "x-fake-cache-read-tokens": "4", "x-fake-cache-write-tokens": "2"}
    usage = client.post("/v1/messages", json=BODY, headers=headers).json()["usage"]
    assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (4, 2)
    assert usage["input_tokens"] == anthropic_input_tokens(BODY) - 6


def test_max_tokens_cuts_the_reply(client: TestClient) -> None:
    m = client.post("/v1/messages", json={**BODY, "max_tokens": 2}, headers=HEADERS).json()
    assert m["stop_reason"] == "max_tokens" and m["usage"]["output_tokens"] == 2


def test_tool_use_then_tool_result(client: TestClient) -> None:
    ask = {**BODY, "tools": TOOLS}
    m = client.post("/v1/messages", json=ask, headers=HEADERS).json()
    assert m["stop_reason"] == "tool_use"
    (block,) = m["content"]
    assert block["type"] == "tool_use" and block["name"] == "get_weather"
    assert block["id"].startswith("toolu_") and block["input"] == {"city": "Paris"}
    result = {"type": "tool_result", "tool_use_id": block["id"], "content": "18C"}
    follow = {**ask, "messages": [*BODY["messages"], {"role": "assistant", "content": [block]},
                                  {"role": "user", "content": [result]}]}  # fmt: skip
    m2 = client.post("/v1/messages", json=follow, headers=HEADERS).json()
    assert m2["stop_reason"] == "end_turn" and m2["content"][0]["type"] == "text"
    none = {**ask, "tool_choice": {"type": "none"}}
    assert client.post("/v1/messages", json=none, headers=HEADERS).json()["stop_reason"] == (
        "end_turn"
    )


def test_stream_event_order(client: TestClient) -> None:
    r = client.post("/v1/messages", json={**BODY, "stream": True}, headers=HEADERS)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")
    assert names == [
        "message_start", "content_block_start", "ping", *["content_block_delta"] * deltas,
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "end_turn"
    assert final["usage"]["output_tokens"] == deltas
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "".join(reply_pieces("Say hello.", "claude-sonnet-4-5"))


def test_streamed_tool_use_sends_input_json_deltas(client: TestClient) -> None:
    r = client.post("/v1/messages", json={**BODY, "tools": TOOLS, "stream": True}, headers=HEADERS)
    events = _events(r.text)
    assert events[1][1]["content_block"]["type"] == "tool_use"
    assert events[1][1]["content_block"]["input"] == {}
    parts = [d["delta"] for n, d in events if n == "content_block_delta"]
    assert {p["type"] for p in parts} == {"input_json_delta"}
    assert json.loads("".join(p["partial_json"] for p in parts)) == {"city": "Paris"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize(
    ("status", "etype", "retry_after"),
    [
        ("429", "rate_limit_error", "1"),
        ("529", "overloaded_error", "1"),
        ("500", "api_error", None),
        ("400", "invalid_request_error", None),
    ],
)
def test_injected_errors(client: TestClient, status, etype, retry_after) -> None:
    r = client.post("/v1/messages", json=BODY, headers={**HEADERS, "x-fake-status": status})
    assert r.status_code == int(status)
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == etype
    assert body["request_id"] == r.headers["request-id"]
    assert r.headers.get("retry-after") == retry_after


@pytest.mark.parametrize(
    ("headers", "body", "status", "needle"),
    [
        ({"anthropic-version": "2023-06-01"}, BODY, 401, "x-api-key"),
        ({"x-api-key": "k"}, BODY, 400, "anthropic-version"),
        (HEADERS, {k: v for k, v in BODY.items() if k != "max_tokens"}, 400, "max_tokens"),
        (HEADERS, {**BODY, "max_tokens": 0}, 400, "max_tokens"),
        (HEADERS, {**BODY, "messages": []}, 400, "messages"),
    ],
)
def test_bad_requests_name_the_problem(client, headers, body, status, needle) -> None:
    r = client.post("/v1/messages", json=body, headers=headers)
    assert r.status_code == status and needle in r.json()["error"]["message"]
    assert r.json()["error"]["type"] == ("authentication_error" if status == 401 else
                                         "invalid_request_error")  # fmt: skip


def test_log_records_each_exchange(client: TestClient) -> None:
    client.post("/v1/messages", json=BODY, headers=HEADERS)
    client.post("/v1/messages", json=BODY, headers={**HEADERS, "x-fake-status": "429"})
    ok, failed = client.app.state.log.entries
    assert ok.status == 200 and ok.usage["output_tokens"] > 0 and ok.usage_sent
    assert failed.status == 429 and failed.usage is None


def test_cache_writes_split_into_5m_and_1h(client: TestClient) -> None:
    headers = {**HEADERS, "x-fake-cache-write-tokens": "2", "x-fake-cache-write-1h-tokens": "3"}
    usage = client.post("/v1/messages", json=BODY, headers=headers).json()["usage"]
    assert usage["cache_creation_input_tokens"] == 5
    assert usage["cache_creation"] == {
        "ephemeral_5m_input_tokens": 2,
        "ephemeral_1h_input_tokens": 3,
    }


THINKING = {**BODY, "thinking": {"type": "enabled", "budget_tokens": 1024}}


def test_thinking_block_comes_first_and_counts_as_output(client: TestClient) -> None:
    m = client.post("/v1/messages", json=THINKING, headers=HEADERS).json()
    thinking, text = m["content"]
    assert thinking["type"] == "thinking" and thinking["signature"] and thinking["thinking"]
    plain = client.post("/v1/messages", json=BODY, headers=HEADERS).json()
    assert text == plain["content"][0]
    assert m["usage"]["output_tokens"] > plain["usage"]["output_tokens"]


def test_streamed_thinking_then_text(client: TestClient) -> None:
    r = client.post("/v1/messages", json={**THINKING, "stream": True}, headers=HEADERS)
    events = _events(r.text)
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["thinking", "text"]
    kinds = [(d["index"], d["delta"]["type"]) for n, d in events if n == "content_block_delta"]
    assert kinds[0] == (0, "thinking_delta") and (0, "signature_delta") in kinds
    assert kinds[-1] == (1, "text_delta")
    assert [n for n, _ in events][:3] == ["message_start", "content_block_start", "ping"]


def test_overloaded_mid_stream_ends_with_an_error_event(client: TestClient) -> None:
    headers = {**HEADERS, "x-fake-stream-error": "overloaded_error"}
    r = client.post("/v1/messages", json={**BODY, "stream": True}, headers=headers)
    assert r.status_code == 200
    events = _events(r.text)
    assert events[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    assert "message_stop" not in [n for n, _ in events]


def test_count_tokens(client: TestClient) -> None:
    r = client.post("/v1/messages/count_tokens", json=BODY, headers=HEADERS)
    assert r.json() == {"input_tokens": anthropic_input_tokens(BODY)}
