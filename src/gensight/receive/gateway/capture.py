"""What one call was, read from the OpenAI-API request and response it carried.

``Capture`` is built from the request body, fed the response (a JSON body, or the
events of a stream one at a time, so a stream is never held whole), and finally
fills a ``CallRecord``: operation, model, request parameters, usage (cached and
reasoning tokens included), finish reasons, response id and model, and the messages
in the shape of ``gensight.conventions.messages`` (the same the OTLP mappers store;
the OpenAI wire's messages are shaped by ``gateway.messages``).

Understood: chat completions (streamed and not, tools, multimodal parts), legacy
completions, embeddings and the Responses API (streamed events and not). Any other
POST with a JSON ``model`` is a call named after its path (``images.generations``,
``audio.speech``…); everything else (``GET /models``, files…) is not a call.
"""

from __future__ import annotations

from typing import Any

import orjson

from gensight.conventions import messages as msg
from gensight.conventions.errors import classify
from gensight.enrich import fingerprint, tokens
from gensight.model.records import CallRecord
from gensight.receive.gateway import tools as tool_definitions
from gensight.receive.gateway.errors import content_free
from gensight.receive.gateway.messages import (
    assistant_message,
    chat_messages,
    responses_input,
    responses_output,
)

#: Path suffixes of the endpoints understood, longest first.
_OPERATIONS = (
    ("chat/completions", "chat"),
    ("completions", "text_completion"),
    ("embeddings", "embeddings"),
    ("responses", "responses"),
)

#: Request parameters kept as attributes (semconv names where one exists).
_EXTRA_PARAMS = {
    "n": "gen_ai.request.choice.count",
    "stop": "gen_ai.request.stop_sequences",
    "tool_choice": "gen_ai.request.tool_choice",
    "parallel_tool_calls": "gen_ai.request.parallel_tool_calls",
    "reasoning_effort": "gen_ai.request.reasoning_effort",
    "service_tier": "gen_ai.openai.request.service_tier",
    "logprobs": "gen_ai.request.logprobs",
    "top_logprobs": "gen_ai.request.top_logprobs",
    "dimensions": "gen_ai.embeddings.dimension.count",
    "encoding_format": "gen_ai.request.encoding_formats",
    "previous_response_id": "gen_ai.openai.request.previous_response_id",
    "truncation": "gen_ai.openai.request.truncation",
}

#: Embedding inputs stored as messages at most (a batch can hold thousands).
MAX_EMBEDDING_INPUTS = 64


def operation_for(method: str, path: str) -> str | None:
    """The operation a request path names, for the endpoints understood; else None."""
    if method != "POST":
        return None
    p = path.strip("/")
    for suffix, op in _OPERATIONS:
        if p == suffix or p.endswith("/" + suffix):
            return op
    return None


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


class _Choice:
    """One streamed chat/completion choice being assembled."""

    __slots__ = ("content", "finish", "refusal", "role", "tools")

    def __init__(self) -> None:
        self.role: str | None = None
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tools: dict[int, list[Any]] = {}  # index -> [id, name, [argument pieces]]
        self.finish: str | None = None

    def message(self) -> dict[str, Any]:
        text = "".join(self.content) or "".join(self.refusal) or None
        calls = [
            {"id": t[0], "name": t[1], "arguments": "".join(t[2])}
            for _, t in sorted(self.tools.items())
        ]
        m = assistant_message(text, calls, self.finish)
        if self.role and self.role != "assistant":
            m["role"] = self.role
        return m


class Capture:
    """Everything learned about one call, from its request to its last byte."""

    __slots__ = (
        "_choices",
        "_final",
        "_items",
        "_item_text",
        "_outputs",
        "error_message",
        "error_type",
        "has_output",
        "injected_usage",
        "operation",
        "request",
        "request_body",
        "response_attrs",
        "response_id",
        "response_model",
        "stream",
        "upstream_body",
        "usage",
    )

    def __init__(self, method: str, path: str, body: bytes) -> None:
        self.request: dict[str, Any] | None = None  # as recorded (clipped to MAX_DEPTH)
        sent: dict[str, Any] | None = None  # as the client sent it
        if body[:1] == b"{" or body.lstrip()[:1] == b"{":
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                sent, self.request = parsed, msg.clip_depth(parsed)
        req = self.request or {}
        op = operation_for(method, path)
        if op is None and method == "POST" and isinstance(req.get("model"), str):
            op = ".".join(s for s in path.strip("/").split("/") if s) or None
        self.operation = op
        self.stream = req.get("stream") is True
        self.request_body = body
        self.upstream_body = body
        self.injected_usage = False
        if op in ("chat", "text_completion") and self.stream:
            options = req.get("stream_options")
            if not (isinstance(options, dict) and options.get("include_usage")):
                # Ask for usage; the extra chunk is removed before the client sees it.
                options = dict(options) if isinstance(options, dict) else {}
                options["include_usage"] = True
                try:
                    self.upstream_body = orjson.dumps(dict(sent or {}, stream_options=options))
                    self.injected_usage = True
                except orjson.JSONEncodeError:  # nested past orjson's limit: sent as it came
                    pass
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.response_attrs: dict[str, Any] = {}
        self.usage: dict[str, Any] | None = None
        self.error_type: str | None = None
        self.error_message: str | None = None
        #: Whether a streamed event carried output yet (text, tool-call arguments,
        #: reasoning): the first one is the first token, what TTFT measures.
        self.has_output = False
        self._choices: dict[int, _Choice] = {}
        self._final: dict[str, Any] | None = None  # Responses API: the final response object
        self._items: dict[int, dict[str, Any]] = {}  # Responses API: finished output items
        self._item_text: dict[str, list[str]] = {}  # Responses API: deltas by item id
        self._outputs: list[dict[str, Any]] | None = None

    def body_for(self, inject: bool) -> bytes:
        """The body of the next attempt: with the usage request (when one was added) or
        as the client sent it, for an upstream that rejects ``stream_options``."""
        if not inject and self.upstream_body is not self.request_body:
            self.injected_usage = False
            return self.request_body
        self.injected_usage = self.upstream_body is not self.request_body
        return self.upstream_body

    @property
    def is_call(self) -> bool:
        """Whether this request is an LLM call (else it is recorded as a span only)."""
        return self.operation is not None

    # -- response ----------------------------------------------------------
    def on_body(self, body: bytes) -> None:
        """A whole non-streamed 2xx JSON body."""
        try:
            data = msg.clip_depth(orjson.loads(body))
        except orjson.JSONDecodeError:
            return
        if not isinstance(data, dict):
            return
        self._meta(data)
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        op = self.operation
        if op == "responses":
            self._final = data
        elif op in ("chat", "text_completion"):
            outputs = []
            for i, c in enumerate(data.get("choices") or ()):
                if not isinstance(c, dict):
                    continue
                m = c.get("message")
                if isinstance(m, dict):  # chat
                    out = msg.normalize_message(m, "assistant")
                    if c.get("finish_reason") is not None:
                        out["finish_reason"] = c["finish_reason"]
                    outputs.append(out)
                else:  # legacy completions
                    ch = self._choices[_int(c.get("index")) or i] = _Choice()
                    ch.content.append(str(c.get("text") or ""))
                    ch.finish = c.get("finish_reason")
            if outputs:
                self._outputs = outputs

    def on_event(self, event: str | None, data: bytes) -> bool:
        """One streamed event; True when it is the usage chunk the client did not ask for."""
        if data == b"[DONE]":
            return False
        try:
            d = msg.clip_depth(orjson.loads(data))
        except orjson.JSONDecodeError:
            return False
        if not isinstance(d, dict):
            return False
        if self.operation == "responses":
            kind = event or d.get("type")
            if not self.has_output and isinstance(kind, str) and kind.endswith(".delta"):
                self.has_output = bool(d.get("delta"))
            self._responses_event(kind, d)
            return False
        if "error" in d and d["error"]:
            self._stream_error(d["error"])
            return False
        self._meta(d)
        choices = d.get("choices")
        usage = d.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
            if self.injected_usage and not choices:
                return True
        for c in choices or ():
            if not isinstance(c, dict):
                continue
            idx = _int(c.get("index")) or 0
            ch = self._choices.get(idx)
            if ch is None:
                ch = self._choices[idx] = _Choice()
            delta = c.get("delta")
            if isinstance(delta, dict):
                if delta.get("role"):
                    ch.role = delta["role"]
                if isinstance(delta.get("content"), str):
                    ch.content.append(delta["content"])
                if isinstance(delta.get("refusal"), str):
                    ch.refusal.append(delta["refusal"])
                if not self.has_output:
                    self.has_output = _carries_output(delta)
                for tc in delta.get("tool_calls") or ():
                    if not isinstance(tc, dict):
                        continue
                    slot = ch.tools.setdefault(_int(tc.get("index")) or 0, [None, None, []])
                    fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
                    slot[0] = tc.get("id") or slot[0]
                    slot[1] = fn.get("name") or slot[1]
                    if isinstance(fn.get("arguments"), str):
                        slot[2].append(fn["arguments"])
            elif isinstance(c.get("text"), str):  # legacy completions
                ch.content.append(c["text"])
                self.has_output = self.has_output or bool(c["text"])
            if c.get("finish_reason"):
                ch.finish = c["finish_reason"]
        return False

    def _meta(self, d: dict[str, Any]) -> None:
        if self.response_id is None and isinstance(d.get("id"), str):
            self.response_id = d["id"]
        if isinstance(d.get("model"), str):
            self.response_model = d["model"]
        if d.get("system_fingerprint"):
            self.response_attrs["gen_ai.openai.response.system_fingerprint"] = d[
                "system_fingerprint"
            ]
        if d.get("service_tier"):
            self.response_attrs["gen_ai.openai.response.service_tier"] = d["service_tier"]

    def _stream_error(self, err: Any) -> None:
        if isinstance(err, dict):
            self.error_type = str(err.get("type") or err.get("code") or "stream_error")
            self.error_message = orjson.dumps({"error": err}).decode()
        else:
            self.error_type, self.error_message = "stream_error", str(err)

    def _responses_event(self, kind: str | None, d: dict[str, Any]) -> None:
        resp = d.get("response")
        if isinstance(resp, dict):
            self._meta(resp)
            if isinstance(resp.get("usage"), dict):
                self.usage = resp["usage"]
            if kind in ("response.completed", "response.incomplete", "response.failed"):
                self._final = resp
                err = resp.get("error")
                if err:
                    self._stream_error(err)
            return
        if kind in ("response.output_text.delta", "response.function_call_arguments.delta"):
            self._item_text.setdefault(str(d.get("item_id")), []).append(str(d.get("delta", "")))
        elif kind in ("response.output_item.added", "response.output_item.done"):
            item = d.get("item")
            if isinstance(item, dict):
                self._items[_int(d.get("output_index")) or 0] = item
        elif kind == "error":
            self._stream_error({k: v for k, v in d.items() if k not in ("type", "sequence_number")})

    # -- results -----------------------------------------------------------
    def outputs(self) -> list[dict[str, Any]] | None:
        """The assistant messages received (partial ones too, for a cut stream)."""
        if self._outputs is not None:
            return self._outputs
        if self.operation == "responses":
            if self._final is not None:
                self._outputs = responses_output(self._final)
            elif self._items or self._item_text:
                self._outputs = self._partial_responses_output()
        elif self._choices:
            self._outputs = [self._choices[i].message() for i in sorted(self._choices)]
        return self._outputs

    def _partial_responses_output(self) -> list[dict[str, Any]]:
        output = []
        for _, item in sorted(self._items.items()):
            item = dict(item)
            pieces = self._item_text.get(str(item.get("id")))
            if item.get("type") == "message" and not item.get("content") and pieces:
                item["content"] = [{"type": "output_text", "text": "".join(pieces)}]
            elif item.get("type") == "function_call" and not item.get("arguments") and pieces:
                item["arguments"] = "".join(pieces)
            output.append(item)
        return responses_output({"status": "in_progress", "output": output})

    def input_messages(self) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
        """``(input messages, system instructions)`` of the request."""
        req = self.request or {}
        op = self.operation
        if op == "chat":
            return msg.messages_from_value(chat_messages(req.get("messages")), "user"), None
        if op == "responses":
            system = None
            if isinstance(req.get("instructions"), str):
                system = [{"role": "system", "content": req["instructions"]}]
            return msg.messages_from_value(responses_input(req.get("input")), "user"), system
        if op == "text_completion":
            prompt = req.get("prompt")
            prompts = prompt if isinstance(prompt, list) else [prompt]
            return [{"role": "user", "content": p} for p in prompts if isinstance(p, str)], None
        if op == "embeddings":
            inp = req.get("input")
            items = [inp] if isinstance(inp, str) else inp if isinstance(inp, list) else []
            texts = [t for t in items[:MAX_EMBEDDING_INPUTS] if isinstance(t, str)]
            return [{"role": "user", "content": t} for t in texts] or None, None
        return None, None

    def fill(self, call: CallRecord, capture_content: bool) -> None:
        """Set the call's fields from what was captured (not its tokens when estimated)."""
        req = self.request or {}
        call.operation = self.operation
        model = req.get("model")
        call.request_model = model if isinstance(model, str) else None
        call.response_model = self.response_model
        call.response_id = self.response_id
        call.stream = self.stream
        call.temperature = _float(req.get("temperature"))
        call.top_p = _float(req.get("top_p"))
        call.max_tokens = _int(
            req.get("max_completion_tokens")
            or req.get("max_tokens")
            or req.get("max_output_tokens")
        )
        call.frequency_penalty = _float(req.get("frequency_penalty"))
        call.presence_penalty = _float(req.get("presence_penalty"))
        call.seed = _int(req.get("seed"))
        if call.user is None:
            user = req.get("user") or req.get("safety_identifier")
            call.user = user if isinstance(user, str) else None
        attrs = call.attributes
        for key, name in _EXTRA_PARAMS.items():
            value = req.get(key)
            if value is not None:
                attrs[name] = value if isinstance(value, str | int | float | bool) else _json(value)
        text = req.get("text")
        fmt = req.get("response_format") or (text.get("format") if isinstance(text, dict) else None)
        if isinstance(fmt, dict) and fmt.get("type"):
            attrs["gen_ai.output.type"] = fmt["type"]
        effort = (
            (req.get("reasoning") or {}).get("effort")
            if isinstance(req.get("reasoning"), dict)
            else None
        )
        if effort:
            attrs["gen_ai.request.reasoning_effort"] = effort
        tools = req.get("tools")
        tool_definitions.record(attrs, tools)
        attrs.update(self.response_attrs)
        if self.usage is not None:
            _apply_usage(call, self.usage)
        if call.operation == "embeddings" and call.input_tokens is not None:
            call.output_tokens = call.output_tokens or 0
        outputs = self.outputs()
        if outputs:
            call.finish_reasons = [m["finish_reason"] for m in outputs if m.get("finish_reason")]
        inputs, system = self.input_messages()
        if call.operation != "embeddings":
            # taken here, before metadata-only capture drops the text (#19)
            fingerprint.fill(call, inputs, system, tools if isinstance(tools, list) else None)
        if capture_content:
            call.input_messages, call.system_instructions = inputs, system
            call.output_messages = outputs
        if self.error_type is not None and call.status == "ok":
            call.status = "error"
            call.error_class = classify(None, self.error_type, self.error_message)
            call.error_message = (
                self.error_message if capture_content else content_free(self.error_message)
            )

    def needs_estimate(self, call: CallRecord) -> bool:
        """Whether the upstream left token counts out that can be estimated."""
        if call.operation not in ("chat", "text_completion", "responses", "embeddings"):
            return False
        if call.input_tokens is None:
            return True
        return call.operation != "embeddings" and call.output_tokens is None

    def estimate(self, call: CallRecord) -> None:
        """Count the tokens the upstream did not report, offline (``tokens_estimated``)."""
        req = self.request or {}
        model = call.response_model or call.request_model
        if call.input_tokens is None:
            op = call.operation
            if op == "chat":
                n = tokens.count_chat_prompt(req.get("messages"), model, req.get("tools"))
            elif op == "responses":
                inp, system = self.input_messages()
                n = tokens.count_chat_prompt(
                    [{"role": m.get("role"), "content": m.get("content")} for m in (system or [])]
                    + [{"role": m.get("role"), "content": m.get("content")} for m in inp or []],
                    model,
                    req.get("tools"),
                )
            else:
                inp = req.get("input") if op == "embeddings" else req.get("prompt")
                items = [inp] if isinstance(inp, str) else inp if isinstance(inp, list) else []
                n = tokens.count_texts([t for t in items if isinstance(t, str)], model)
            call.input_tokens = n
            call.tokens_estimated = True
        if call.output_tokens is None:
            if call.operation == "embeddings":
                call.output_tokens = 0
            else:
                texts: list[str | None] = []
                for m in self.outputs() or ():
                    texts.append(m.get("content"))
                    for tc in m.get("tool_calls") or ():
                        texts.extend((tc.get("name"), tc.get("arguments")))
                call.output_tokens = tokens.count_texts(texts, model)
            call.tokens_estimated = True


def _carries_output(delta: dict[str, Any]) -> bool:
    """Whether a chat delta carries output: text, a refusal, reasoning (``reasoning_content``
    of DeepSeek and vLLM, ``reasoning`` of OpenRouter and Ollama) or tool-call arguments;
    not a role-only or empty first chunk."""
    for key in ("content", "refusal", "reasoning_content", "reasoning"):
        if isinstance(delta.get(key), str) and delta[key]:
            return True
    for tc in delta.get("tool_calls") or ():
        fn = tc.get("function") if isinstance(tc, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str) and fn["arguments"]:
            return True
    return False


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _apply_usage(call: CallRecord, usage: dict[str, Any]) -> None:
    """Chat/completions (``prompt_tokens``…) and Responses (``input_tokens``…) usage."""
    inp = _int(usage.get("prompt_tokens", usage.get("input_tokens")))
    out = _int(usage.get("completion_tokens", usage.get("output_tokens")))
    d_in = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    d_out = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    d_in = d_in if isinstance(d_in, dict) else {}
    d_out = d_out if isinstance(d_out, dict) else {}
    cached = _int(d_in.get("cached_tokens"))
    if cached is None:  # DeepSeek, Moonshot spell it their way
        cached = _int(usage.get("prompt_cache_hit_tokens", usage.get("cached_tokens")))
    call.input_tokens = inp
    call.output_tokens = out
    call.cache_read_tokens = cached
    write = _int(d_in.get("cache_creation_tokens", usage.get("cache_creation_input_tokens")))
    if write is not None:
        call.cache_write_tokens = write
    call.reasoning_tokens = _int(d_out.get("reasoning_tokens"))
