"""The gateway end to end: real `openai` clients and raw httpx → Gensight → fake upstream.

Each test checks what a user would: the client gets exactly what the upstream sent
(bytes, status, headers), and the recorded call read back through the JSON API holds
the values the upstream sent (ids, models, usage, finish reasons, messages).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gensight.demo import ServerThread, UpstreamConfig
from gensight.demo import create_app as upstream_app
from gensight.demo.serve import free_port
from gensight.model.settings import Settings
from gensight.web.app import create_app
from tests.support.server import served

KEY = "sk-test-" + "S3cr3tK3y" * 4
GW_KEY = "gk-1-0123456789abcdef"


class Gateway:
    """A gateway app served in a thread, with helpers to read back what it recorded."""

    def __init__(self, settings: Settings, store: Any | None = None) -> None:
        self.app = create_app(settings, store=store)
        self.server = ServerThread(self.app, server_header=False).start()
        self.url = self.server.url
        self.api = httpx.Client(base_url=self.url, timeout=10)

    def openai(self, upstream: str = "openai", **kw: Any) -> openai.OpenAI:
        base = f"{self.url}/openai/v1" if upstream == "openai" else f"{self.url}/p/{upstream}/v1"
        kw.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=base, api_key=KEY, **kw)

    def calls(self, session: str, n: int = 1) -> list[dict[str, Any]]:
        """The calls recorded with ``X-Gensight-Session: session``, oldest first, in full."""
        deadline = time.monotonic() + 10
        items: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            self.app.state.pipeline.flush()
            items = self.api.get("/api/calls", params={"session": session}).json()["items"]
            if len(items) >= n:
                break
            time.sleep(0.05)
        assert len(items) == n, f"expected {n} calls for {session}, got {len(items)}"
        return [self.api.get(f"/api/calls/{c['id']}").json() for c in reversed(items)]

    def call(self, session: str) -> dict[str, Any]:
        return self.calls(session)[0]

    def trace(self, trace_id: str) -> dict[str, Any]:
        # the record is journaled before the answer ends, stored by the writer later: wait
        deadline = time.monotonic() + 10
        while True:
            self.app.state.pipeline.flush()
            r = self.api.get(f"/api/traces/{trace_id}")
            if r.status_code != 404 or time.monotonic() > deadline:
                return r.json()
            time.sleep(0.05)

    def stop(self) -> None:
        self.api.close()
        self.server.stop()


@pytest.fixture(scope="module")
def alt_upstream() -> Iterator[Any]:
    app = upstream_app(UpstreamConfig(retry_after_s=0))
    yield from served(app, "/v1")


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


@pytest.fixture(scope="module")
def gw(upstream: Any, alt_upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    g = Gateway(
        Settings(
            data_dir=tmp_path_factory.mktemp("gw"),
            upstreams={
                "openai": upstream.state.url,
                "azure": alt_upstream.state.url,
                "dead": _dead_url(),
            },
            retry_backoff=0.01,
            upstream_timeout=1.0,
            flush_interval=0.02,
        )
    )
    yield g
    g.stop()


def _session() -> str:
    return "s-" + uuid.uuid4().hex[:12]


def _meta(session: str, **extra: str) -> dict[str, str]:
    return {"X-Gensight-Session": session, **extra}


def _sse_payloads(raw: bytes) -> list[str]:
    return [
        line[6:] for line in raw.decode().split("\n") if line.startswith("data: ")
    ]  # fmt: skip


# --------------------------------------------------------------------------- chat


def test_chat_sync_records_what_the_upstream_sent(gw: Gateway, upstream: Any) -> None:
    s = _session()
    client = gw.openai(
        default_headers=_meta(
            s,
            **{
                "X-Gensight-App": "shop",
                "X-Gensight-User": "u-42",
                "X-Gensight-Tags": "beta, checkout",
            },
        )
    )
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is observability?"},
    ]
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        temperature=0.2,
        top_p=0.9,
        max_completion_tokens=64,
        seed=7,
        frequency_penalty=0.1,
        presence_penalty=0.3,
    )
    ex = upstream.state.log.last("/v1/chat/completions")
    assert ex.response["id"] == r.id
    # what reached the upstream: the body as sent, our headers stripped, the key forwarded
    assert ex.body["messages"] == messages and "stream_options" not in ex.body
    assert ex.headers["authorization"] == f"Bearer {KEY}"
    assert not [h for h in ex.headers if h.startswith("x-gensight")]

    c = gw.call(s)
    usage = ex.response["usage"]
    assert c["source"] == "gateway" and c["provider"] == "openai" and c["operation"] == "chat"
    assert c["request_model"] == "gpt-4o-mini"
    assert c["response_model"] == ex.response["model"] == r.model
    assert c["response_id"] == r.id
    assert c["input_tokens"] == usage["prompt_tokens"]
    assert c["output_tokens"] == usage["completion_tokens"]
    assert c["cache_read_tokens"] == usage["prompt_tokens_details"]["cached_tokens"]
    assert c["reasoning_tokens"] == usage["completion_tokens_details"]["reasoning_tokens"]
    assert c["tokens_estimated"] is False
    assert c["finish_reasons"] == ["stop"]
    assert (c["temperature"], c["top_p"], c["max_tokens"], c["seed"]) == (0.2, 0.9, 64, 7)
    assert (c["frequency_penalty"], c["presence_penalty"]) == (0.1, 0.3)
    assert (c["app"], c["user"], c["session"], c["tags"]) == (
        "shop",
        "u-42",
        s,
        ["beta", "checkout"],
    )
    assert c["status"] == "ok" and c["http_status"] == 200 and c["attempts"] == 1
    assert c["stream"] is False and c["ttft_ms"] is None
    assert c["cost_source"] == "computed" and c["cost_usd"] > 0
    assert c["input_messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is observability?"},
    ]
    assert c["output_messages"] == [
        {"role": "assistant", "content": r.choices[0].message.content, "finish_reason": "stop"}
    ]
    assert c["duration_ms"] > 0


def test_chat_stream_usage_chunk_removed_rest_as_direct(gw: Gateway, upstream: Any) -> None:
    s = _session()
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream(
        "POST",
        f"{gw.url}/openai/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {KEY}", **_meta(s)},
    ) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        received = b"".join(resp.iter_raw())
    ex = upstream.state.log.last("/v1/chat/completions")
    assert ex.body["stream_options"] == {"include_usage": True}  # asked upstream
    sent = [f.encode() for f in ex.chunks]
    usage_frames = [f for f in sent if b'"choices":[]' in f]
    assert len(usage_frames) == 1
    # the rest exactly as sent, less the `"usage":null` the injected request added
    direct = [f.replace(b',"usage":null', b"") for f in sent if f not in usage_frames]
    assert received == b"".join(direct)
    assert resp.headers["x-request-id"].startswith("req_")  # upstream headers pass
    assert "content-length" not in resp.headers

    c = gw.call(s)
    assert c["stream"] is True and c["tokens_estimated"] is False
    assert c["input_tokens"] == ex.usage["prompt_tokens"]
    assert c["output_tokens"] == ex.usage["completion_tokens"]
    assert c["ttft_ms"] is not None and 0 < c["ttft_ms"] <= c["duration_ms"]
    chunks = [json.loads(p) for p in _sse_payloads(received) if p != "[DONE]"]
    text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks)
    assert c["output_messages"][0]["content"] == text
    assert c["response_id"] == chunks[0]["id"] and c["response_model"] == chunks[0]["model"]


def test_chat_stream_client_asked_for_usage_gets_everything(gw: Gateway, upstream: Any) -> None:
    s = _session()
    client = gw.openai(default_headers=_meta(s))
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "count to three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    ex = upstream.state.log.last("/v1/chat/completions")
    assert chunks[-1].usage.prompt_tokens == ex.usage["prompt_tokens"]
    c = gw.call(s)
    assert c["output_tokens"] == ex.usage["completion_tokens"] == chunks[-1].usage.completion_tokens


def test_async_stream_with_tools(gw: Gateway, upstream: Any) -> None:
    s = _session()
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
            },
        }
    ]

    async def run() -> list[Any]:
        client = openai.AsyncOpenAI(
            base_url=f"{gw.url}/openai/v1", api_key=KEY, max_retries=0, default_headers=_meta(s)
        )
        async with client:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "What is the weather in Paris?"}],
                tools=tools,
                stream=True,
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(run())
    args = "".join(
        ch.choices[0].delta.tool_calls[0].function.arguments or ""
        for ch in chunks
        if ch.choices and ch.choices[0].delta.tool_calls
    )
    assert json.loads(args) == {"location": "Paris"}
    c = gw.call(s)
    assert c["finish_reasons"] == ["tool_calls"]
    (call,) = c["output_messages"][0]["tool_calls"]
    assert call["name"] == "get_weather" and call["arguments"] == args
    assert call["id"] == chunks[0].choices[0].delta.tool_calls[0].id
    assert c["attributes"]["gen_ai.request.tools"] == '["get_weather"]'


def test_async_non_streamed_and_tool_result_round_trip(gw: Gateway) -> None:
    s = _session()

    async def run() -> Any:
        client = openai.AsyncOpenAI(
            base_url=f"{gw.url}/openai/v1", api_key=KEY, max_retries=0, default_headers=_meta(s)
        )
        async with client:
            return await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "user", "content": "Weather in Oslo?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"c":"Oslo"}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "12C, rain"},
                ],
            )

    r = asyncio.run(run())
    c = gw.call(s)
    assert c["output_messages"][0]["content"] == r.choices[0].message.content
    assert c["input_messages"][1]["tool_calls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"c":"Oslo"}'}
    ]
    assert c["input_messages"][2] == {
        "role": "tool",
        "content": "12C, rain",
        "tool_call_id": "call_1",
    }


def test_multimodal_parts_kept_and_inline_images_elided(gw: Gateway) -> None:
    s = _session()
    image = "data:image/png;base64," + "A" * 5000
    gw.openai(default_headers=_meta(s)).chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ],
    )
    (m,) = gw.call(s)["input_messages"]
    assert m["content"] == "What is in this picture?"
    first, second = m["parts"]
    assert first["image_url"]["url"].startswith("data:image/png;base64,")
    assert "5022 characters not stored" in first["image_url"]["url"]
    assert first["image_url"]["detail"] == "low"
    assert second["image_url"]["url"] == "https://example.com/cat.png"


def test_with_raw_response_sees_upstream_status_and_headers(gw: Gateway, upstream: Any) -> None:
    s = _session()
    raw = gw.openai(default_headers=_meta(s)).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    ex = upstream.state.log.last("/v1/chat/completions")
    assert raw.status_code == 200
    for name in ("x-request-id", "openai-organization", "x-ratelimit-remaining-tokens"):
        assert raw.headers[name]  # upstream headers pass through
    assert raw.headers.get_list("server") == ["uvicorn"]  # the upstream's, not doubled
    assert len(raw.headers.get_list("date")) == 1
    assert raw.parse().id == ex.response["id"]
    assert json.loads(raw.http_response.content) == ex.response


def test_non_streamed_body_is_byte_identical(gw: Gateway, upstream: Any) -> None:
    s = _session()
    r = httpx.post(
        f"{gw.url}/openai/v1/chat/completions",
        content=b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}',
        headers={"content-type": "application/json", **_meta(s)},
    )
    ex = upstream.state.log.last("/v1/chat/completions")
    direct = json.dumps(ex.response, separators=(",", ":"), ensure_ascii=False).encode()
    assert r.content == direct
    assert r.headers["content-length"] == str(len(direct))
    gw.call(s)


# --------------------------------------------------------------------------- other endpoints


def test_legacy_completions_streamed_and_not(gw: Gateway, upstream: Any) -> None:
    s = _session()
    client = gw.openai(default_headers=_meta(s))
    r = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi", max_tokens=5)
    text = "".join(
        ch.choices[0].text
        for ch in client.completions.create(
            model="gpt-3.5-turbo-instruct", prompt="Say hi", stream=True
        )
        if ch.choices
    )
    ex = upstream.state.log.last("/v1/completions")
    assert ex.body["stream_options"] == {"include_usage": True}  # asked, like chat
    plain, streamed = gw.calls(s, 2)
    assert plain["operation"] == streamed["operation"] == "text_completion"
    assert plain["input_tokens"] == r.usage.prompt_tokens and plain["max_tokens"] == 5
    assert plain["output_messages"][0]["content"] == r.choices[0].text
    assert plain["finish_reasons"] == [r.choices[0].finish_reason]
    assert plain["input_messages"] == [{"role": "user", "content": "Say hi"}]
    # a legacy stream carries no usage unless asked: the gateway asks, as for chat
    assert streamed["stream"] and streamed["tokens_estimated"] is False
    assert streamed["output_messages"][0]["content"] == text
    assert streamed["input_tokens"] == ex.usage["prompt_tokens"]
    assert streamed["output_tokens"] == ex.usage["completion_tokens"]


def test_embeddings(gw: Gateway, upstream: Any) -> None:
    s = _session()
    r = gw.openai(default_headers=_meta(s)).embeddings.create(
        model="text-embedding-3-small", input=["alpha beta", "gamma"]
    )
    c = gw.call(s)
    assert c["operation"] == "embeddings"
    assert c["input_tokens"] == r.usage.prompt_tokens and c["output_tokens"] == 0
    assert c["input_messages"] == [
        {"role": "user", "content": "alpha beta"},
        {"role": "user", "content": "gamma"},
    ]
    assert c["output_messages"] is None
    assert c["attributes"]["gen_ai.request.encoding_formats"] == "base64"  # the SDK's default


def test_responses_api_streamed_and_not(gw: Gateway, upstream: Any) -> None:
    s = _session()
    client = gw.openai(default_headers=_meta(s))
    r = client.responses.create(
        model="gpt-4o-mini", instructions="Be terse.", input="Tell me a story", max_output_tokens=50
    )
    events = list(
        client.responses.create(
            model="o4-mini",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "Think"}]}],
            stream=True,
            reasoning={"effort": "low"},
        )
    )
    done = events[-1].response
    plain, streamed = gw.calls(s, 2)
    assert plain["operation"] == "responses" and plain["response_id"] == r.id
    assert plain["input_tokens"] == r.usage.input_tokens
    assert plain["output_tokens"] == r.usage.output_tokens and plain["max_tokens"] == 50
    assert plain["system_instructions"] == [{"role": "system", "content": "Be terse."}]
    assert plain["input_messages"] == [{"role": "user", "content": "Tell me a story"}]
    assert plain["output_messages"][0]["content"] == r.output_text
    assert streamed["stream"] and streamed["response_id"] == done.id
    assert streamed["reasoning_tokens"] == done.usage.output_tokens_details.reasoning_tokens > 0
    assert streamed["output_tokens"] == done.usage.output_tokens
    assert streamed["output_messages"][0]["content"] == done.output_text
    assert streamed["input_messages"] == [{"role": "user", "content": "Think"}]
    assert streamed["attributes"]["gen_ai.request.reasoning_effort"] == "low"
    assert streamed["ttft_ms"] is not None


def test_models_is_forwarded_and_traced_not_a_call(gw: Gateway) -> None:
    s = _session()
    tp = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    models = gw.openai(default_headers={**_meta(s), "traceparent": tp}).models.list()
    assert "gpt-4o-mini" in [m.id for m in models.data]
    gw.app.state.pipeline.flush()
    trace = gw.trace(tp.split("-")[1])
    assert trace["calls"] == []
    server = next(sp for sp in trace["spans"] if sp["kind"] == "server")
    assert server["name"] == "GET /models" and server["parent_span_id"] == tp.split("-")[2]
    assert server["attributes"]["http.response.status_code"] == 200


def test_other_paths_are_forwarded_unchanged(gw: Gateway) -> None:
    r = httpx.get(f"{gw.url}/openai/v1/no/such/thing?x=1")
    assert r.status_code == 404 and "Invalid URL (GET /v1/no/such/thing)" in r.text


# --------------------------------------------------------------------------- metadata


def test_traceparent_makes_the_gateway_span_a_child(gw: Gateway, upstream: Any) -> None:
    s = _session()
    trace_id, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    tp = f"00-{trace_id}-{parent}-01"
    gw.openai(default_headers={**_meta(s), "traceparent": tp}).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert upstream.state.log.last().headers["traceparent"] == tp  # forwarded
    c = gw.call(s)
    assert c["trace_id"] == trace_id and c["parent_span_id"] == parent
    spans = gw.trace(trace_id)["spans"]
    server = next(sp for sp in spans if sp["span_id"] == c["span_id"])
    assert server["kind"] == "server" and server["call_id"] == c["id"]
    attempt = next(sp for sp in spans if sp["kind"] == "client")
    assert attempt["parent_span_id"] == c["span_id"]


def test_new_trace_without_traceparent(gw: Gateway) -> None:
    s = _session()
    gw.openai(default_headers=_meta(s)).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    c = gw.call(s)
    assert len(c["trace_id"]) == 32 and c["parent_span_id"] is None


def test_provider_from_upstream_name(gw: Gateway) -> None:
    s = _session()
    gw.openai("azure", default_headers=_meta(s)).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    c = gw.call(s)
    assert c["provider"] == "azure.ai.openai"
    assert c["attributes"]["gensight.upstream"] == "azure"


def test_unknown_upstream_is_404_naming_the_configured_ones(gw: Gateway) -> None:
    r = httpx.post(f"{gw.url}/p/evil/v1/chat/completions", json={"model": "x"})
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["code"] == "unknown_upstream"
    assert "azure, dead, openai" in err["message"]
    with pytest.raises(openai.NotFoundError):
        gw.openai("evil").models.list()


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("model", "status", "error_class", "attempts"),
    [
        ("fake-400", 400, "invalid_request", 1),
        ("fake-401", 401, "auth", 1),
        ("fake-403", 403, "auth", 1),
        ("fake-404", 404, "invalid_request", 1),
        ("fake-409", 409, "invalid_request", 1),
        ("fake-413", 413, "invalid_request", 1),
        ("fake-422", 422, "invalid_request", 1),
        ("fake-429", 429, "rate_limit", 3),
        ("fake-429-quota", 429, "rate_limit", 1),  # insufficient quota: retrying is futile
        ("fake-500", 500, "upstream_error", 3),
        ("fake-503", 503, "upstream_error", 3),
    ],
)
def test_upstream_errors_pass_through_and_are_classified(
    gw: Gateway, upstream: Any, model: str, status: int, error_class: str, attempts: int
) -> None:
    s = _session()
    r = httpx.post(
        f"{gw.url}/openai/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers=_meta(s),
    )
    ex = upstream.state.log.last("/v1/chat/completions")
    assert r.status_code == status
    assert r.json() == ex.response  # the upstream's error body, unchanged
    if status in (429, 503):
        assert r.headers["retry-after"] == "0"
    c = gw.call(s)
    assert (c["status"], c["error_class"], c["http_status"]) == ("error", error_class, status)
    assert json.loads(c["error_message"]) == ex.response
    assert c["attempts"] == attempts
    spans = [sp for sp in gw.trace(c["trace_id"])["spans"] if sp["kind"] == "client"]
    assert len(spans) == attempts and all(sp["status"] == "error" for sp in spans)


def test_openai_client_sees_the_same_exceptions(gw: Gateway) -> None:
    client = gw.openai()
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="fake-401", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="fake-429", messages=[{"role": "user", "content": "x"}]
        )


def test_connection_failure_is_502_openai_style(gw: Gateway) -> None:
    s = _session()
    with pytest.raises(openai.InternalServerError) as e:
        gw.openai("dead", default_headers=_meta(s)).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    assert e.value.status_code == 502
    assert e.value.body["code"] == "upstream_connection_error"
    assert "upstream 'dead'" in e.value.body["message"]
    c = gw.call(s)
    assert (c["error_class"], c["http_status"], c["attempts"]) == ("connection", 502, 3)


def test_timeout_is_504_openai_style(gw: Gateway) -> None:
    s = _session()
    r = httpx.post(
        f"{gw.url}/openai/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={**_meta(s), "x-fake-ttft-ms": "2500"},
        timeout=10,
    )
    assert r.status_code == 504 and r.json()["error"]["code"] == "upstream_timeout"
    c = gw.call(s)
    assert (c["error_class"], c["http_status"], c["attempts"]) == ("timeout", 504, 1)


def test_slow_first_chunk_is_ttft(gw: Gateway) -> None:
    s = _session()
    client = gw.openai(default_headers={**_meta(s), "x-fake-ttft-ms": "300"})
    list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    c = gw.call(s)
    assert 300 <= c["ttft_ms"] < 1000 and c["status"] == "ok"


def test_mid_stream_stall_ends_the_stream_with_an_error(gw: Gateway) -> None:
    s = _session()
    client = gw.openai(default_headers={**_meta(s), "x-fake-stall-ms": "2500"})
    got: list[str] = []
    with pytest.raises(openai.APIError, match="stalled"):
        for ch in client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            if ch.choices and ch.choices[0].delta.content:
                got.append(ch.choices[0].delta.content)
    c = gw.call(s)
    assert (c["status"], c["error_class"], c["http_status"]) == ("error", "timeout", 200)
    assert got and c["output_messages"][0]["content"] == "".join(got)  # partial output kept
    assert c["tokens_estimated"] is True and c["output_tokens"] > 0


def test_upstream_dropping_the_stream_is_a_connection_error(gw: Gateway) -> None:
    s = _session()
    client = gw.openai(default_headers={**_meta(s), "x-fake-disconnect-after": "3"})
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    c = gw.call(s)
    assert (c["status"], c["error_class"]) == ("error", "connection")


def test_stream_error_event_from_upstream(gw: Gateway) -> None:
    s = _session()
    client = gw.openai(default_headers={**_meta(s), "x-fake-stream-error-after": "3"})
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    c = gw.call(s)
    assert (c["status"], c["error_class"]) == ("error", "upstream_error")
    assert "server_error" in c["error_message"]


def test_retry_then_success(gw: Gateway, upstream: Any) -> None:
    s = _session()
    key = uuid.uuid4().hex
    r = gw.openai(
        default_headers={
            **_meta(s),
            "x-fake-status": "503",
            "x-fake-fail-times": "2",
            "x-fake-fail-key": key,
        }
    ).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content
    c = gw.call(s)
    assert (c["status"], c["attempts"], c["http_status"], c["error_class"]) == ("ok", 3, 200, None)
    attempts = sorted(
        (sp for sp in gw.trace(c["trace_id"])["spans"] if sp["kind"] == "client"),
        key=lambda sp: sp["attributes"]["gensight.attempt"],
    )
    assert [sp["attributes"]["http.response.status_code"] for sp in attempts] == [503, 503, 200]
    assert [sp["status"] for sp in attempts] == ["error", "error", "ok"]
    assert all(sp["parent_span_id"] == c["span_id"] for sp in attempts)


def test_retry_after_is_honoured(gw: Gateway) -> None:
    s = _session()
    start = time.monotonic()
    gw.openai(
        default_headers={
            **_meta(s),
            "x-fake-status": "429",
            "x-fake-fail-times": "1",
            "x-fake-fail-key": uuid.uuid4().hex,
            "x-fake-retry-after": "1",
        }
    ).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - start >= 1.0
    assert gw.call(s)["attempts"] == 2


def test_no_retry_once_streaming_started(gw: Gateway, upstream: Any) -> None:
    s = _session()
    n = len(upstream.state.log)
    with pytest.raises(openai.APIError):
        list(
            gw.openai(
                default_headers={**_meta(s), "x-fake-disconnect-after": "2"}
            ).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    assert len(upstream.state.log) == n + 1
    assert gw.call(s)["attempts"] == 1


def test_fallback_after_the_last_retry(upstream: Any, tmp_path: Path) -> None:
    g = Gateway(
        Settings(
            data_dir=tmp_path,
            upstreams={"openai": _dead_url(), "backup": upstream.state.url},
            fallback={"openai": "backup"},
            retries=1,
            retry_backoff=0.01,
        )
    )
    try:
        s = _session()
        r = g.openai(default_headers=_meta(s)).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert r.choices[0].message.content
        c = g.call(s)
        assert (c["status"], c["attempts"]) == ("ok", 3)
        assert c["attributes"]["gensight.upstream"] == "backup"
        assert c["attributes"]["gensight.fallback"] is True
        spans = [sp for sp in g.trace(c["trace_id"])["spans"] if sp["kind"] == "client"]
        assert sorted(sp["attributes"]["gensight.upstream"] for sp in spans) == [
            "backup",
            "openai",
            "openai",
        ]
    finally:
        g.stop()


def test_unknown_fallback_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a configured upstream"):
        create_app(Settings(data_dir=tmp_path, fallback={"openai": "nope"}))


def test_client_disconnect_cancels_upstream_and_keeps_partial_output(
    gw: Gateway, upstream: Any
) -> None:
    s = _session()
    received: list[str] = []
    with httpx.stream(
        "POST",
        f"{gw.url}/openai/v1/chat/completions",
        json={
            "model": "slow-model",
            "stream": True,
            "messages": [{"role": "user", "content": "tell me a long story " * 5}],
        },
        headers={**_meta(s), "x-fake-completion-tokens": "200"},
    ) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"]
                received.append(delta.get("content") or "")
            if len(received) >= 5:
                break
    c = gw.call(s)
    assert (c["status"], c["error_class"]) == ("error", "cancelled")
    assert c["output_messages"][0]["content"].startswith("".join(received))
    assert c["tokens_estimated"] is True and 0 < c["output_tokens"] < 200
    time.sleep(0.2)
    ex = upstream.state.log.last("/v1/chat/completions")
    assert not ex.completed  # the upstream stream was cut, not drained
    assert len(ex.chunks) < 100


def test_upstream_ignoring_include_usage_gets_estimated_tokens(gw: Gateway, upstream: Any) -> None:
    s = _session()
    with httpx.stream(
        "POST",
        f"{gw.url}/openai/v1/chat/completions",
        json={  # a model no earlier call taught the estimates anything about (issue 14.11)
            "model": "gpt-4o-2024-11-20",
            "stream": True,
            "messages": [{"role": "user", "content": "Hello there, how are you?"}],
        },
        headers={**_meta(s), "x-fake-ignore-include-usage": "1"},
    ) as resp:
        received = b"".join(resp.iter_raw())
    ex = upstream.state.log.last("/v1/chat/completions")
    assert received == "".join(ex.chunks).encode()  # nothing to strip, nothing stripped
    c = gw.call(s)
    assert c["tokens_estimated"] is True
    assert "gensight.tokens_calibration" not in c["attributes"]
    # exact for plain text: o200k tokens + OpenAI's message framing
    import quicktok

    enc = quicktok.get_encoding("o200k_base")
    assert c["input_tokens"] == 3 + 3 + enc.count("user") + enc.count("Hello there, how are you?")
    assert c["output_tokens"] == enc.count(c["output_messages"][0]["content"])


# --------------------------------------------------------------------------- fail-open


class _DownStore:
    """A store that is down: every write fails."""

    name = "down"

    def write(self, calls: Any, spans: Any, events: Any) -> None:
        raise ConnectionError("store is down")

    def health(self) -> dict[str, Any]:
        return {"backend": "down", "ok": False}

    def close(self) -> None:
        pass


def test_store_down_calls_still_succeed(upstream: Any, tmp_path: Path) -> None:
    g = Gateway(
        Settings(data_dir=tmp_path, upstreams={"openai": upstream.state.url}, flush_interval=0.01),
        store=_DownStore(),
    )
    try:
        client = g.openai()
        for _ in range(3):
            r = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            assert r.choices[0].message.content
        assert list(client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        ))  # fmt: skip
        time.sleep(0.2)
        health = g.api.get("/api/health").json()
        assert health["status"] == "degraded" and health["queue"]["write_errors"] > 0
    finally:
        g.app.state.pipeline._stopping = True  # don't wait out the retry backoff on stop
        g.stop()


def test_queue_full_drops_are_counted_and_calls_succeed(upstream: Any, tmp_path: Path) -> None:
    # nowhere to keep records: memory holds one, the journal (the spill) nothing
    settings = Settings(
        data_dir=tmp_path, upstreams={"openai": upstream.state.url}, queue_size=1, spill_max=1
    )
    g = Gateway(settings)
    try:
        client = g.openai()
        for _ in range(3):
            assert client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            ).choices
        health = g.api.get("/api/health").json()
        assert health["dropped"] >= 3 * 3  # a call + its two spans, each time
    finally:
        g.stop()


# --------------------------------------------------------------------------- keys and secrets


def test_gateway_key_is_required_and_not_forwarded(upstream: Any, tmp_path: Path) -> None:
    g = Gateway(
        Settings(
            data_dir=tmp_path,
            upstreams={"openai": upstream.state.url},
            api_key=GW_KEY,
        )
    )
    try:
        with pytest.raises(openai.AuthenticationError):
            g.openai().models.list()
        ok = g.openai(default_headers={"X-Gensight-Key": GW_KEY}).models.list()
        assert ok.data
        ex = upstream.state.log.last("/v1/models")
        assert "x-gensight-key" not in ex.headers
        assert ex.headers["authorization"] == f"Bearer {KEY}"
    finally:
        g.stop()


def test_api_key_never_stored_or_logged(upstream: Any, tmp_path: Path) -> None:
    from tests.support.server import Server

    srv = Server(
        tmp_path / "data",
        "--upstream",
        f"openai={upstream.state.url}",
        "--upstream",
        f"azure={upstream.state.url}",
        "--log-level",
        "debug",
    )
    try:
        base = f"{srv.url}/openai/v1"
        client = openai.OpenAI(base_url=base, api_key=KEY, max_retries=0)
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}]
        )
        list(client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "b"}], stream=True
        ))  # fmt: skip
        client.embeddings.create(model="text-embedding-3-small", input="c")
        with pytest.raises(openai.APIStatusError):
            client.chat.completions.create(
                model="fake-500", messages=[{"role": "user", "content": "d"}]
            )
        # Azure style: the key in an api-key header
        azure = httpx.post(
            f"{srv.url}/p/azure/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "e"}]},
            headers={"api-key": KEY},
        )
        assert azure.status_code == 200
        assert upstream.state.log.last().headers["api-key"] == KEY
        srv.wait_calls(5)
    finally:
        srv.stop()
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.name.endswith(".duckdb") for p in files)
    needle = KEY.encode()
    for p in files:  # the DuckDB file (and WAL), and the server log
        data = p.read_bytes()
        assert needle not in data, f"API key found in {p.name}"
        assert b"S3cr3tK3y" not in data, f"part of the API key found in {p.name}"
