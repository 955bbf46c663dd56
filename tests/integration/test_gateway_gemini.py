"""Gemini's generateContent API through the gateway: the real ``google-genai`` client
(sync, async, streamed, tool use, thinking, errors, embeddings) → Gensight → the fake
Gemini upstream.

The client must see exactly what the upstream sent; the record must hold the usage the
client itself received (output = candidates + thoughts, reasoning = thoughts, cache
read = cached content), priced as ``genai_prices.calc_price`` prices it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from genai_prices import Usage, calc_price
from google import genai
from google.genai import errors, types

from gensight.demo.gemini_upstream import create_app as gemini_app
from gensight.model.settings import Settings
from tests.integration.test_gateway import Gateway
from tests.support.server import served

KEY = "AIzaSy" + "S3cr3tK3y" * 4
MODEL = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def fake() -> Iterator[Any]:
    app = gemini_app()
    yield from served(app)


@pytest.fixture(scope="module")
def gw(fake: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    g = Gateway(
        Settings(
            data_dir=tmp_path_factory.mktemp("gw-gemini"),
            upstreams={"gemini": "gemini:" + fake.state.url, "g2": "gemini:" + fake.state.url},
            retries=1,
            retry_backoff=0.01,
            retry_max_wait=5.0,
            flush_interval=0.02,
        )
    )
    yield g
    g.stop()


def _session() -> str:
    return "g-" + uuid.uuid4().hex[:12]


#: google-genai closes its HTTP client when a Client is collected: keep them alive.
_CLIENTS: list[genai.Client] = []


def _client(gw: Gateway, session: str, route: str = "/gemini") -> genai.Client:
    client = genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(
            base_url=gw.url + route,
            headers={"X-Gensight-Session": session},
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )
    _CLIENTS.append(client)
    return client


def _assert_usage(c: dict[str, Any], u: types.GenerateContentResponseUsageMetadata) -> None:
    thoughts = u.thoughts_token_count or 0
    assert c["input_tokens"] == u.prompt_token_count
    assert c["output_tokens"] == (u.candidates_token_count or 0) + thoughts
    assert c["reasoning_tokens"] == u.thoughts_token_count
    assert c["cache_read_tokens"] == u.cached_content_token_count
    assert c["tokens_estimated"] is False
    price = calc_price(
        Usage(
            input_tokens=u.prompt_token_count,
            cache_read_tokens=u.cached_content_token_count or 0,
            output_tokens=(u.candidates_token_count or 0) + thoughts,
        ),
        model_ref=MODEL,
        provider_id="google",
    )
    assert c["cost_source"] == "computed"
    assert c["cost_usd"] == pytest.approx(float(price.total_price), rel=1e-9)


def test_generate_content_with_cache_and_thinking(gw: Gateway, fake: Any) -> None:
    s = _session()
    r = _client(gw, s).models.generate_content(
        model=MODEL,
        contents="Say hello.",
        config=types.GenerateContentConfig(
            system_instruction="Be terse.",
            temperature=0.2,
            max_output_tokens=200,
            http_options=types.HttpOptions(headers={"x-fake-cached-tokens": "3"}),
        ),
    )
    ex = fake.state.log.entries[-1]
    assert ex.headers["x-goog-api-key"] == KEY
    assert not [h for h in ex.headers if h.startswith("x-gensight")]
    u = r.usage_metadata
    assert u.cached_content_token_count == 3 and u.thoughts_token_count > 0
    c = gw.call(s)
    assert (c["source"], c["provider"], c["operation"]) == (
        "gateway",
        "gcp.gemini",
        "generate_content",
    )
    assert c["request_model"] == MODEL and c["response_model"] == r.model_version
    assert c["response_id"] == r.response_id and c["finish_reasons"] == ["STOP"]
    assert (c["temperature"], c["max_tokens"], c["stream"]) == (0.2, 200, False)
    _assert_usage(c, u)
    assert c["system_instructions"] == [{"role": "system", "content": "Be terse."}]
    assert c["input_messages"] == [{"role": "user", "content": "Say hello."}]
    assert c["output_messages"] == [
        {"role": "assistant", "content": r.text, "finish_reason": "STOP"}
    ]
    assert KEY not in json.dumps(c)


def test_stream_sse_bytes_unchanged_usage_from_the_last_chunk(gw: Gateway, fake: Any) -> None:
    s = _session()
    chunks = list(_client(gw, s).models.generate_content_stream(model=MODEL, contents="Hi there"))
    sent = "".join(fake.state.log.entries[-1].chunks)
    assert "\r\n\r\n" in sent  # Google's framing
    c = gw.call(s)
    assert c["stream"] is True and 0 < c["ttft_ms"] <= c["duration_ms"]
    _assert_usage(c, chunks[-1].usage_metadata)
    assert c["output_messages"][0]["content"] == "".join(ch.text or "" for ch in chunks)

    s2 = _session()
    url = f"{gw.url}/gemini/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi there"}]}]}
    headers = {"x-goog-api-key": KEY, "X-Gensight-Session": s2}
    with httpx.stream("POST", url, json=body, headers=headers) as resp:
        received = b"".join(resp.iter_raw())
    assert received == "".join(fake.state.log.entries[-1].chunks).encode()
    assert gw.call(s2)["output_tokens"] == c["output_tokens"]


def test_json_array_stream_and_key_in_query_never_stored(gw: Gateway, fake: Any) -> None:
    s = _session()
    url = f"{gw.url}/p/g2/v1beta/models/{MODEL}:streamGenerateContent?key={KEY}"
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi there"}]}]}
    r = httpx.post(url, json=body, headers={"X-Gensight-Session": s})
    assert r.status_code == 200 and r.content == "".join(fake.state.log.entries[-1].chunks).encode()
    items = r.json()
    assert isinstance(items, list) and len(items) > 1
    c = gw.call(s)
    assert c["stream"] is True and c["finish_reasons"] == ["STOP"]
    last = items[-1]["usageMetadata"]
    assert c["input_tokens"] == last["promptTokenCount"]
    assert c["output_tokens"] == last["candidatesTokenCount"] + last["thoughtsTokenCount"]
    trace = gw.trace(c["trace_id"])
    assert KEY not in json.dumps(trace) and KEY not in json.dumps(c)


def test_tool_use_round_trip_and_thoughts(gw: Gateway) -> None:
    s = _session()
    client = _client(gw, s)
    weather = types.FunctionDeclaration(
        name="get_weather",
        description="Weather in a city",
        parameters=types.Schema(
            type="OBJECT", properties={"city": types.Schema(type="STRING")}, required=["city"]
        ),
    )
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[weather])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        thinking_config=types.ThinkingConfig(include_thoughts=True),
    )
    ask = types.Content(role="user", parts=[types.Part(text="Weather in Paris?")])
    first = client.models.generate_content(model=MODEL, contents=[ask], config=config)
    (fc,) = first.function_calls
    answer = types.Part.from_function_response(name=fc.name, response={"temp": "18C"})
    follow = [ask, first.candidates[0].content, types.Content(role="user", parts=[answer])]
    second = client.models.generate_content(model=MODEL, contents=follow, config=config)
    c1, c2 = gw.calls(s, 2)
    out = c1["output_messages"][0]
    assert out["tool_calls"] == [
        {
            "id": "get_weather",
            "name": "get_weather",
            "arguments": json.dumps(fc.args, separators=(",", ":")),
        }
    ]
    thought = [p.text for p in first.candidates[0].content.parts if p.thought]
    assert out["reasoning"] == "".join(thought) and thought
    assert c1["attributes"]["gen_ai.request.tools"] == '["get_weather"]'
    _assert_usage(c1, first.usage_metadata)
    _assert_usage(c2, second.usage_metadata)
    assert [m["role"] for m in c2["input_messages"]] == ["user", "assistant", "tool"]
    assert c2["input_messages"][2]["content"] == '{"temp":"18C"}'
    assert c2["output_messages"][0]["content"] == second.text


def test_async_stream(gw: Gateway) -> None:
    s = _session()

    async def go() -> list[Any]:
        client = _client(gw, s)
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="Hello")
        return [chunk async for chunk in stream]

    chunks = asyncio.run(go())
    c = gw.call(s)
    assert c["stream"] is True
    _assert_usage(c, chunks[-1].usage_metadata)


@pytest.mark.parametrize(
    ("status", "exc", "error_class"),
    [
        (429, errors.ClientError, "rate_limit"),
        (503, errors.ServerError, "upstream_error"),
        (400, errors.ClientError, "invalid_request"),
    ],
)
def test_errors_reach_the_client_and_are_classed(
    gw: Gateway, status: int, exc: type, error_class: str
) -> None:
    s = _session()
    config = types.GenerateContentConfig(
        http_options=types.HttpOptions(
            headers={"x-fake-status": str(status), "x-fake-retry-delay": "0"}
        )
    )
    with pytest.raises(exc) as info:
        _client(gw, s).models.generate_content(model=MODEL, contents="Hi", config=config)
    assert info.value.code == status
    c = gw.call(s)
    assert (c["status"], c["http_status"], c["error_class"]) == ("error", status, error_class)
    assert info.value.status in c["error_message"]
    assert c["attempts"] == (2 if status >= 429 else 1)  # retries=1 for 429 and 5xx
    assert c["cost_usd"] is None and c["cost_source"] == "unknown"


def test_retry_info_delay_beyond_max_wait_is_not_slept_through(gw: Gateway) -> None:
    s = _session()
    config = types.GenerateContentConfig(
        http_options=types.HttpOptions(headers={"x-fake-status": "429", "x-fake-retry-delay": "60"})
    )
    with pytest.raises(errors.ClientError):
        _client(gw, s).models.generate_content(model=MODEL, contents="Hi", config=config)
    c = gw.call(s)
    assert c["attempts"] == 1 and c["duration_ms"] < 5000


def test_embeddings_are_calls_with_estimated_input(gw: Gateway) -> None:
    s = _session()
    r = _client(gw, s).models.embed_content(model="gemini-embedding-001", contents="hello world")
    assert len(r.embeddings[0].values) == 768
    c = gw.call(s)
    assert c["operation"] == "embeddings" and c["tokens_estimated"] is True
    assert c["input_tokens"] > 0 and c["output_tokens"] == 0
    assert c["input_messages"] == [{"role": "user", "content": "hello world"}]


def test_count_tokens_is_forwarded_not_a_call(gw: Gateway) -> None:
    s = _session()
    n = _client(gw, s).models.count_tokens(model=MODEL, contents="Hello")
    assert n.total_tokens > 0
    gw.app.state.pipeline.flush()
    assert gw.api.get("/api/calls", params={"session": s}).json()["items"] == []


def test_gateway_errors_come_in_googles_shape(tmp_path: Any) -> None:
    from gensight.demo.serve import free_port

    dead = f"gemini:http://127.0.0.1:{free_port()}"  # nothing listens there
    g = Gateway(Settings(data_dir=tmp_path, upstreams={"gemini": dead}, retries=0))
    try:
        s = _session()
        with pytest.raises(errors.ServerError) as info:
            _client(g, s).models.generate_content(model=MODEL, contents="Hi")
        assert (info.value.code, info.value.status) == (502, "UNAVAILABLE")
        c = g.call(s)
        assert (c["error_class"], c["http_status"]) == ("connection", 502)
    finally:
        g.stop()
