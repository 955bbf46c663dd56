"""The per-request plan (``x-fake-*`` headers, ``fake-<status>`` models) and what every
endpoint of the fake upstream shares: recording, checks, headers, SSE streaming, tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gensight.demo.upstream.config import UpstreamConfig
from gensight.demo.upstream.errors import error_body, invalid
from gensight.demo.upstream.recording import Exchange, RequestLog, int_header
from gensight.demo.upstream.text import is_reasoning_model


@dataclass
class Plan:
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
    first_token_ms: float = 0.0
    gzip: bool = False
    request: Request | None = None
    exchange: Exchange | None = None


_FAKE_MODEL_RE = re.compile(r"^fake-(\d{3})(?:-([a-z]+))?$")


class UpstreamBase:
    """What every endpoint shares: config, log and counters; the per-request plan
    (injected failures, delays), response headers, SSE streaming, tool calls."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.log = RequestLog(config.log_limit)
        self.rng = random.Random(config.seed)
        self._fail_counts: dict[str, int] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- plumbing

    def _plan(self, model: str, headers: Mapping[str, str]) -> Plan:
        cfg = self.config
        profile = cfg.profile_for(model)
        plan = Plan(retry_after=int_header(headers, "x-fake-retry-after") or cfg.retry_after_s)
        m = _FAKE_MODEL_RE.match(model or "")
        if m:
            plan.status, plan.variant = int(m.group(1)), m.group(2) or ""
        forced = headers.get("x-fake-status")
        if forced:
            status_text, _, variant = forced.partition("-")
            with contextlib.suppress(ValueError):
                status = int(status_text)
                times = int_header(headers, "x-fake-fail-times")
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
        ttft = int_header(headers, "x-fake-ttft-ms")
        plan.ttft_ms = float(ttft) if ttft is not None else profile.sample_ttft(self.rng)
        plan.token_gap_ms = profile.sample_token_gap(self.rng)
        plan.extra_latency_ms = float(int_header(headers, "x-fake-latency-ms") or 0)
        plan.stall_ms = float(int_header(headers, "x-fake-stall-ms") or 0)
        plan.stream_error_after = int_header(headers, "x-fake-stream-error-after")
        plan.disconnect_after = int_header(headers, "x-fake-disconnect-after")
        plan.completion_tokens = int_header(headers, "x-fake-completion-tokens")
        plan.cached_tokens = int_header(headers, "x-fake-cached-tokens")
        plan.reasoning_tokens = int_header(headers, "x-fake-reasoning-tokens")
        # a delay after the early role/created events, before the first output token
        plan.first_token_ms = float(int_header(headers, "x-fake-first-token-ms") or 0)
        plan.gzip = cfg.gzip_sse and "gzip" in headers.get("accept-encoding", "")
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

    def _error(self, ex: Exchange, started: float, plan: Plan, model: str) -> JSONResponse:
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
            azure = request.headers.get("api-key")
            if auth != f"Bearer {self.config.api_key}" and azure != self.config.api_key:
                return ex, started, body, self._json(ex, started, 401, error_body(401))
        if request.method == "POST" and not isinstance(body, dict):
            err = invalid(
                "We could not parse the JSON body of your request. (HINT: This likely means you "
                "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                "but what was sent was not valid JSON.)"
            )
            return ex, started, body, self._json(ex, started, 400, err)
        return ex, started, body, None

    def _cached(self, plan: Plan, prompt_tokens: int) -> int:
        if plan.cached_tokens is not None:
            return max(0, min(plan.cached_tokens, prompt_tokens))
        return (prompt_tokens // 256) * 128 if prompt_tokens >= 1024 else 0

    def _reasoning(self, plan: Plan, model: str, visible_tokens: int) -> int:
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
        plan: Plan,
        frames: list[tuple[str, bool]],
        first_token: int | None = None,
    ) -> StreamingResponse:
        """Stream pre-rendered SSE ``frames``; each is (text, counts_as_token_gap).

        ``first_token`` is the index of the first frame carrying output (by default the
        first counted as a token gap): ``x-fake-first-token-ms`` waits before it.
        """
        if first_token is None:
            first_token = next((i for i, (_f, gap) in enumerate(frames) if gap), 0)
        ex.status = 200
        ex.stream = True

        gzip = zlib.compressobj(wbits=31) if plan.gzip else None

        def encode(text: str) -> bytes:
            if gzip is None:
                return text.encode()
            return gzip.compress(text.encode()) + gzip.flush(zlib.Z_SYNC_FLUSH)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for piece in frames_out():
                    yield encode(piece)
                if gzip is not None:
                    yield gzip.flush()
            finally:
                ex.duration_ms = (time.monotonic() - started) * 1000

        async def frames_out() -> AsyncIterator[str]:
            if plan.ttft_ms:
                await asyncio.sleep(plan.ttft_ms / 1000)
            stall_at = len(frames) // 2
            for i, (frame, gap) in enumerate(frames):
                if i == first_token and plan.first_token_ms:
                    await asyncio.sleep(plan.first_token_ms / 1000)
                if plan.disconnect_after is not None and i >= plan.disconnect_after:
                    raise ConnectionResetError("x-fake-disconnect-after")
                if plan.stream_error_after is not None and i >= plan.stream_error_after:
                    err = self._sse(error_body(500))
                    ex.chunks.append(err)
                    yield err
                    return
                if i and gap and plan.token_gap_ms:
                    await asyncio.sleep(plan.token_gap_ms / 1000)
                if plan.stall_ms and i == stall_at and i:
                    await asyncio.sleep(plan.stall_ms / 1000)
                if ex.ttft_ms is None:
                    ex.ttft_ms = (time.monotonic() - started) * 1000
                ex.chunks.append(frame)
                yield frame
            ex.completed = True

        extra = {"cache-control": "no-cache"}
        if gzip is not None:
            extra["content-encoding"] = "gzip"
        return StreamingResponse(
            body(), media_type="text/event-stream", headers=self._headers(started, extra)
        )

    async def _delay_non_streamed(self, plan: Plan, n_tokens: int) -> None:
        """Take as long as the model would; a client that hangs up meanwhile is noted
        (``Exchange.abandoned``), as a provider stops generating for it."""
        delay = plan.ttft_ms + plan.extra_latency_ms + plan.token_gap_ms * max(n_tokens - 1, 0)
        end = time.monotonic() + delay / 1000
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))
            if plan.request is not None and await plan.request.is_disconnected():
                if plan.exchange is not None:
                    plan.exchange.abandoned = True
                return

    async def _accept(
        self, request: Request
    ) -> Response | tuple[Exchange, float, dict[str, Any], str, Plan]:
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
        plan.request, plan.exchange = request, ex
        if plan.status is not None:
            return self._error(ex, started, plan, model)
        return ex, started, body, model, plan

    def _common_checks(self, ex: Exchange, started: float, body: dict[str, Any]) -> Response | None:
        if not body.get("model"):
            return self._json(ex, started, 400, invalid("you must provide a model parameter"))
        if self.config.reject_stream_options and "stream_options" in body:
            return self._json(
                ex,
                started,
                400,
                invalid("Unrecognized request argument supplied: stream_options"),
            )
        if body.get("stream_options") is not None and not body.get("stream"):
            return self._json(
                ex,
                started,
                400,
                invalid(
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
