"""Anthropic's Messages API through the gateway: the real ``anthropic`` client (sync,
async, streamed, tool use, thinking, errors) → Gensight → the fake Anthropic upstream.

The client must see exactly what the upstream sent; the record must hold the usage the
client itself received (input by the semconv rule: Anthropic's ``input_tokens`` plus
cache reads and writes), priced as ``genai_prices.calc_price`` prices it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from genai_prices import Usage, calc_price

from gensight.demo.anthropic_upstream import create_app as anthropic_app
from gensight.model.settings import Settings
from tests.integration.test_gateway import Gateway
from tests.support.server import served

KEY = "sk-ant-api03-" + "S3cr3tK3y" * 4
MODEL = "claude-sonnet-4-5"
ASK = [{"role": "user", "content": "Say hello."}]
TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture(scope="module")
def fake() -> Iterator[Any]:
    app = anthropic_app()
    yield from served(app)


@pytest.fixture(scope="module")
def gw(fake: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        Settings(
            data_dir=tmp_path_factory.mktemp("gw-anthropic"),
            upstreams={
                "claude": "anthropic:" + fake.state.url,
                "anthropic": "anthropic:" + fake.state.url,
            },
            retries=0,
            flush_interval=0.02,
        )
    )
    yield g
    g.stop()


def _session() -> str:
    return "a-" + uuid.uuid4().hex[:12]


def _client(gw: Gateway, session: str, route: str = "/p/claude") -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gw.url + route,
        api_key=KEY,
        max_retries=0,
        default_headers={"X-Gensight-Session": session},
    )


def _cost(usage: Any, model: str = MODEL) -> float:
    """What genai-prices charges for the usage the client received."""
    write = usage.cache_creation_input_tokens or 0
    read = usage.cache_read_input_tokens or 0
    split = usage.cache_creation
    write_1h = split.ephemeral_1h_input_tokens if split is not None else 0
    price = calc_price(
        Usage(
            input_tokens=usage.input_tokens + write + read,
            cache_read_tokens=read,
            cache_write_tokens=write,
            **({"cache_write_1h_tokens": write_1h} if write_1h else {}),
            output_tokens=usage.output_tokens,
        ),
        model_ref=model,
        provider_id="anthropic",
    )
    return float(price.total_price)


def _assert_usage(c: dict[str, Any], usage: Any) -> None:
    write = usage.cache_creation_input_tokens or 0
    read = usage.cache_read_input_tokens or 0
    assert c["input_tokens"] == usage.input_tokens + write + read
    assert c["output_tokens"] == usage.output_tokens
    assert (c["cache_read_tokens"], c["cache_write_tokens"]) == (read, write)
    assert c["reasoning_tokens"] is None  # Anthropic reports no separate thinking count
    assert c["tokens_estimated"] is False
    assert c["cost_source"] == "computed"
    assert c["cost_usd"] == pytest.approx(_cost(usage), rel=1e-9)


def test_sync_message_with_cache_tokens(gw: Gateway, fake: Any) -> None:
    s = _session()
    client = _client(gw, s)
    m = client.messages.create(
        model=MODEL,
        max_tokens=100,
        system="Be terse.",
        messages=ASK,
        extra_body={"temperature": 0.3, "top_k": 5},  # anthropic ≥ 2.16 dropped the arguments
        extra_headers={"x-fake-cache-read-tokens": "4", "x-fake-cache-write-tokens": "3"},
    )
    ex = fake.state.log.entries[-1]
    # the key and version reached the upstream; Gensight's own headers did not
    # (anthropic ≥ 2 sends the key as a bearer token, older clients as x-api-key)
    sent_key = ex.headers.get("x-api-key") or ex.headers["authorization"].removeprefix("Bearer ")
    assert sent_key == KEY and ex.headers["anthropic-version"]
    assert not [h for h in ex.headers if h.startswith("x-gensight")]
    assert m.usage.cache_read_input_tokens == 4 and m.usage.cache_creation_input_tokens == 3
    c = gw.call(s)
    assert (c["source"], c["provider"], c["operation"]) == ("gateway", "anthropic", "chat")
    assert c["request_model"] == MODEL and c["response_model"] == m.model
    assert c["response_id"] == m.id and c["finish_reasons"] == ["end_turn"]
    assert (c["max_tokens"], c["temperature"], c["stream"], c["ttft_ms"]) == (100, 0.3, False, None)
    _assert_usage(c, m.usage)
    assert c["cost_usd"] > 0
    assert c["system_instructions"] == [{"role": "system", "content": "Be terse."}]
    assert c["input_messages"] == [{"role": "user", "content": "Say hello."}]
    assert c["output_messages"] == [
        {"role": "assistant", "content": m.content[0].text, "finish_reason": "end_turn"}
    ]
    assert KEY not in json.dumps(c)


def test_stream_helper_records_cumulative_usage_and_ttft(gw: Gateway) -> None:
    s = _session()
    client = _client(gw, s, route="/anthropic")
    with client.messages.stream(
        model=MODEL,
        max_tokens=100,
        messages=ASK,
        extra_headers={"x-fake-cache-write-1h-tokens": "2"},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    c = gw.call(s)
    assert c["stream"] is True and c["ttft_ms"] is not None and 0 < c["ttft_ms"] <= c["duration_ms"]
    _assert_usage(c, final.usage)
    assert final.usage.cache_creation.ephemeral_1h_input_tokens == 2
    assert c["attributes"]["anthropic.usage.cache_creation.ephemeral_1h_input_tokens"] == 2
    # an hour's write costs more than five minutes' (genai-prices: $6 vs $3.75 per MTok)
    five_minutes = final.usage.model_copy(
        update={"cache_creation": final.usage.cache_creation.model_copy(
            update={"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 2})}
    )  # fmt: skip
    assert c["cost_usd"] == pytest.approx(_cost(five_minutes) + 2 * (6 - 3.75) / 1e6, rel=1e-9)
    assert c["output_messages"][0]["content"] == text
    assert c["finish_reasons"] == ["end_turn"]


def test_stream_bytes_reach_the_client_unchanged(gw: Gateway, fake: Any) -> None:
    s = _session()
    body = {"model": MODEL, "max_tokens": 50, "messages": ASK, "stream": True}
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "X-Gensight-Session": s}
    with httpx.stream("POST", f"{gw.url}/p/claude/v1/messages", json=body, headers=headers) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["request-id"].startswith("req_")
        received = b"".join(r.iter_raw())
    sent = "".join(fake.state.log.entries[-1].chunks).encode()
    assert received == sent
    assert gw.call(s)["output_tokens"] > 0


def test_tool_use_round_trip_streamed(gw: Gateway) -> None:
    s = _session()
    client = _client(gw, s)
    with client.messages.stream(model=MODEL, max_tokens=100, messages=ASK, tools=TOOLS) as st:
        first = st.get_final_message()
    (block,) = first.content
    assert block.type == "tool_use"
    follow = [
        *ASK,
        {"role": "assistant", "content": [block.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "18C"}],
        },
    ]
    second = client.messages.create(model=MODEL, max_tokens=100, messages=follow, tools=TOOLS)
    c1, c2 = gw.calls(s, 2)
    assert c1["finish_reasons"] == ["tool_use"]
    assert c1["output_messages"][0]["tool_calls"] == [
        {"id": block.id, "name": "get_weather", "arguments": json.dumps(block.input)}
    ]
    assert json.loads(c1["output_messages"][0]["tool_calls"][0]["arguments"]) == {"city": "Paris"}
    assert c1["attributes"]["gen_ai.request.tools"] == '["get_weather"]'
    _assert_usage(c1, first.usage)
    _assert_usage(c2, second.usage)
    tool_msgs = [m for m in c2["input_messages"] if m["role"] == "tool"]
    assert tool_msgs == [{"role": "tool", "tool_call_id": block.id, "content": "18C"}]
    assistant = [m for m in c2["input_messages"] if m["role"] == "assistant"][0]
    assert assistant["tool_calls"][0]["name"] == "get_weather"


def test_thinking_is_output_and_kept_as_reasoning(gw: Gateway) -> None:
    s = _session()
    client = _client(gw, s)
    thinking = {"type": "enabled", "budget_tokens": 1024}
    with client.messages.stream(
        model=MODEL, max_tokens=2048, messages=ASK, thinking=thinking
    ) as stream:
        final = stream.get_final_message()
    c = gw.call(s)
    assert [b.type for b in final.content] == ["thinking", "text"]
    _assert_usage(c, final.usage)
    out = c["output_messages"][0]
    assert out["content"] == final.content[1].text
    assert out["reasoning"] == final.content[0].thinking
    assert c["attributes"]["anthropic.request.thinking.budget_tokens"] == 1024


def test_async_client(gw: Gateway) -> None:
    s = _session()

    async def go() -> Any:
        async with anthropic.AsyncAnthropic(
            base_url=gw.url + "/p/claude",
            api_key=KEY,
            max_retries=0,
            default_headers={"X-Gensight-Session": s},
        ) as client:
            plain = await client.messages.create(model=MODEL, max_tokens=64, messages=ASK)
            stream = await client.messages.create(
                model=MODEL, max_tokens=64, messages=ASK, stream=True
            )
            usage = None
            async for event in stream:
                if event.type == "message_delta":
                    usage = event.usage
            return plain, usage

    plain, streamed_usage = asyncio.run(go())
    c1, c2 = gw.calls(s, 2)
    _assert_usage(c1, plain.usage)
    assert c2["stream"] is True and c2["output_tokens"] == streamed_usage.output_tokens


@pytest.mark.parametrize(
    ("status", "exc", "error_class"),
    [
        (429, anthropic.RateLimitError, "rate_limit"),
        (529, anthropic.InternalServerError, "upstream_error"),
        (400, anthropic.BadRequestError, "invalid_request"),
    ],
)
def test_errors_reach_the_client_and_are_classed(
    gw: Gateway, status: int, exc: type, error_class: str
) -> None:
    s = _session()
    with pytest.raises(exc) as info:
        _client(gw, s).messages.create(
            model=MODEL, max_tokens=10, messages=ASK, extra_headers={"x-fake-status": str(status)}
        )
    assert info.value.status_code == status
    body = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == info.value.body["error"]["type"]
    if status in (429, 529):
        assert info.value.response.headers["retry-after"] == "1"
    c = gw.call(s)
    assert (c["status"], c["http_status"], c["error_class"]) == ("error", status, error_class)
    assert body["error"]["type"] in c["error_message"]
    assert c["cost_usd"] is None and c["cost_source"] == "unknown"


def test_overloaded_mid_stream_is_an_error(gw: Gateway) -> None:
    s = _session()
    client = _client(gw, s)
    with (
        pytest.raises(anthropic.APIStatusError) as info,  # the SDK raises on an error event
        client.messages.stream(
            model=MODEL,
            max_tokens=64,
            messages=ASK,
            extra_headers={"x-fake-stream-error": "overloaded_error"},
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
    assert "overloaded_error" in str(info.value.body)
    c = gw.call(s)
    assert (c["status"], c["http_status"], c["error_class"]) == ("error", 200, "upstream_error")
    assert "overloaded_error" in c["error_message"]
    assert c["output_messages"][0]["content"]  # the part that did arrive


def test_count_tokens_is_forwarded_not_a_call(gw: Gateway, fake: Any) -> None:
    s = _session()
    n = _client(gw, s).messages.count_tokens(model=MODEL, messages=ASK)
    assert n.input_tokens > 0
    assert fake.state.log.entries[-1].path == "/v1/messages/count_tokens"
    gw.app.state.pipeline.flush()
    assert gw.api.get("/api/calls", params={"session": s}).json()["items"] == []


def test_fallback_never_crosses_wire_formats() -> None:
    from gensight.receive.gateway import policy
    from gensight.receive.gateway.upstreams import Upstream

    claude = Upstream.from_config("claude", "anthropic:https://api.anthropic.com")
    other = Upstream.from_config("claude2", "anthropic:https://proxy.example")
    oai = Upstream.from_config("openai", "https://api.openai.com/v1")
    assert policy.targets(claude, {"claude": oai}) == [claude]
    assert policy.targets(claude, {"claude": other}) == [claude, other]
    assert claude.wire == "anthropic" and claude.provider == "anthropic"


def test_gateway_errors_come_in_anthropics_shape(tmp_path: Any) -> None:
    from gensight.demo.serve import free_port

    dead = f"anthropic:http://127.0.0.1:{free_port()}"  # nothing listens there
    g = Gateway(Settings(data_dir=tmp_path, upstreams={"claude": dead}, retries=0))
    try:
        s = _session()
        with pytest.raises(anthropic.InternalServerError) as info:
            _client(g, s).messages.create(model=MODEL, max_tokens=10, messages=ASK)
        assert info.value.status_code == 502
        assert info.value.body["type"] == "error"
        assert info.value.body["error"]["type"] == "api_error"
        assert "failed" in info.value.body["error"]["message"]
        c = g.call(s)
        assert (c["error_class"], c["http_status"]) == ("connection", 502)
    finally:
        g.stop()
