"""Tool definitions stored with their schemas, and estimates that learn (issue 14.10, 14.11).

A self-hosted server whose chat template adds tokens our count cannot see (the fake's
``template_tokens``, as llama.cpp does with SmolLM2) and whose streams ignore
``include_usage``: after a few of its calls reported usage, the gateway's estimates for
its streams come within 25% of the server's own count.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gensight.demo import ServerThread, UpstreamConfig
from gensight.demo import create_app as upstream_app
from gensight.model.settings import Settings
from tests.integration.test_gateway import Gateway, _meta, _session

WEATHER = {
    "type": "object",
    "properties": {"location": {"type": "string", "description": "a city"}},
    "required": ["location"],
}

PROMPTS = [
    "Hi",
    "What is the capital of France?",
    "Summarise the plot of a novel about a lighthouse keeper who finds a message in a "
    "bottle and sets out to answer it, in three sentences.",
    "Name two colours.",
    "Explain, briefly and for a newcomer, what a write-ahead journal is for in a database "
    "and why it is replayed after a crash.",
]


@pytest.fixture
def llama(tmp_path: Path) -> Iterator[tuple[Any, Gateway]]:
    """A llama.cpp-like upstream (template tokens, streams without usage) and a gateway."""
    app = upstream_app(UpstreamConfig(template_tokens=(24, 5), honor_include_usage=False))
    with ServerThread(app) as srv:
        g = Gateway(
            Settings(
                data_dir=tmp_path / "gw",
                upstreams={"llama": srv.url + "/v1"},
                flush_interval=0.02,
            )
        )
        try:
            yield app, g
        finally:
            g.stop()


def _stream(g: Gateway, session: str, prompt: str) -> None:
    client = g.openai("llama", default_headers=_meta(session))
    stream = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": prompt}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_stream_estimates_are_calibrated_by_the_upstreams_own_counts(llama: Any) -> None:
    app, g = llama
    s = _session()
    _stream(g, s, PROMPTS[1])  # nothing learned yet: the plain estimate
    first = g.call(s)
    truth = app.state.log.last("/v1/chat/completions").usage["prompt_tokens"]
    assert first["tokens_estimated"] is True
    assert first["input_tokens"] < 0.6 * truth  # the template's tokens are unseen
    assert "gensight.tokens_calibration" not in first["attributes"]

    client = g.openai("llama", default_headers=_meta(_session()))
    for prompt in PROMPTS:  # non-streamed answers report usage: they teach
        client.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": prompt}]
        )
    for prompt in ("Tell me a short joke about tokens.", PROMPTS[2], "Why?"):
        s = _session()
        _stream(g, s, prompt)
        c = g.call(s)
        ex = app.state.log.last("/v1/chat/completions")
        assert not any(e.get("usage") for e in ex.events())  # the stream told no usage
        assert c["tokens_estimated"] is True
        assert c["attributes"]["gensight.tokens_calibration"] >= 3
        assert (
            abs(c["input_tokens"] - ex.usage["prompt_tokens"]) <= 0.25 * ex.usage["prompt_tokens"]
        ), (prompt, c["input_tokens"], ex.usage)
        assert (
            abs(c["output_tokens"] - ex.usage["completion_tokens"])
            <= 0.25 * ex.usage["completion_tokens"]
        )


def test_tool_definitions_are_stored_with_their_schemas(gw_plain: Gateway) -> None:
    s = _session()
    tools = [{"type": "function", "function": {"name": "get_weather",
              "description": "Weather in a city", "parameters": WEATHER}}]  # fmt: skip
    client = gw_plain.openai(default_headers=_meta(s))
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
        tools=tools,
    )
    assert r.choices[0].message.tool_calls
    attrs = gw_plain.call(s)["attributes"]
    assert json.loads(attrs["gen_ai.tool.definitions"]) == [
        {"type": "function", "name": "get_weather", "description": "Weather in a city",
         "parameters": WEATHER}]  # fmt: skip
    assert json.loads(attrs["gen_ai.request.tools"]) == ["get_weather"]


@pytest.fixture
def gw_plain(upstream: Any, tmp_path: Path) -> Iterator[Gateway]:
    g = Gateway(
        Settings(
            data_dir=tmp_path / "plain",
            upstreams={"openai": upstream.state.url},
            flush_interval=0.02,
        )
    )
    yield g
    g.stop()
