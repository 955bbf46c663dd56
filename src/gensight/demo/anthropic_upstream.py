r"""A fake Anthropic Messages API upstream, faithful enough for the real ``anthropic``
client and the instrumentations that wrap it.

Endpoint: ``POST /v1/messages`` (streamed and not). What the real API does and this
one copies:

* headers: a key is required, as ``x-api-key`` or ``Authorization: Bearer`` (the
  ``anthropic`` client ≥ 2 sends the latter) — 401 ``authentication_error`` without it;
  ``anthropic-version`` too (400 ``invalid_request_error``); every answer carries a
  ``request-id`` header (``req_…``) and the error body repeats it as ``request_id``;
* the body needs ``model``, ``max_tokens`` (an integer ≥ 1) and a non-empty
  ``messages`` list; ``system`` is a string or a list of text blocks;
* the message: ``{"id": "msg_…", "type": "message", "role": "assistant", "model",
  "content": [blocks], "stop_reason", "stop_sequence", "usage": {input_tokens,
  cache_creation_input_tokens, cache_read_input_tokens, output_tokens,
  service_tier}}``; ``input_tokens`` excludes the cached tokens, as Anthropic's does;
* ``stop_reason``: ``end_turn``, ``max_tokens`` (the reply cut at ``max_tokens``) or
  ``tool_use`` (a request with ``tools`` whose last user turn is not a
  ``tool_result`` gets one ``tool_use`` block calling the first tool, unless
  ``tool_choice`` is ``{"type": "none"}``);
* the stream (``"stream": true``): ``message_start`` (usage so far, content empty),
  ``content_block_start``, ``ping``, ``content_block_delta`` (``text_delta`` or
  ``input_json_delta``)…, ``content_block_stop``, ``message_delta`` (``stop_reason``,
  cumulative usage), ``message_stop``; each as ``event: NAME`` + ``data: JSON``;
* errors: ``{"type": "error", "error": {"type", "message"}, "request_id"}`` with the
  real types per status (429 ``rate_limit_error`` with ``retry-after``, 529
  ``overloaded_error``, 500 ``api_error``, …).

* extended thinking (``"thinking": {"type": "enabled", "budget_tokens": N}``): a
  ``thinking`` block (with its ``signature``) before the text; streamed as
  ``thinking_delta``\s then one ``signature_delta``; its tokens are inside
  ``output_tokens`` (Anthropic reports no separate thinking count);
* ``usage.cache_creation`` splits the cache writes into ``ephemeral_5m_input_tokens``
  and ``ephemeral_1h_input_tokens``;
* ``POST /v1/messages/count_tokens`` answers ``{"input_tokens": N}``.

Injection, by request header: ``x-fake-status: 429|529|500|…`` answers that error;
``x-fake-cache-read-tokens`` / ``x-fake-cache-write-tokens`` (5-minute) /
``x-fake-cache-write-1h-tokens`` move that many prompt tokens into
``cache_read_input_tokens`` / ``cache_creation_input_tokens`` (as a prompt with
``cache_control`` would); ``x-fake-retry-after`` sets ``retry-after``;
``x-fake-stream-error: overloaded_error`` ends a stream after its first delta with an
``error`` event of that type, as the real API does when it is overloaded mid-answer.

Deterministic: the prompt's token count is :func:`anthropic_input_tokens`; the reply is
:func:`gensight.demo.upstream.reply_pieces` of the prompt, one token per piece.
``app.state.log`` records every exchange (:class:`gensight.demo.upstream.Exchange`,
``usage`` being the Anthropic usage object).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gensight.demo.serve import serve_in_thread
from gensight.demo.upstream import Exchange, count_tokens, reply_pieces
from gensight.demo.upstream.native import NativeFake
from gensight.demo.upstream.recording import int_header

__all__ = ["ERROR_TYPES", "anthropic_input_tokens", "create_app", "error_body", "serve"]

#: The error ``type`` the real API answers with, per status.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_MESSAGES = {
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit "
    "(https://docs.anthropic.com/en/api/rate-limits); see the response headers for current "
    "usage. Please reduce the prompt length or the maximum tokens requested, or try again "
    "later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss "
    "your options for a rate limit increase.",
    "overloaded_error": "Overloaded",
    "api_error": "Internal server error",
    "authentication_error": "invalid x-api-key",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
}


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex[:24]


def error_body(status: int, message: str | None = None, request_id: str = "") -> dict[str, Any]:
    """The JSON body the real Anthropic API answers with for ``status``."""
    etype = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {
        "type": "error",
        "error": {"type": etype, "message": message or _MESSAGES.get(etype, etype)},
        "request_id": request_id or _request_id(),
    }


def _block_text(block: Any) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, Mapping):
        return ""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text") or "")
    if kind == "tool_use":
        return f"{block.get('name', '')} {json.dumps(block.get('input') or {}, sort_keys=True)}"
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            return " ".join(_block_text(b) for b in content)
        return str(content or "")
    return ""


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(_block_text(b) for b in content)
    return _block_text(content)


def anthropic_input_tokens(body: Mapping[str, Any]) -> int:
    """Prompt tokens of a Messages request: system + per message (3 + its tokens) + tools."""
    total = 4 + count_tokens(_content_text(body.get("system")))
    for message in body.get("messages") or []:
        if isinstance(message, Mapping):
            total += 3 + count_tokens(_content_text(message.get("content")))
    if body.get("tools"):
        total += count_tokens(json.dumps(body["tools"], sort_keys=True))
    return total


def _wants_tool(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The tool the model calls: the first one, unless the last user turn answers a tool."""
    tools = body.get("tools")
    choice = body.get("tool_choice") or {}
    if not tools or (isinstance(choice, Mapping) and choice.get("type") == "none"):
        return None
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content") if isinstance(last, Mapping) else None
    if isinstance(content, list) and any(
        isinstance(b, Mapping) and b.get("type") == "tool_result" for b in content
    ):
        return None
    if isinstance(choice, Mapping) and choice.get("type") == "tool":
        named = [t for t in tools if isinstance(t, Mapping) and t.get("name") == choice.get("name")]
        return named[0] if named else None
    return tools[0] if isinstance(tools[0], Mapping) else None


def _tool_input(tool: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments for ``tool`` from its schema: each required property gets a plain value."""
    schema = tool.get("input_schema") or {}
    props = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for name in schema.get("required") or list(props)[:1]:
        kind = (props.get(name) or {}).get("type")
        out[name] = 1 if kind in ("integer", "number") else True if kind == "boolean" else "Paris"
    return out


#: usage keys the real API leaves out of ``message_delta``'s usage
_NOT_IN_DELTA = ("service_tier", "cache_creation")


def _thinking(body: Mapping[str, Any], prompt: str, model: str) -> list[str] | None:
    """The thinking pieces of a request that enabled extended thinking (else None)."""
    config = body.get("thinking")
    if not isinstance(config, Mapping) or config.get("type") != "enabled":
        return None
    budget = int_header({"b": str(config.get("budget_tokens"))}, "b") or 1024
    return reply_pieces("think: " + prompt, model)[: max(1, min(budget, 24))]


def _signature(prompt: str) -> str:
    return "EqQBCkgIARABGAIiQ" + uuid.uuid5(uuid.NAMESPACE_URL, prompt).hex


def _block_events(
    index: int, first: dict[str, Any], delta_type: str, key: str, pieces: Sequence[str]
) -> list[tuple[str, dict[str, Any]]]:
    """``content_block_start``, one ``content_block_delta`` per piece, ``content_block_stop``."""
    start = {"type": "content_block_start", "index": index, "content_block": first}
    deltas = [
        ("content_block_delta",
         {"type": "content_block_delta", "index": index, "delta": {"type": delta_type, key: p}})
        for p in pieces
    ]  # fmt: skip
    stop = ("content_block_stop", {"type": "content_block_stop", "index": index})
    return [("content_block_start", start), *deltas, stop]


class _Anthropic(NativeFake):
    def _error(
        self, ex: Exchange, status: int, message: str | None = None, **headers: str
    ) -> Response:
        rid = _request_id()
        ex.status = status
        ex.response = error_body(status, message, rid)
        ex.completed = True
        self.log.add(ex)
        return JSONResponse(ex.response, status_code=status, headers={"request-id": rid, **headers})

    async def messages(self, request: Request) -> Response:
        started = time.perf_counter()
        raw = await request.body()
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        ex = Exchange(
            id=uuid.uuid4().hex, ts=time.time(), method="POST", path=request.url.path,
            headers=headers, body=body,
        )  # fmt: skip
        bearer = headers.get("authorization", "")
        if not headers.get("x-api-key") and not bearer.lower().startswith("bearer "):
            return self._error(ex, 401, "x-api-key header is required")
        if not headers.get("anthropic-version"):
            return self._error(ex, 400, "anthropic-version: header is required")
        if not isinstance(body, dict):
            return self._error(ex, 400, "The request body is not valid JSON.")
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return self._error(ex, 400, f"{name}: Field required")
        max_tokens = body["max_tokens"]
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            return self._error(ex, 400, "max_tokens: Input should be a valid integer >= 1")
        if not isinstance(body["messages"], list) or not body["messages"]:
            return self._error(ex, 400, "messages: at least one message is required")
        forced = int_header(headers, "x-fake-status")
        if forced and forced >= 400:
            extra = {}
            if forced in (429, 529):
                extra["retry-after"] = str(int_header(headers, "x-fake-retry-after") or 1)
            return self._error(ex, forced, **extra)

        model = str(body["model"])
        prompt = anthropic_input_tokens(body)
        cache_read = min(int_header(headers, "x-fake-cache-read-tokens") or 0, prompt)
        write_5m = min(int_header(headers, "x-fake-cache-write-tokens") or 0, prompt - cache_read)
        write_1h = min(
            int_header(headers, "x-fake-cache-write-1h-tokens") or 0,
            prompt - cache_read - write_5m,
        )
        cache_write = write_5m + write_1h
        tool = _wants_tool(body)
        text = " ".join(_content_text(m.get("content")) for m in body["messages"])
        if tool is not None:
            args = _tool_input(tool)
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": "toolu_" + uuid.uuid5(uuid.NAMESPACE_OID, text).hex[:24],
                "name": tool.get("name"),
                "input": args,
            }
            pieces = [json.dumps(args)]
            output_tokens = 8 + count_tokens(pieces[0])
            stop_reason = "tool_use"
        else:
            pieces = reply_pieces(text, model)
            stop_reason = "end_turn"
            if len(pieces) > max_tokens:
                pieces, stop_reason = pieces[:max_tokens], "max_tokens"
            block = {"type": "text", "text": "".join(pieces)}
            output_tokens = len(pieces)
        thinking = _thinking(body, text, model)
        if thinking is not None:
            output_tokens += len(thinking)
        usage = {
            "input_tokens": prompt - cache_read - cache_write,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": write_5m,
                "ephemeral_1h_input_tokens": write_1h,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        blocks = [block]
        if thinking is not None:
            blocks.insert(0, {"type": "thinking", "thinking": "".join(thinking),
                              "signature": _signature(text)})  # fmt: skip
        message = {
            "id": "msg_01" + uuid.uuid4().hex[:22],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        rid = _request_id()
        resp_headers = {"request-id": rid, "anthropic-organization-id": "org-fake"}
        ex.status, ex.usage, ex.response = 200, usage, message
        ex.stream = bool(body.get("stream"))
        if not ex.stream:
            ex.usage_sent = ex.completed = True
            ex.duration_ms = (time.perf_counter() - started) * 1000
            self.log.add(ex)
            return JSONResponse(message, headers=resp_headers)
        self.log.add(ex)
        return StreamingResponse(
            self._stream(
                ex, message, pieces, started, headers.get("x-fake-stream-error"), thinking
            ),
            media_type="text/event-stream",
            headers={**resp_headers, "cache-control": "no-cache"},
        )

    async def _stream(
        self,
        ex: Exchange,
        message: dict[str, Any],
        pieces: Sequence[str],
        started: float,
        stream_error: str | None = None,
        thinking: Sequence[str] | None = None,
    ) -> AsyncIterator[bytes]:
        block = message["content"][-1]
        usage = message["usage"]
        start = dict(message, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start}),
        ]
        index = 0
        if thinking is not None:
            events += _block_events(
                0, {"type": "thinking", "thinking": "", "signature": ""},
                "thinking_delta", "thinking", thinking,
            )  # fmt: skip
            sig = {"type": "signature_delta", "signature": message["content"][0]["signature"]}
            delta = {"type": "content_block_delta", "index": 0, "delta": sig}
            events.insert(-1, ("content_block_delta", delta))
            index = 1
        if block["type"] == "tool_use":
            first, delta_type, key = dict(block, input={}), "input_json_delta", "partial_json"
        else:
            first, delta_type, key = {"type": "text", "text": ""}, "text_delta", "text"
        events += _block_events(index, first, delta_type, key, pieces)
        events.insert(2, ("ping", {"type": "ping"}))
        events += [
            ("message_delta", {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {k: v for k, v in usage.items() if k not in _NOT_IN_DELTA},
            }),
            ("message_stop", {"type": "message_stop"}),
        ]  # fmt: skip
        if stream_error:
            cut = next(i for i, (n, _) in enumerate(events) if n == "content_block_delta") + 1
            err = error_body(529 if stream_error == "overloaded_error" else 500)
            err["error"]["type"] = stream_error
            err.pop("request_id")
            events = [*events[:cut], ("error", err)]
        for name, data in events:
            chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n"
            if name == "content_block_delta" and ex.ttft_ms is None:
                ex.ttft_ms = (time.perf_counter() - started) * 1000
            ex.chunks.append(chunk)
            yield chunk.encode()
        ex.usage_sent = not stream_error
        ex.completed = True
        ex.duration_ms = (time.perf_counter() - started) * 1000

    async def count_tokens(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"null")
        ex = Exchange(
            id=uuid.uuid4().hex, ts=time.time(), method="POST", path=request.url.path,
            headers=dict(request.headers), body=body,
        )  # fmt: skip
        if not isinstance(body, dict) or "messages" not in body or "model" not in body:
            return self._error(ex, 400, "model and messages: Field required")
        ex.status, ex.completed = 200, True
        self.log.add(ex)
        return JSONResponse(
            {"input_tokens": anthropic_input_tokens(body)}, headers={"request-id": _request_id()}
        )


def create_app() -> Starlette:
    """Build the fake Anthropic upstream ASGI app (``app.state.log`` is its RequestLog).

    Served under ``/v1`` (the ``anthropic`` client's base URL is the host; it adds ``/v1``).
    """
    upstream = _Anthropic()
    return upstream.app(
        [
            Route("/v1/messages", upstream.messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", upstream.count_tokens, methods=["POST"]),
        ]
    )


@contextlib.contextmanager
def serve(app: Starlette | None = None) -> Iterator[str]:
    """Run the fake Anthropic upstream on a free loopback port; yield ``http://127.0.0.1:PORT``."""
    with serve_in_thread(app if app is not None else create_app()) as url:
        yield url
