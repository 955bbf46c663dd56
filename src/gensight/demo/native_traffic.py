"""The demo's Claude and Gemini traffic: calls on Anthropic's and Gemini's own wire formats
through the gateway's ``/anthropic`` and ``/gemini`` routes, to the fake upstreams
(``gensight.demo.anthropic_upstream``, ``gensight.demo.gemini_upstream``).

Sent with plain ``httpx`` (the demo needs neither provider's SDK installed): the same
requests those SDKs send — ``x-api-key`` + ``anthropic-version`` for Messages, with
streams, cache reads, tool use and extended thinking; ``x-goog-api-key`` for
``generateContent`` and ``streamGenerateContent?alt=sse``, with thinking models and
cached content — and now and then an error (Anthropic's 529 ``overloaded_error``,
Gemini's 429 ``RESOURCE_EXHAUSTED``), so the dashboard shows three providers failing
in their own ways.
"""

from __future__ import annotations

import random
from typing import Any

import httpx

#: Demo keys: forwarded to the fakes by the gateway, never stored.
ANTHROPIC_KEY = "sk-ant-demo-000000000000000000000000"
GEMINI_KEY = "AIza-demo-0000000000000000000000000"
CLAUDE_MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5")
GEMINI_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash")
_WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


class NativeTraffic:
    """One Claude or Gemini call per ``call()``, through the gateway at ``server_url``."""

    def __init__(self, server_url: str, rng: random.Random) -> None:
        self.rng = rng
        self.http = httpx.AsyncClient(base_url=server_url, timeout=30)

    async def close(self) -> None:
        await self.http.aclose()

    async def call(self, headers: dict[str, str], question: str) -> None:
        """A Claude call or a Gemini one; an HTTP error raises ``httpx.HTTPStatusError``."""
        if self.rng.random() < 0.55:
            await self._claude(headers, question)
        else:
            await self._gemini(headers, question)

    async def _send(self, url: str, body: dict[str, Any], headers: dict[str, str], stream: bool):
        if not stream:
            r = await self.http.post(url, json=body, headers=headers)
            r.raise_for_status()
            return
        async with self.http.stream("POST", url, json=body, headers=headers) as r:
            async for _ in r.aiter_raw():
                pass
            r.raise_for_status()

    async def _claude(self, meta: dict[str, str], question: str) -> None:
        rng = self.rng
        headers = {**meta, "x-api-key": ANTHROPIC_KEY, "anthropic-version": "2023-06-01"}
        body: dict[str, Any] = {
            "model": rng.choice(CLAUDE_MODELS),
            "max_tokens": 400,
            "system": "You are a concise assistant.",
            "messages": [{"role": "user", "content": question}],
        }
        roll = rng.random()
        if roll < 0.03:
            headers["x-fake-status"] = "529"  # overloaded: the gateway retries, then gives up
        elif roll < 0.35:
            headers["x-fake-cache-read-tokens"] = str(rng.randint(4, 12))
        if rng.random() < 0.15:
            body["tools"] = [_WEATHER]
            body["messages"][0]["content"] = "What's the weather in Lisbon?"
        elif rng.random() < 0.2:
            body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
            body["max_tokens"] = 2048
        stream = rng.random() < 0.6
        body["stream"] = stream
        await self._send("/anthropic/v1/messages", body, headers, stream)

    async def _gemini(self, meta: dict[str, str], question: str) -> None:
        rng = self.rng
        headers = {**meta, "x-goog-api-key": GEMINI_KEY}
        model = rng.choice(GEMINI_MODELS)
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": [{"text": question}]}],
            "systemInstruction": {"parts": [{"text": "Answer briefly."}]},
            "generationConfig": {"temperature": round(rng.uniform(0, 1), 1)},
        }
        roll = rng.random()
        if roll < 0.03:
            headers.update({"x-fake-status": "429", "x-fake-retry-delay": "0"})
        elif roll < 0.3:
            headers["x-fake-cached-tokens"] = str(rng.randint(3, 10))
        stream = rng.random() < 0.5
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        await self._send(f"/gemini/v1beta/models/{model}:{method}", body, headers, stream)
