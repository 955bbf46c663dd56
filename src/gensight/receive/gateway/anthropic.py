"""Anthropic's Messages API as the gateway reads it (``POST /v1/messages``).

A call is ``POST …/v1/messages``, streamed (``"stream": true``) or not; other paths
(``/v1/messages/count_tokens``, ``/v1/models``, batches) are forwarded and recorded as
spans only. Nothing is rewritten: the client gets the upstream's bytes.

Read from the answer:

* the message's ``id``, ``model``, ``content`` blocks (``text``, ``tool_use``,
  ``thinking``) and ``stop_reason`` (kept as Anthropic spells it: ``end_turn``,
  ``tool_use``, ``max_tokens``…);
* a stream's events: ``message_start`` (id, model, usage so far), ``content_block_start``
  / ``content_block_delta`` (``text_delta``, ``input_json_delta``, ``thinking_delta``) /
  ``content_block_stop``, ``message_delta`` (stop reason; its usage is cumulative, so it
  replaces what came before), ``message_stop``, ``ping`` and ``error`` (an
  ``overloaded_error`` mid-stream makes the call an error of that class);
* usage: Anthropic's ``input_tokens`` leaves the cached tokens out, so the record's
  input is ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``
  (the semconv rule); cache read and cache write as reported; output is
  ``output_tokens``, which already counts thinking (Anthropic does not report thinking
  tokens apart, so ``reasoning_tokens`` stays null). The 5-minute / 1-hour split of
  cache writes (``usage.cache_creation``) is kept as attributes.

Time to first token is the first ``content_block_delta``.
"""

from __future__ import annotations

from typing import Any

from gensight.model.records import CallRecord
from gensight.receive.gateway import tools as tool_definitions
from gensight.receive.gateway.messages import _elide, assistant_message
from gensight.receive.gateway.native import (
    NativeCapture,
    as_float,
    as_int,
    parse_object,
    to_json,
)

#: ``usage.cache_creation`` keys, kept as attributes under this prefix (the 1-hour
#: writes' one is what the pricer reads, ``gensight.enrich.pricing.CACHE_WRITE_1H``).
CACHE_CREATION_PREFIX = "anthropic.usage.cache_creation."


def operation_for(method: str, path: str) -> str | None:
    """``chat`` for ``POST …/messages``; None for every other Anthropic endpoint."""
    return "chat" if method == "POST" and path.rstrip("/").endswith("/messages") else None


def _text_of(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [b.get("text") for b in content if isinstance(b, dict) and b.get("type") == "text"]
        texts = [t for t in texts if isinstance(t, str)]
        if texts:
            return "\n".join(texts)
        return to_json([_elide(b) for b in content]) if content else None
    return None if content is None else to_json(content)


def request_messages(messages: Any) -> list[dict[str, Any]]:
    """Request messages in the record's shape: text as content, ``tool_use`` blocks as
    tool calls, each ``tool_result`` as a ``tool`` message, other blocks (images,
    documents) as parts with inline payloads elided."""
    out: list[dict[str, Any]] = []
    for m in messages if isinstance(messages, list) else ():
        if not isinstance(m, dict):
            continue
        role = m.get("role") or "user"
        content = m.get("content")
        if not isinstance(content, list):
            out.append({"role": role, "content": _text_of(content)})
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        thinking: list[str] = []
        parts: list[Any] = []
        for b in content:
            kind = b.get("type") if isinstance(b, dict) else None
            if kind == "text" and isinstance(b.get("text"), str):
                texts.append(b["text"])
            elif kind == "tool_use":
                calls.append(
                    {"id": b.get("id"), "name": b.get("name"), "arguments": to_json(b.get("input"))}
                )
            elif kind == "tool_result":
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": b.get("tool_use_id"),
                        "content": _text_of(b.get("content")),
                    }
                )
            elif kind == "thinking" and isinstance(b.get("thinking"), str):
                thinking.append(b["thinking"])
            elif isinstance(b, str):
                texts.append(b)
            elif b is not None:
                parts.append(_elide(b))
        if texts or calls or parts or thinking:
            item: dict[str, Any] = {"role": role, "content": "\n".join(texts) if texts else None}
            if calls:
                item["tool_calls"] = calls
            if thinking:
                item["reasoning"] = "".join(thinking)
            if parts:
                item["parts"] = parts
            out.append(item)
    return out


class AnthropicCapture(NativeCapture):
    """One Messages API call, read from its request and answer."""

    def __init__(self, method: str, path: str, body: bytes) -> None:
        req = parse_object(body) if body.lstrip()[:1] == b"{" else None
        super().__init__(operation_for(method, path), req, body)
        r = req or {}
        self.stream = r.get("stream") is True
        self.model = r["model"] if isinstance(r.get("model"), str) else None
        self._usage: dict[str, Any] = {}
        self._blocks: dict[int, dict[str, Any]] = {}  # index -> content block
        self._pieces: dict[int, list[str]] = {}  # index -> streamed deltas
        self._stop: str | None = None

    # -- answer ----------------------------------------------------------------
    def on_body(self, body: bytes) -> None:
        m = parse_object(body)
        if m is None:
            return
        self._message(m)
        for i, block in enumerate(m.get("content") or ()):
            if isinstance(block, dict):
                self._blocks[i] = block
        self._set_stop(m.get("stop_reason"))

    def on_event(self, event: str | None, data: bytes) -> bool:
        d = parse_object(data)
        if d is None:
            return False
        kind = event or d.get("type")
        if kind == "content_block_delta":
            self.token_seen()
            delta = d.get("delta") if isinstance(d.get("delta"), dict) else {}
            piece = delta.get("text", delta.get("partial_json", delta.get("thinking")))
            if isinstance(piece, str):
                self._pieces.setdefault(as_int(d.get("index")) or 0, []).append(piece)
        elif kind == "content_block_start":
            block = d.get("content_block")
            if isinstance(block, dict):
                self._blocks[as_int(d.get("index")) or 0] = block
        elif kind == "message_start":
            if isinstance(d.get("message"), dict):
                self._message(d["message"])
        elif kind == "message_delta":
            delta = d.get("delta") if isinstance(d.get("delta"), dict) else {}
            self._set_stop(delta.get("stop_reason"))
            if isinstance(d.get("usage"), dict):
                self._apply_usage(d["usage"])
        elif kind == "error":
            err = d.get("error") if isinstance(d.get("error"), dict) else d
            self.stream_error(str(err.get("type") or "stream_error"), d)
        return False

    def _message(self, m: dict[str, Any]) -> None:
        if self.response_id is None and isinstance(m.get("id"), str):
            self.response_id = m["id"]
        if isinstance(m.get("model"), str):
            self.response_model = m["model"]
        if isinstance(m.get("usage"), dict):
            self._apply_usage(m["usage"])

    def _set_stop(self, reason: Any) -> None:
        if isinstance(reason, str) and reason:
            self._stop = reason
            self.finish_reasons = [reason]

    def _apply_usage(self, usage: dict[str, Any]) -> None:
        """Merge a usage object (``message_delta``'s is cumulative: it overrides)."""
        for key, value in usage.items():
            if value is not None:
                self._usage[key] = value
        u = self._usage
        base = as_int(u.get("input_tokens"))
        write = as_int(u.get("cache_creation_input_tokens"))
        read = as_int(u.get("cache_read_input_tokens"))
        self.input_tokens = None if base is None else base + (write or 0) + (read or 0)
        self.cache_write = write
        self.cache_read = read
        self.output_tokens = as_int(u.get("output_tokens"))
        split = u.get("cache_creation")
        if isinstance(split, dict):
            for key, value in split.items():
                if as_int(value) is not None:
                    self.attrs[CACHE_CREATION_PREFIX + key] = as_int(value)
        if isinstance(u.get("service_tier"), str):
            self.attrs["anthropic.usage.service_tier"] = u["service_tier"]
        tools = u.get("server_tool_use")
        if isinstance(tools, dict) and as_int(tools.get("web_search_requests")) is not None:
            self.attrs["anthropic.usage.web_search_requests"] = tools["web_search_requests"]

    # -- results ---------------------------------------------------------------
    def outputs(self) -> list[dict[str, Any]] | None:
        if not self._blocks and not self._pieces:
            return None
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        thinking: list[str] = []
        for i in sorted(set(self._blocks) | set(self._pieces)):
            block = self._blocks.get(i, {})
            kind = block.get("type")
            pieces = self._pieces.get(i)
            streamed = "".join(pieces) if pieces is not None else None
            if kind in ("tool_use", "server_tool_use"):
                args = streamed if streamed is not None else to_json(block.get("input"))
                calls.append({"id": block.get("id"), "name": block.get("name"), "arguments": args})
            elif kind == "thinking":
                thinking.append(streamed if streamed is not None else str(block.get("thinking")))
            elif kind == "text":
                texts.append(streamed if streamed is not None else str(block.get("text") or ""))
        message = assistant_message("".join(texts) if texts else None, calls, self._stop)
        if thinking:
            message["reasoning"] = "".join(thinking)
        return [message]

    def input_messages(self) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
        req = self.request or {}
        system = req.get("system")
        text = _text_of(system)
        instructions = [{"role": "system", "content": text}] if text else None
        return request_messages(req.get("messages")) or None, instructions

    def params(self, call: CallRecord) -> None:
        req = self.request or {}
        call.temperature = as_float(req.get("temperature"))
        call.top_p = as_float(req.get("top_p"))
        call.max_tokens = as_int(req.get("max_tokens"))
        attrs = call.attributes
        if as_int(req.get("top_k")) is not None:
            attrs["gen_ai.request.top_k"] = as_int(req.get("top_k"))
        if isinstance(req.get("stop_sequences"), list):
            attrs["gen_ai.request.stop_sequences"] = to_json(req["stop_sequences"])
        tool_definitions.record(attrs, req.get("tools"), "anthropic")
        choice = req.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type"):
            attrs["gen_ai.request.tool_choice"] = choice["type"]
        thinking = req.get("thinking")
        if isinstance(thinking, dict) and as_int(thinking.get("budget_tokens")) is not None:
            attrs["anthropic.request.thinking.budget_tokens"] = thinking["budget_tokens"]
        meta = req.get("metadata")
        if call.user is None and isinstance(meta, dict) and isinstance(meta.get("user_id"), str):
            call.user = meta["user_id"]
