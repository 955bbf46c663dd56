"""The fake OpenAI upstream, driven by the real ``openai`` client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from gensight.demo.upstream import (
    UpstreamConfig,
    chat_prompt_tokens,
    count_tokens,
    create_app,
    reply_pieces,
    serve,
)

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello, how are you today?"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["location"],
            },
        },
    }
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[object, str]]:
    app = create_app()
    with serve(app) as base_url:
        yield app, base_url


@pytest.fixture
def app(upstream):
    app, _ = upstream
    app.state.log.clear()
    return app


@pytest.fixture
def client(upstream, app) -> openai.OpenAI:
    _, base_url = upstream
    return openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)


@pytest.fixture
def base_url(upstream) -> str:
    return upstream[1]


def expected_reply(messages: list[dict], model: str = "gpt-4o-mini") -> list[str]:
    prompt = "\n".join(m["content"] for m in messages)
    return reply_pieces(prompt, model)


def test_chat_non_streamed(client, app):
    resp = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0.3, max_tokens=100
    )
    pieces = expected_reply(MESSAGES)
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == "gpt-4o-mini-2024-07-18"
    assert resp.system_fingerprint.startswith("fp_")
    assert resp.service_tier == "default"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "".join(pieces)
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.prompt_tokens == chat_prompt_tokens(MESSAGES)
    assert resp.usage.prompt_tokens == 3 + (4 + 4) + (4 + 7)
    assert resp.usage.completion_tokens == len(pieces)
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + len(pieces)
    assert resp.usage.prompt_tokens_details.cached_tokens == 0
    assert resp.usage.completion_tokens_details.reasoning_tokens == 0
    ex = app.state.log.last("/v1/chat/completions")
    assert ex.status == 200 and not ex.stream and ex.usage_sent
    assert ex.body["temperature"] == 0.3
    assert ex.headers["authorization"] == "Bearer sk-test"
    assert ex.usage == resp.usage.model_dump(exclude_none=True)
    assert ex.response["id"] == resp.id


def test_chat_is_deterministic_and_honours_max_tokens(client):
    a = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    b = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert a.choices[0].message.content == b.choices[0].message.content
    assert a.usage == b.usage
    short = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=3)
    assert short.choices[0].finish_reason == "length"
    assert short.usage.completion_tokens == 3


def test_reasoning_and_cached_tokens(client):
    resp = client.chat.completions.create(model="o3-mini", messages=MESSAGES)
    visible = len(expected_reply(MESSAGES, "o3-mini"))
    reasoning = resp.usage.completion_tokens_details.reasoning_tokens
    assert reasoning > 0
    assert resp.usage.completion_tokens == visible + reasoning
    long_prompt = [{"role": "user", "content": "word " * 2000}]
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=long_prompt)
    assert resp.usage.prompt_tokens == 2007
    assert resp.usage.prompt_tokens_details.cached_tokens == (2007 // 256) * 128
    forced = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={"x-fake-cached-tokens": "5", "x-fake-completion-tokens": "4"},
    )
    assert forced.usage.prompt_tokens_details.cached_tokens == 5
    assert forced.usage.completion_tokens == 4


def test_chat_streamed_with_usage(client, app):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = expected_reply(MESSAGES)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert content == pieces and len(content) > 1
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == len(pieces)
    assert chunks[-1].usage.prompt_tokens == chat_prompt_tokens(MESSAGES)
    ex = app.state.log.last()
    assert ex.stream and ex.completed and ex.usage_sent
    assert ex.chunks[-1] == "data: [DONE]\n\n"
    assert ex.events()[-1]["usage"] == ex.usage


def test_chat_streamed_without_usage(client, app, base_url):
    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    )
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)
    ex = app.state.log.last()
    assert not ex.usage_sent and ex.usage is not None
    assert all("usage" not in e for e in ex.events())
    # raw wire format
    with httpx.stream(
        "POST",
        f"{base_url}/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read().decode()
    frames = raw.split("\n\n")
    assert frames[-2] == "data: [DONE]" and frames[-1] == ""
    assert all(f.startswith("data: ") for f in frames[:-1])


def test_async_client(base_url, app):
    async def main() -> tuple[str, list[str]]:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
        resp = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        await client.close()
        return resp.choices[0].message.content, parts

    text, parts = asyncio.run(main())
    assert text == "".join(parts) == "".join(expected_reply(MESSAGES))


def test_tool_calls(client):
    messages = [{"role": "user", "content": "What is the weather in Berlin?"}]
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "Berlin", "unit": "celsius"}
    # without a weather question, tool_choice="auto" answers with text
    plain = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS)
    assert plain.choices[0].finish_reason == "stop"
    forced = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, tool_choice="required"
    )
    assert forced.choices[0].finish_reason == "tool_calls"
    # after the tool result, a text answer
    follow = messages + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'},
    ]
    final = client.chat.completions.create(model="gpt-4o-mini", messages=follow, tools=TOOLS)
    assert final.choices[0].finish_reason == "stop" and final.choices[0].message.content


def test_tool_calls_streamed(client):
    messages = [{"role": "user", "content": "What is the weather in Berlin?"}]
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    deltas = [
        c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    assert deltas[0][0].id.startswith("call_") and deltas[0][0].function.name == "get_weather"
    args = "".join(d[0].function.arguments or "" for d in deltas)
    assert json.loads(args)["location"] == "Berlin"
    assert len(deltas) > 2
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["tool_calls"]
    assert chunks[-1].usage.completion_tokens == len(deltas) - 1


def test_legacy_completions(client):
    resp = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", max_tokens=40)
    pieces = reply_pieces("Say hi", "gpt-3.5-turbo-instruct")
    assert resp.object == "text_completion"
    assert resp.choices[0].text == "".join(pieces)
    assert resp.usage.prompt_tokens == count_tokens("Say hi") == 2
    assert resp.usage.completion_tokens == len(pieces)
    chunks = list(
        client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Say hi",
            max_tokens=40,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "".join(pieces)
    assert chunks[-1].usage.completion_tokens == len(pieces)
    default_limit = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    assert default_limit.usage.completion_tokens <= 16


def test_embeddings_float_and_base64(client, app):
    # the openai client asks for base64 by default and decodes it
    resp = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "bye"])
    assert app.state.log.last().body["encoding_format"] == "base64"
    assert len(resp.data) == 2 and len(resp.data[0].embedding) == 1536
    assert resp.usage.prompt_tokens == 3 and resp.usage.total_tokens == 3
    floats = client.embeddings.create(
        model="text-embedding-3-small", input="hello world", encoding_format="float", dimensions=8
    )
    assert len(floats.data[0].embedding) == 8
    assert isinstance(app.state.log.last().response["data"][0]["embedding"], list)
    again = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert again.data[0].embedding == pytest.approx(resp.data[0].embedding, abs=1e-6)


def test_responses_non_streamed(client, app):
    resp = client.responses.create(
        model="gpt-4o-mini", input="Tell me a joke", instructions="Be kind"
    )
    assert resp.object == "response" and resp.status == "completed"
    assert resp.output_text == "".join(reply_pieces("Be kind\nTell me a joke", "gpt-4o-mini"))
    assert resp.usage.input_tokens == 3 + 4 + 2 + 4 + 4
    assert resp.usage.output_tokens == len(reply_pieces("Be kind\nTell me a joke", "gpt-4o-mini"))
    assert app.state.log.last().usage == resp.usage.model_dump(exclude_none=True)


def test_responses_streamed(client):
    stream = client.responses.create(model="gpt-4o-mini", input="Tell me a joke", stream=True)
    events = list(stream)
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "".join(reply_pieces("Tell me a joke", "gpt-4o-mini"))
    assert events[-1].response.usage.output_tokens == types.count("response.output_text.delta")
    with client.responses.stream(model="gpt-4o-mini", input="Tell me a joke") as helper:
        for _ in helper:
            pass
        assert helper.get_final_response().output_text == text


def test_responses_function_call(client):
    tools = [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": TOOLS[0]["function"]["parameters"],
        }
    ]
    resp = client.responses.create(model="gpt-4o-mini", input="Weather in Rome?", tools=tools)
    item = resp.output[0]
    assert item.type == "function_call" and item.name == "get_weather"
    assert json.loads(item.arguments)["location"] == "Rome"


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


@pytest.mark.parametrize(
    ("model", "exc", "status", "etype", "code"),
    [
        (
            "fake-400",
            openai.BadRequestError,
            400,
            "invalid_request_error",
            "decimal_above_max_value",
        ),
        ("fake-401", openai.AuthenticationError, 401, "invalid_request_error", "invalid_api_key"),
        ("fake-404", openai.NotFoundError, 404, "invalid_request_error", "model_not_found"),
        ("fake-429", openai.RateLimitError, 429, "requests", "rate_limit_exceeded"),
        ("fake-429-quota", openai.RateLimitError, 429, "insufficient_quota", "insufficient_quota"),
        ("fake-500", openai.InternalServerError, 500, "server_error", None),
        ("fake-503", openai.InternalServerError, 503, "server_error", None),
    ],
)
def test_errors_by_model(client, model, exc, status, etype, code):
    with pytest.raises(exc) as info:
        client.chat.completions.create(model=model, messages=MESSAGES)
    err = info.value
    assert err.status_code == status
    assert set(err.body) == {"message", "type", "param", "code"}
    assert err.body["type"] == etype and err.body["code"] == code
    assert err.response.headers["x-request-id"].startswith("req_")
    if status in (429, 503):
        assert err.response.headers["retry-after"] == "1"
    else:
        assert "retry-after" not in err.response.headers


def test_errors_by_header_on_every_endpoint(client):
    headers = {"x-fake-status": "429", "x-fake-retry-after": "7"}
    with pytest.raises(openai.RateLimitError) as info:
        client.embeddings.create(model="text-embedding-3-small", input="x", extra_headers=headers)
    assert info.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError):
        client.responses.create(
            model="gpt-4o-mini", input="x", extra_headers={"x-fake-status": "500"}
        )
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=headers
        )


def test_fail_times_then_succeed(base_url):
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=3)
    headers = {"x-fake-status": "500", "x-fake-fail-times": "2", "x-fake-fail-key": "retry-test"}
    resp = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers
    )
    assert resp.choices[0].finish_reason == "stop"


def test_request_validation(client, base_url):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream_options={"include_usage": True}
        )
    assert info.value.body["param"] == "stream_options"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[])
    resp = httpx.post(f"{base_url}/chat/completions", content=b"{not json")
    assert resp.status_code == 400 and "error" in resp.json()


def test_api_key_required():
    with serve(api_key="sk-right") as base_url:
        bad = openai.OpenAI(base_url=base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=base_url, api_key="sk-right", max_retries=0)
        assert good.models.list().data


def test_ttft_and_stall(client, app):
    t0 = time.monotonic()
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-fake-ttft-ms": "150", "x-fake-stall-ms": "200"},
    )
    first = next(iter(stream))
    ttft = time.monotonic() - t0
    list(stream)
    total = time.monotonic() - t0
    assert first.choices[0].delta.role == "assistant"
    assert 0.14 <= ttft < 1.5
    assert total >= 0.34
    assert app.state.log.last().ttft_ms >= 150


def test_latency_profile():
    from gensight.demo.upstream import ModelProfile

    config = UpstreamConfig(profiles={"slow-": ModelProfile(ttft_ms=100, ms_per_token=10)})
    with serve(create_app(config)) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0)
        t0 = time.monotonic()
        client.chat.completions.create(model="slow-model", messages=MESSAGES)
        assert time.monotonic() - t0 >= 0.1
        t0 = time.monotonic()
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert time.monotonic() - t0 < 0.1


def test_stream_error_and_disconnect(client):
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-fake-stream-error-after": "3"},
    )
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert info.value.body["type"] == "server_error"
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-fake-disconnect-after": "3"},
    )
    with pytest.raises((openai.APIConnectionError, httpx.HTTPError, Exception)):
        list(stream)
