"""A fake OpenAI API upstream, faithful enough for the real ``openai`` client and
the real OpenTelemetry GenAI instrumentations.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``,
``POST /v1/embeddings``, ``POST /v1/responses`` (each streamed and not, where the
real API streams), ``GET /v1/models`` and ``GET /v1/models/{id}``.

Determinism
    Reply text and token counts are a pure function of the request, so tests can
    predict them:

    * ``prompt_tokens``: :func:`chat_prompt_tokens` (chat), :func:`count_tokens`
      of the prompt (legacy completions, embeddings), :func:`responses_input_tokens`.
    * the reply is :func:`reply_pieces` of the prompt; each piece is one token,
      so ``completion_tokens == len(pieces)`` (plus reasoning tokens for
      reasoning models, see :func:`is_reasoning_model`). ``max_tokens`` /
      ``max_completion_tokens`` / ``max_output_tokens`` truncate the reply
      (``finish_reason="length"``).
    * ``cached_tokens``: ``(prompt_tokens // 256) * 128`` when the prompt has at
      least 1024 tokens (OpenAI caches prompts of 1024+ tokens), else 0.

Injection (works through any client, no custom code)
    * model ``fake-<status>`` (``fake-400``, ``fake-401``, ``fake-403``,
      ``fake-404``, ``fake-429``, ``fake-429-quota``, ``fake-500``, ``fake-503``…)
      answers that status with the real OpenAI error body (429 also with
      ``Retry-After``);
    * header ``x-fake-status: 429`` does the same for any model; with
      ``x-fake-fail-times: N`` only the first N such requests fail (counted per
      ``x-fake-fail-key``, default the status), which is what retry tests need;
    * ``x-fake-ttft-ms``: delay before the first chunk (or before a non-streamed
      answer); ``x-fake-latency-ms``: extra delay for a non-streamed answer;
      ``x-fake-stall-ms``: a stall halfway through a stream;
      ``x-fake-stream-error-after: N``: an SSE error event after N chunks;
      ``x-fake-disconnect-after: N``: the connection drops after N chunks;
      ``x-fake-completion-tokens``, ``x-fake-cached-tokens``,
      ``x-fake-reasoning-tokens``: force those counts; ``x-fake-retry-after``:
      the Retry-After value of an injected 429/503;
    * ``x-fake-ignore-include-usage: 1`` (or ``UpstreamConfig(honor_include_usage=False)``):
      streams never carry usage, like OpenAI-compatible servers that ignore
      ``stream_options.include_usage``.

Latency
    :class:`ModelProfile` per model (exact name or longest prefix), default
    instantaneous for tests. :data:`DEMO_PROFILES` holds realistic ones.

Recording
    ``app.state.log`` (a :class:`RequestLog`) keeps every request received and
    what was sent back (body, SSE chunks, usage), for in-process comparisons.

Use :func:`create_app` to build the ASGI app and :func:`serve` to run it on a
loopback port: ``with serve(app) as base_url:`` yields ``http://127.0.0.1:PORT/v1``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import math
import random
import re
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gensight.demo.serve import serve_in_thread

__all__ = [
    "DEFAULT_MODELS",
    "DEMO_PROFILES",
    "Exchange",
    "ModelProfile",
    "RequestLog",
    "UpstreamConfig",
    "chat_prompt_tokens",
    "count_tokens",
    "create_app",
    "error_body",
    "is_reasoning_model",
    "reply_pieces",
    "responses_input_tokens",
    "serve",
]

# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class ModelProfile:
    """Latency (and optional random failure) behaviour of one model.

    ``ttft_ms`` is the median time to the first chunk, ``ms_per_token`` the median
    time between output tokens; both are multiplied by ``exp(N(0, jitter))``.
    ``error_rates`` maps an HTTP status to the probability of failing with it
    (e.g. ``{429: 0.02, 500: 0.005}``); zero by default, which keeps tests
    deterministic.
    """

    ttft_ms: float = 0.0
    ms_per_token: float = 0.0
    jitter: float = 0.0
    error_rates: Mapping[int, float] = field(default_factory=dict)

    def sample_ttft(self, rng: random.Random) -> float:
        """Time to first chunk for one request, in milliseconds."""
        return self._jittered(self.ttft_ms, rng)

    def sample_token_gap(self, rng: random.Random) -> float:
        """Delay between two output tokens, in milliseconds."""
        return self._jittered(self.ms_per_token, rng)

    def _jittered(self, value: float, rng: random.Random) -> float:
        if value <= 0:
            return 0.0
        if self.jitter <= 0:
            return value
        return value * math.exp(rng.gauss(0.0, self.jitter))


#: Realistic per-model latency for ``gensight demo`` (orders of magnitude seen on
#: the public API: TTFT a few hundred ms, 5-25 ms per output token).
DEMO_PROFILES: dict[str, ModelProfile] = {
    "gpt-4o-mini": ModelProfile(ttft_ms=280, ms_per_token=9, jitter=0.35),
    "gpt-4o": ModelProfile(ttft_ms=420, ms_per_token=16, jitter=0.4),
    "gpt-4.1-nano": ModelProfile(ttft_ms=220, ms_per_token=6, jitter=0.3),
    "gpt-4.1-mini": ModelProfile(ttft_ms=300, ms_per_token=10, jitter=0.35),
    "gpt-4.1": ModelProfile(ttft_ms=450, ms_per_token=18, jitter=0.4),
    "o3-mini": ModelProfile(ttft_ms=1800, ms_per_token=8, jitter=0.5),
    "o4-mini": ModelProfile(ttft_ms=1500, ms_per_token=8, jitter=0.5),
    "gpt-5-mini": ModelProfile(ttft_ms=1200, ms_per_token=9, jitter=0.5),
    "deepseek-chat": ModelProfile(ttft_ms=650, ms_per_token=22, jitter=0.5),
    "text-embedding-3-small": ModelProfile(ttft_ms=60, jitter=0.3),
    "text-embedding-3-large": ModelProfile(ttft_ms=110, jitter=0.3),
}

#: Models listed by ``GET /v1/models`` unless configured otherwise.
DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-4.1",
    "o3-mini",
    "o4-mini",
    "gpt-5-mini",
    "gpt-3.5-turbo-instruct",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)

_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


@dataclass
class UpstreamConfig:
    """Settings of one fake upstream.

    ``profiles`` maps a model name (or a prefix of one) to its latency profile;
    unknown models use ``default_profile`` (instantaneous by default).
    With ``api_key`` set, requests need ``Authorization: Bearer <api_key>``.
    """

    profiles: Mapping[str, ModelProfile] = field(default_factory=dict)
    default_profile: ModelProfile = field(default_factory=ModelProfile)
    api_key: str | None = None
    models: Sequence[str] = DEFAULT_MODELS
    retry_after_s: int = 1
    honor_include_usage: bool = True
    seed: int = 0
    log_limit: int = 10_000
    organization: str = "org-fake"

    def profile_for(self, model: str) -> ModelProfile:
        """The profile of ``model``: exact match, else longest matching prefix, else default."""
        if model in self.profiles:
            return self.profiles[model]
        best = ""
        for name in self.profiles:
            if model.startswith(name) and len(name) > len(best):
                best = name
        return self.profiles[best] if best else self.default_profile


# --------------------------------------------------------------------------- recording


@dataclass
class Exchange:
    """One request received by the fake upstream and what it answered."""

    id: str
    ts: float
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 0
    stream: bool = False
    response: Any = None
    chunks: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    usage_sent: bool = False
    completed: bool = False
    ttft_ms: float | None = None
    duration_ms: float | None = None

    @property
    def model(self) -> str | None:
        """The requested model, if the body had one."""
        return self.body.get("model") if isinstance(self.body, dict) else None

    def events(self) -> list[Any]:
        """The streamed payloads parsed from JSON (``[DONE]`` omitted)."""
        out = []
        for raw in self.chunks:
            data = raw.split("data: ", 1)[-1].strip()
            if data != "[DONE]":
                out.append(json.loads(data))
        return out


class RequestLog:
    """Thread-safe, bounded, in-memory list of :class:`Exchange` objects."""

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._items: list[Exchange] = []
        self._lock = threading.Lock()

    def add(self, item: Exchange) -> None:
        with self._lock:
            self._items.append(item)
            if len(self._items) > self.limit:
                del self._items[: len(self._items) - self.limit]

    @property
    def entries(self) -> list[Exchange]:
        """A snapshot of all recorded exchanges, oldest first."""
        with self._lock:
            return list(self._items)

    def last(self, path: str | None = None) -> Exchange:
        """The most recent exchange (on ``path`` if given, e.g. ``/v1/embeddings``)."""
        for item in reversed(self.entries):
            if path is None or item.path == path:
                return item
        raise LookupError(f"no request recorded for {path or 'any path'}")

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Exchange]:
        return iter(self.entries)


# --------------------------------------------------------------------------- tokens & text

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")

_WORDS = (
    "the", "model", "answer", "is", "simulated", "and", "deterministic", "so", "tests",
    "can", "predict", "every", "token", "of", "this", "reply", "latency", "cost",
    "traces", "observability", "request", "response", "stream", "chunk", "usage",
    "gateway", "spans", "metrics", "prompt", "completion", "cache", "retrieval",
    "context", "document", "search", "result", "summary", "helpful", "quick", "brown",
    "fox", "jumps", "over", "lazy", "dog", "data", "pipeline", "store", "query",
    "window", "budget", "alert", "error", "retry", "upstream", "provider", "record",
    "value", "signal", "insight", "clear", "short", "final",
)  # fmt: skip


def count_tokens(text: str) -> int:
    """Deterministic token count of ``text``: words and punctuation marks."""
    return len(_TOKEN_RE.findall(text or ""))


def content_text(content: Any) -> str:
    """Plain text of a message ``content`` (a string or a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return " ".join(parts)
    return str(content)


def chat_prompt_tokens(messages: Sequence[Mapping[str, Any]], tools: Any = None) -> int:
    """Prompt tokens of a chat request: 3 + per message (4 + its tokens), plus the tools' JSON."""
    total = 3
    for msg in messages:
        total += 4 + count_tokens(content_text(msg.get("content")))
        if msg.get("name"):
            total += 1
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            total += count_tokens(str(fn.get("name", ""))) + count_tokens(
                str(fn.get("arguments", ""))
            )
    if tools:
        total += count_tokens(json.dumps(tools, sort_keys=True))
    return total


def responses_input_tokens(body: Mapping[str, Any]) -> int:
    """Input tokens of a Responses API request (instructions + input items + tools)."""
    total = 3
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        total += 4 + count_tokens(instructions)
    inp = body.get("input")
    if isinstance(inp, str):
        total += 4 + count_tokens(inp)
    elif isinstance(inp, list):
        for item in inp:
            if isinstance(item, dict):
                text = content_text(item.get("content"))
                if not text and "output" in item:
                    text = str(item.get("output"))
                if not text and "arguments" in item:
                    text = str(item.get("arguments"))
                total += 4 + count_tokens(text)
            else:
                total += 4 + count_tokens(str(item))
    if body.get("tools"):
        total += count_tokens(json.dumps(body["tools"], sort_keys=True))
    return total


def _digest(*parts: Any) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.digest()


def reply_pieces(prompt: str, model: str, index: int = 0, length: int | None = None) -> list[str]:
    """The deterministic reply to ``prompt``: a list of pieces, one token each.

    Between 8 and 24 pieces unless ``length`` is given; the first piece has no
    leading space, the last one ends with a period.
    """
    seed = _digest(prompt, model, index)
    rng = random.Random(seed)
    n = length if length is not None else 8 + seed[0] % 17
    words = [rng.choice(_WORDS) for _ in range(max(n, 0))]
    if not words:
        return []
    pieces = [words[0].capitalize()] + [" " + w for w in words[1:]]
    pieces[-1] += "."
    return pieces


def is_reasoning_model(model: str) -> bool:
    """True for o-series and gpt-5 models, which report reasoning tokens."""
    return model.startswith(_REASONING_PREFIXES)


def _split(text: str, n: int) -> list[str]:
    """Split ``text`` into ``n`` (or fewer) contiguous non-empty pieces."""
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _embedding(text: str, dims: int) -> list[float]:
    rng = random.Random(_digest("embedding", text))
    vec = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vec]


# --------------------------------------------------------------------------- errors

_ERRORS: dict[str, tuple[str, str | None, str | None]] = {
    # key: (message, type, code)
    "400": (
        "Invalid value for 'temperature': decimal above maximum value. Expected a value "
        "<= 2, but got 9 instead.",
        "invalid_request_error",
        "decimal_above_max_value",
    ),
    "401": (
        "Incorrect API key provided: sk-fake***********1234. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    "403": (
        "Country, region, or territory not supported",
        "request_forbidden",
        "unsupported_country_region_territory",
    ),
    "404": (
        "The model `{model}` does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    "408": ("Request timed out.", "timeout", None),
    "409": ("Conflict: the request could not be completed.", "invalid_request_error", None),
    "413": ("Request too large.", "invalid_request_error", "request_too_large"),
    "422": ("Unprocessable entity.", "invalid_request_error", None),
    "429": (
        "Rate limit reached for {model} in organization {org} on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in {retry}s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "requests",
        "rate_limit_exceeded",
    ),
    "429-quota": (
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    ),
    "500": (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    "502": ("Bad gateway.", "server_error", None),
    "503": (
        "The engine is currently overloaded, please try again later.",
        "server_error",
        None,
    ),
    "504": ("Gateway timeout.", "server_error", None),
}

_ERROR_PARAM = {"400": "temperature"}


def error_body(
    status: int, model: str = "", variant: str = "", *, org: str = "org-fake", retry_after: int = 1
) -> dict[str, Any]:
    """The JSON body the real OpenAI API answers with for ``status``.

    ``variant`` selects an alternative (``"quota"`` for 429 insufficient_quota).
    """
    key = f"{status}-{variant}" if variant and f"{status}-{variant}" in _ERRORS else str(status)
    if key not in _ERRORS:
        key = "500" if status >= 500 else "400"
        message, etype, code = (
            f"Simulated error {status}.",
            "server_error" if status >= 500 else "invalid_request_error",
            None,
        )
    else:
        message, etype, code = _ERRORS[key]
    message = message.format(model=model or "unknown", org=org, retry=retry_after)
    return {
        "error": {
            "message": message,
            "type": etype,
            "param": _ERROR_PARAM.get(key),
            "code": code,
        }
    }


def _invalid(message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


# --------------------------------------------------------------------------- per-request plan


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


@dataclass
class _Plan:
    """How to answer one request: injected failures, delays, forced counts."""

    status: int | None = None
    variant: str = ""
    retry_after: int = 1
    ttft_ms: float = 0.0
    token_gap_ms: float = 0.0
    extra_latency_ms: float = 0.0
    stall_ms: float = 0.0
    stream_error_after: int | None = None
    disconnect_after: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    ignore_include_usage: bool = False


_FAKE_MODEL_RE = re.compile(r"^fake-(\d{3})(?:-([a-z]+))?$")


class _Upstream:
    """Request handlers; one instance per app, holding config, log and counters."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.log = RequestLog(config.log_limit)
        self.rng = random.Random(config.seed)
        self._fail_counts: dict[str, int] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- plumbing

    def _plan(self, model: str, headers: Mapping[str, str]) -> _Plan:
        cfg = self.config
        profile = cfg.profile_for(model)
        plan = _Plan(retry_after=_int_header(headers, "x-fake-retry-after") or cfg.retry_after_s)
        m = _FAKE_MODEL_RE.match(model or "")
        if m:
            plan.status, plan.variant = int(m.group(1)), m.group(2) or ""
        forced = headers.get("x-fake-status")
        if forced:
            status_text, _, variant = forced.partition("-")
            with contextlib.suppress(ValueError):
                status = int(status_text)
                times = _int_header(headers, "x-fake-fail-times")
                key = headers.get("x-fake-fail-key", forced)
                fail = True
                if times is not None:
                    with self._lock:
                        seen = self._fail_counts.get(key, 0)
                        self._fail_counts[key] = seen + 1
                    fail = seen < times
                if fail and status >= 400:
                    plan.status, plan.variant = status, variant
        if plan.status is None and profile.error_rates:
            roll = self.rng.random()
            acc = 0.0
            for status, rate in sorted(profile.error_rates.items()):
                acc += rate
                if roll < acc:
                    plan.status = int(status)
                    break
        ttft = _int_header(headers, "x-fake-ttft-ms")
        plan.ttft_ms = float(ttft) if ttft is not None else profile.sample_ttft(self.rng)
        plan.token_gap_ms = profile.sample_token_gap(self.rng)
        plan.extra_latency_ms = float(_int_header(headers, "x-fake-latency-ms") or 0)
        plan.stall_ms = float(_int_header(headers, "x-fake-stall-ms") or 0)
        plan.stream_error_after = _int_header(headers, "x-fake-stream-error-after")
        plan.disconnect_after = _int_header(headers, "x-fake-disconnect-after")
        plan.completion_tokens = _int_header(headers, "x-fake-completion-tokens")
        plan.cached_tokens = _int_header(headers, "x-fake-cached-tokens")
        plan.reasoning_tokens = _int_header(headers, "x-fake-reasoning-tokens")
        plan.ignore_include_usage = not cfg.honor_include_usage or headers.get(
            "x-fake-ignore-include-usage", ""
        ).lower() in ("1", "true", "yes")
        return plan

    def _headers(self, started: float, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {
            "x-request-id": "req_" + uuid.uuid4().hex,
            "openai-organization": self.config.organization,
            "openai-processing-ms": str(int((time.monotonic() - started) * 1000)),
            "openai-version": "2020-10-01",
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-remaining-requests": "9999",
            "x-ratelimit-limit-tokens": "30000000",
            "x-ratelimit-remaining-tokens": "29999000",
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-reset-tokens": "2ms",
        }
        if extra:
            headers.update(extra)
        return headers

    def _json(
        self,
        ex: Exchange,
        started: float,
        status: int,
        body: Any,
        extra_headers: Mapping[str, str] | None = None,
    ) -> JSONResponse:
        ex.status = status
        ex.response = body
        ex.completed = True
        ex.duration_ms = (time.monotonic() - started) * 1000
        return JSONResponse(body, status_code=status, headers=self._headers(started, extra_headers))

    def _error(self, ex: Exchange, started: float, plan: _Plan, model: str) -> JSONResponse:
        assert plan.status is not None
        body = error_body(
            plan.status,
            model,
            plan.variant,
            org=self.config.organization,
            retry_after=plan.retry_after,
        )
        extra = {}
        if plan.status in (429, 503):
            extra["retry-after"] = str(plan.retry_after)
        if plan.status == 429:
            extra["x-ratelimit-remaining-requests"] = "0"
        return self._json(ex, started, plan.status, body, extra)

    async def _begin(self, request: Request) -> tuple[Exchange, float, Any, JSONResponse | None]:
        """Record the request and apply auth / JSON checks; return an early error if any."""
        started = time.monotonic()
        raw = await request.body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        ex = Exchange(
            id=uuid.uuid4().hex,
            ts=time.time(),
            method=request.method,
            path=request.url.path,
            headers=dict(request.headers),
            body=body,
        )
        self.log.add(ex)
        if self.config.api_key is not None:
            auth = request.headers.get("authorization", "")
            if auth != f"Bearer {self.config.api_key}":
                return ex, started, body, self._json(ex, started, 401, error_body(401))
        if request.method == "POST" and not isinstance(body, dict):
            err = _invalid(
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                "but what was sent was not valid JSON.)"
            )
            return ex, started, body, self._json(ex, started, 400, err)
        return ex, started, body, None

    def _cached(self, plan: _Plan, prompt_tokens: int) -> int:
        if plan.cached_tokens is not None:
            return max(0, min(plan.cached_tokens, prompt_tokens))
        return (prompt_tokens // 256) * 128 if prompt_tokens >= 1024 else 0

    def _reasoning(self, plan: _Plan, model: str, visible_tokens: int) -> int:
        if plan.reasoning_tokens is not None:
            return max(0, plan.reasoning_tokens)
        return 2 * visible_tokens + 16 if is_reasoning_model(model) else 0

    @staticmethod
    def _sse(data: Any, event: str | None = None) -> str:
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"

    async def _stream(
        self,
        ex: Exchange,
        started: float,
        plan: _Plan,
        frames: list[tuple[str, bool]],
    ) -> StreamingResponse:
        """Stream pre-rendered SSE ``frames``; each is (text, counts_as_token_gap)."""
        ex.status = 200
        ex.stream = True

        async def body() -> AsyncIterator[bytes]:
            try:
                if plan.ttft_ms:
                    await asyncio.sleep(plan.ttft_ms / 1000)
                stall_at = len(frames) // 2
                for i, (frame, gap) in enumerate(frames):
                    if plan.disconnect_after is not None and i >= plan.disconnect_after:
                        raise ConnectionResetError("x-fake-disconnect-after")
                    if plan.stream_error_after is not None and i >= plan.stream_error_after:
                        err = self._sse(error_body(500))
                        ex.chunks.append(err)
                        yield err.encode()
                        return
                    if i and gap and plan.token_gap_ms:
                        await asyncio.sleep(plan.token_gap_ms / 1000)
                    if plan.stall_ms and i == stall_at and i:
                        await asyncio.sleep(plan.stall_ms / 1000)
                    if ex.ttft_ms is None:
                        ex.ttft_ms = (time.monotonic() - started) * 1000
                    ex.chunks.append(frame)
                    yield frame.encode()
                ex.completed = True
            finally:
                ex.duration_ms = (time.monotonic() - started) * 1000

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers=self._headers(started, {"cache-control": "no-cache"}),
        )

    async def _delay_non_streamed(self, plan: _Plan, n_tokens: int) -> None:
        delay = plan.ttft_ms + plan.extra_latency_ms + plan.token_gap_ms * max(n_tokens - 1, 0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)

    async def _accept(
        self, request: Request
    ) -> Response | tuple[Exchange, float, dict[str, Any], str, _Plan]:
        """What every model endpoint does first: record, check auth, JSON and the common
        parameters, decide injected failures; an error answer, or what to go on with."""
        ex, started, body, early = await self._begin(request)
        if early is not None:
            return early
        bad = self._common_checks(ex, started, body)
        if bad is not None:
            return bad
        model = str(body["model"])
        plan = self._plan(model, request.headers)
        if plan.status is not None:
            return self._error(ex, started, plan, model)
        return ex, started, body, model, plan

    def _common_checks(self, ex: Exchange, started: float, body: dict[str, Any]) -> Response | None:
        if not body.get("model"):
            return self._json(ex, started, 400, _invalid("you must provide a model parameter"))
        if body.get("stream_options") is not None and not body.get("stream"):
            return self._json(
                ex,
                started,
                400,
                _invalid(
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    "stream_options",
                    "invalid_value",
                ),
            )
        return None

    # ----------------------------------------------------------------- tools

    @staticmethod
    def _tool_name(tool: Mapping[str, Any]) -> str:
        fn = tool.get("function")
        if isinstance(fn, dict):
            return str(fn.get("name", "tool"))
        return str(tool.get("name", "tool"))

    @staticmethod
    def _tool_params(tool: Mapping[str, Any]) -> Mapping[str, Any]:
        fn = tool.get("function")
        params = (fn.get("parameters") if isinstance(fn, dict) else tool.get("parameters")) or {}
        return params if isinstance(params, dict) else {}

    def _pick_tool(self, body: Mapping[str, Any], last_user: str) -> Mapping[str, Any] | None:
        """The tool the fake model calls, or None to answer with text."""
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        if not tools:
            return None
        choice = body.get("tool_choice")
        if choice == "none":
            return None
        if isinstance(choice, dict):
            wanted = choice.get("name") or (choice.get("function") or {}).get("name")
            for tool in tools:
                if self._tool_name(tool) == wanted:
                    return tool
            return tools[0]
        if choice == "required":
            return tools[0]
        if "weather" in last_user.lower():
            for tool in tools:
                if "weather" in self._tool_name(tool).lower():
                    return tool
            return tools[0]
        return None

    def _tool_arguments(self, tool: Mapping[str, Any], prompt: str) -> str:
        props = self._tool_params(tool).get("properties") or {}
        args: dict[str, Any] = {}
        for name, schema in props.items():
            schema = schema if isinstance(schema, dict) else {}
            kind = schema.get("type")
            if schema.get("enum"):
                args[name] = schema["enum"][0]
            elif name in ("location", "city", "place"):
                match = re.search(r"\bin ([A-Z][\w-]+(?: [A-Z][\w-]+)*)", prompt)
                args[name] = match.group(1) if match else "Paris"
            elif kind in ("integer", "number"):
                args[name] = 1
            elif kind == "boolean":
                args[name] = True
            elif kind == "array":
                args[name] = []
            elif kind == "object":
                args[name] = {}
            else:
                args[name] = "example"
        return json.dumps(args, separators=(",", ":"))

    # ----------------------------------------------------------------- chat

    async def chat_completions(self, request: Request) -> Response:
        accepted = await self._accept(request)
        if isinstance(accepted, Response):
            return accepted
        ex, started, body, model, plan = accepted
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            err = (
                _invalid("Missing required parameter: 'messages'.", "messages",
                         "missing_required_parameter")
                if messages is None
                else _invalid("Invalid 'messages': empty array. Expected an array with minimum "
                              "length 1, but got an empty array instead.", "messages",
                              "empty_array")
            )  # fmt: skip
            return self._json(ex, started, 400, err)

        prompt_tokens = chat_prompt_tokens(messages, body.get("tools"))
        prompt = "\n".join(content_text(m.get("content")) for m in messages)
        last_user = next(
            (content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
            "",
        )
        last_is_tool = messages[-1].get("role") == "tool"
        tool = None if last_is_tool else self._pick_tool(body, last_user)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        n = int(body.get("n") or 1)
        created = int(time.time())
        cid = "chatcmpl-" + uuid.uuid4().hex[:29]
        fingerprint = "fp_" + hashlib.sha256(model.encode()).hexdigest()[:10]
        tier = body.get("service_tier") or "default"
        if tier == "auto":
            tier = "default"

        # choices: (pieces, finish_reason, tool_call or None)
        choices: list[tuple[list[str], str, dict[str, Any] | None]] = []
        for index in range(n):
            if tool is not None:
                args = self._tool_arguments(tool, last_user)
                pieces = _split(args, max(2, count_tokens(args) // 2))
                call = {
                    "id": "call_" + hashlib.sha256(f"{cid}{index}".encode()).hexdigest()[:24],
                    "type": "function",
                    "function": {"name": self._tool_name(tool), "arguments": args},
                }
                choices.append((pieces, "tool_calls", call))
                continue
            pieces = reply_pieces(prompt, model, index, plan.completion_tokens)
            finish = "stop"
            if isinstance(limit, int) and 0 < limit < len(pieces):
                pieces, finish = pieces[:limit], "length"
            choices.append((pieces, finish, None))

        visible = sum(len(p) for p, _, _ in choices)
        reasoning = self._reasoning(plan, model, visible)
        cached = self._cached(plan, prompt_tokens)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": visible + reasoning,
            "total_tokens": prompt_tokens + visible + reasoning,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        ex.usage = usage

        if not body.get("stream"):
            out_choices = []
            for index, (pieces, finish, call) in enumerate(choices):
                message: dict[str, Any] = {
                    "role": "assistant",
                    "content": None if call else "".join(pieces),
                    "refusal": None,
                    "annotations": [],
                }
                if call:
                    message["tool_calls"] = [call]
                out_choices.append(
                    {"index": index, "message": message, "logprobs": None, "finish_reason": finish}
                )
            await self._delay_non_streamed(plan, visible + reasoning)
            ex.usage_sent = True
            return self._json(
                ex,
                started,
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": _resolved_model(model),
                    "choices": out_choices,
                    "usage": usage,
                    "service_tier": tier,
                    "system_fingerprint": fingerprint,
                },
            )

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        include_usage = include_usage and not plan.ignore_include_usage

        def chunk(chs: list[dict[str, Any]], usage_value: Any = None) -> dict[str, Any]:
            out: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": _resolved_model(model),
                "service_tier": tier,
                "system_fingerprint": fingerprint,
                "choices": chs,
            }
            if include_usage:
                out["usage"] = usage_value
            return out

        def choice(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}

        frames: list[tuple[str, bool]] = []
        for index, (pieces, _finish, call) in enumerate(choices):
            if call:
                first = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ],
                    "refusal": None,
                }
                frames.append((self._sse(chunk([choice(index, first)])), False))
                for piece in pieces:
                    delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                    frames.append((self._sse(chunk([choice(index, delta)])), True))
            else:
                first = {"role": "assistant", "content": "", "refusal": None}
                frames.append((self._sse(chunk([choice(index, first)])), False))
                for piece in pieces:
                    frames.append((self._sse(chunk([choice(index, {"content": piece})])), True))
        for index, (_pieces, finish, _call) in enumerate(choices):
            frames.append((self._sse(chunk([choice(index, {}, finish)])), False))
        if include_usage:
            frames.append((self._sse(chunk([], usage)), False))
            ex.usage_sent = True
        frames.append((self._sse("[DONE]"), False))
        return await self._stream(ex, started, plan, frames)

    # ----------------------------------------------------------------- legacy completions

    async def completions(self, request: Request) -> Response:
        accepted = await self._accept(request)
        if isinstance(accepted, Response):
            return accepted
        ex, started, body, model, plan = accepted
        if "prompt" not in body:
            err = _invalid("Missing required parameter: 'prompt'.", "prompt",
                           "missing_required_parameter")  # fmt: skip
            return self._json(ex, started, 400, err)
        raw_prompt = body.get("prompt")
        prompts = raw_prompt if isinstance(raw_prompt, list) else [raw_prompt]
        prompts = [p if isinstance(p, str) else " ".join(map(str, p)) for p in prompts] or [""]
        limit = body.get("max_tokens", 16)
        n = int(body.get("n") or 1)
        created = int(time.time())
        cid = "cmpl-" + uuid.uuid4().hex[:29]
        fingerprint = "fp_" + hashlib.sha256(model.encode()).hexdigest()[:10]
        choices: list[tuple[list[str], str]] = []
        for prompt in prompts:
            for k in range(n):
                pieces = reply_pieces(prompt, model, k, plan.completion_tokens)
                finish = "stop"
                if isinstance(limit, int) and 0 < limit < len(pieces):
                    pieces, finish = pieces[:limit], "length"
                choices.append((pieces, finish))
        prompt_tokens = sum(count_tokens(p) for p in prompts)
        completion = sum(len(p) for p, _ in choices)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }
        ex.usage = usage
        if not body.get("stream"):
            await self._delay_non_streamed(plan, completion)
            ex.usage_sent = True
            return self._json(
                ex,
                started,
                200,
                {
                    "id": cid,
                    "object": "text_completion",
                    "created": created,
                    "model": _resolved_model(model),
                    "system_fingerprint": fingerprint,
                    "choices": [
                        {"text": "".join(p), "index": i, "logprobs": None, "finish_reason": f}
                        for i, (p, f) in enumerate(choices)
                    ],
                    "usage": usage,
                },
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        include_usage = include_usage and not plan.ignore_include_usage

        def chunk(chs: list[dict[str, Any]], usage_value: Any = None) -> str:
            out: dict[str, Any] = {
                "id": cid,
                "object": "text_completion",
                "created": created,
                "model": _resolved_model(model),
                "system_fingerprint": fingerprint,
                "choices": chs,
            }
            if include_usage:
                out["usage"] = usage_value
            return self._sse(out)

        frames: list[tuple[str, bool]] = []
        for i, (pieces, _f) in enumerate(choices):
            for j, piece in enumerate(pieces):
                ch = {"text": piece, "index": i, "logprobs": None, "finish_reason": None}
                frames.append((chunk([ch]), j > 0))
        for i, (_p, finish) in enumerate(choices):
            ch = {"text": "", "index": i, "logprobs": None, "finish_reason": finish}
            frames.append((chunk([ch]), False))
        if include_usage:
            frames.append((chunk([], usage), False))
            ex.usage_sent = True
        frames.append((self._sse("[DONE]"), False))
        return await self._stream(ex, started, plan, frames)

    # ----------------------------------------------------------------- embeddings

    async def embeddings(self, request: Request) -> Response:
        accepted = await self._accept(request)
        if isinstance(accepted, Response):
            return accepted
        ex, started, body, model, plan = accepted
        raw = body.get("input")
        if raw is None or raw == "" or raw == []:
            err = _invalid("'$.input' is invalid. Please check the API reference: "
                           "https://platform.openai.com/docs/api-reference.", "input")  # fmt: skip
            return self._json(ex, started, 400, err)
        if isinstance(raw, str):
            items: list[Any] = [raw]
        elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
            items = [raw]
        else:
            items = list(raw)
        default_dims = 3072 if "large" in model else 1536
        dims = int(body.get("dimensions") or default_dims)
        fmt = body.get("encoding_format") or "float"
        data = []
        prompt_tokens = 0
        for index, item in enumerate(items):
            if isinstance(item, list):
                text = " ".join(map(str, item))
                prompt_tokens += len(item)
            else:
                text = str(item)
                prompt_tokens += count_tokens(text)
            vector = _embedding(text, dims)
            value: Any = vector
            if fmt == "base64":
                value = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": value})
        usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}
        ex.usage = usage
        ex.usage_sent = True
        await self._delay_non_streamed(plan, 0)
        return self._json(
            ex,
            started,
            200,
            {"object": "list", "data": data, "model": _resolved_model(model), "usage": usage},
        )

    # ----------------------------------------------------------------- responses

    async def responses(self, request: Request) -> Response:
        accepted = await self._accept(request)
        if isinstance(accepted, Response):
            return accepted
        ex, started, body, model, plan = accepted
        inp = body.get("input")
        if isinstance(inp, str):
            prompt, last_user = inp, inp
        else:
            items = inp if isinstance(inp, list) else []
            texts = [content_text(i.get("content")) for i in items if isinstance(i, dict)]
            prompt = "\n".join(texts)
            last_user = next(
                (
                    content_text(i.get("content"))
                    for i in reversed(items)
                    if isinstance(i, dict) and i.get("role") == "user"
                ),
                "",
            )
            last_is_tool = (
                bool(items)
                and isinstance(items[-1], dict)
                and (items[-1].get("type") == "function_call_output")
            )
            if last_is_tool:
                last_user = ""
        if isinstance(body.get("instructions"), str):
            prompt = body["instructions"] + "\n" + prompt
        input_tokens = responses_input_tokens(body)
        tool = self._pick_tool(body, last_user) if last_user else None
        if tool is not None and body.get("tool_choice") in (None, "auto"):
            tool = tool if "weather" in last_user.lower() else None
        resp_id = "resp_" + uuid.uuid4().hex
        created = int(time.time())
        limit = body.get("max_output_tokens")
        status, incomplete = "completed", None
        output: list[dict[str, Any]] = []
        if tool is not None:
            args = self._tool_arguments(tool, last_user)
            pieces = _split(args, max(2, count_tokens(args) // 2))
        else:
            pieces = reply_pieces(prompt, model, 0, plan.completion_tokens)
            if isinstance(limit, int) and 0 < limit < len(pieces):
                pieces, status = pieces[:limit], "incomplete"
                incomplete = {"reason": "max_output_tokens"}
        visible = len(pieces)
        reasoning = self._reasoning(plan, model, visible)
        cached = self._cached(plan, input_tokens)
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": visible + reasoning,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": input_tokens + visible + reasoning,
        }
        ex.usage = usage
        if is_reasoning_model(model):
            output.append({"id": "rs_" + uuid.uuid4().hex, "type": "reasoning", "summary": []})
        item_id = ("fc_" if tool is not None else "msg_") + uuid.uuid4().hex
        if tool is not None:
            final_item: dict[str, Any] = {
                "id": item_id,
                "type": "function_call",
                "status": "completed",
                "arguments": "".join(pieces),
                "call_id": "call_" + uuid.uuid4().hex[:24],
                "name": self._tool_name(tool),
            }
        else:
            final_item = {
                "id": item_id,
                "type": "message",
                "status": "completed" if status == "completed" else "incomplete",
                "content": [
                    {
                        "type": "output_text",
                        "annotations": [],
                        "logprobs": [],
                        "text": "".join(pieces),
                    }
                ],
                "role": "assistant",
            }
        output.append(final_item)

        def response_obj(state: str, out: list[dict[str, Any]], use: Any) -> dict[str, Any]:
            return {
                "id": resp_id,
                "object": "response",
                "created_at": created,
                "status": state,
                "background": False,
                "completed_at": int(time.time()) if state == "completed" else None,
                "error": None,
                "incomplete_details": incomplete if state == "incomplete" else None,
                "instructions": body.get("instructions"),
                "max_output_tokens": limit,
                "max_tool_calls": None,
                "model": _resolved_model(model),
                "output": out,
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "previous_response_id": body.get("previous_response_id"),
                "reasoning": {
                    "effort": (body.get("reasoning") or {}).get("effort")
                    or ("medium" if is_reasoning_model(model) else None),
                    "summary": None,
                },
                "service_tier": "default",
                "store": body.get("store", True),
                "temperature": body.get("temperature", 1.0),
                "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools") or [],
                "top_logprobs": 0,
                "top_p": body.get("top_p", 1.0),
                "truncation": body.get("truncation", "disabled"),
                "usage": use,
                "user": body.get("user"),
                "metadata": body.get("metadata") or {},
            }

        if not body.get("stream"):
            await self._delay_non_streamed(plan, visible + reasoning)
            ex.usage_sent = True
            return self._json(ex, started, 200, response_obj(status, output, usage))

        seq = 0
        frames: list[tuple[str, bool]] = []

        def emit(event: dict[str, Any], gap: bool = False) -> None:
            nonlocal seq
            event = {"type": event["type"], "sequence_number": seq, **event}
            seq += 1
            frames.append((self._sse(event, event["type"]), gap))

        emit({"type": "response.created", "response": response_obj("in_progress", [], None)})
        emit({"type": "response.in_progress", "response": response_obj("in_progress", [], None)})
        out_index = 0
        if is_reasoning_model(model):
            reasoning_item = output[0]
            emit({"type": "response.output_item.added", "output_index": 0,
                  "item": reasoning_item})  # fmt: skip
            emit({"type": "response.output_item.done", "output_index": 0,
                  "item": reasoning_item})  # fmt: skip
            out_index = 1
        if tool is not None:
            added = dict(final_item, status="in_progress", arguments="")
            emit({"type": "response.output_item.added", "output_index": out_index, "item": added})
            for i, piece in enumerate(pieces):
                emit(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": item_id,
                        "output_index": out_index,
                        "delta": piece,
                    },
                    gap=i > 0,
                )
            emit(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item_id,
                    "output_index": out_index,
                    "arguments": final_item["arguments"],
                }
            )
        else:
            added = dict(final_item, status="in_progress", content=[])
            emit({"type": "response.output_item.added", "output_index": out_index, "item": added})
            empty_part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
            emit(
                {
                    "type": "response.content_part.added",
                    "item_id": item_id,
                    "output_index": out_index,
                    "content_index": 0,
                    "part": empty_part,
                }
            )
            for i, piece in enumerate(pieces):
                emit(
                    {
                        "type": "response.output_text.delta",
                        "item_id": item_id,
                        "output_index": out_index,
                        "content_index": 0,
                        "delta": piece,
                        "logprobs": [],
                    },
                    gap=i > 0,
                )
            text = "".join(pieces)
            emit(
                {
                    "type": "response.output_text.done",
                    "item_id": item_id,
                    "output_index": out_index,
                    "content_index": 0,
                    "text": text,
                    "logprobs": [],
                }
            )
            emit(
                {
                    "type": "response.content_part.done",
                    "item_id": item_id,
                    "output_index": out_index,
                    "content_index": 0,
                    "part": dict(empty_part, text=text),
                }
            )
        emit({"type": "response.output_item.done", "output_index": out_index, "item": final_item})
        final_type = "response.completed" if status == "completed" else "response.incomplete"
        emit({"type": final_type, "response": response_obj(status, output, usage)})
        ex.usage_sent = True
        return await self._stream(ex, started, plan, frames)

    # ----------------------------------------------------------------- models

    def _model_obj(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1715367049, "owned_by": "system"}

    async def list_models(self, request: Request) -> Response:
        ex, started, _body, early = await self._begin(request)
        if early is not None:
            return early
        data = [self._model_obj(m) for m in self.config.models]
        return self._json(ex, started, 200, {"object": "list", "data": data})

    async def get_model(self, request: Request) -> Response:
        ex, started, _body, early = await self._begin(request)
        if early is not None:
            return early
        name = request.path_params["model"]
        if name not in self.config.models:
            return self._json(ex, started, 404, error_body(404, name))
        return self._json(ex, started, 200, self._model_obj(name))

    async def not_found(self, request: Request) -> Response:
        ex, started, _body, _early = await self._begin(request)
        err = _invalid(f"Invalid URL ({request.method} {request.url.path})")
        return self._json(ex, started, 404, err)


def _resolved_model(model: str) -> str:
    """The model name the API reports back (real OpenAI resolves aliases to snapshots)."""
    snapshots = {
        "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
        "gpt-4o": "gpt-4o-2024-08-06",
        "gpt-4.1": "gpt-4.1-2025-04-14",
        "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
        "o3-mini": "o3-mini-2025-01-31",
    }
    return snapshots.get(model, model)


def create_app(config: UpstreamConfig | None = None) -> Starlette:
    """Build the fake OpenAI upstream ASGI app.

    ``app.state.log`` is its :class:`RequestLog`, ``app.state.config`` its config.
    Routes are served both under ``/v1`` and at the root (like base URLs that
    already include ``/v1``).
    """
    upstream = _Upstream(config or UpstreamConfig())
    routes = []
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/chat/completions", upstream.chat_completions, methods=["POST"]),
            Route(f"{prefix}/completions", upstream.completions, methods=["POST"]),
            Route(f"{prefix}/embeddings", upstream.embeddings, methods=["POST"]),
            Route(f"{prefix}/responses", upstream.responses, methods=["POST"]),
            Route(f"{prefix}/models", upstream.list_models, methods=["GET"]),
            Route(f"{prefix}/models/{{model:path}}", upstream.get_model, methods=["GET"]),
        ]
    routes.append(
        Route("/{path:path}", upstream.not_found, methods=["GET", "POST", "PUT", "DELETE"])
    )
    app = Starlette(routes=routes)
    app.state.log = upstream.log
    app.state.config = upstream.config
    app.state.upstream = upstream
    return app


@contextlib.contextmanager
def serve(app: Starlette | None = None, **config_kwargs: Any) -> Iterator[str]:
    """Run the fake upstream on a free loopback port; yield ``http://127.0.0.1:PORT/v1``.

    Without ``app``, one is built from ``UpstreamConfig(**config_kwargs)``.
    """
    app = app if app is not None else create_app(UpstreamConfig(**config_kwargs))
    with serve_in_thread(app) as url:
        yield url + "/v1"
