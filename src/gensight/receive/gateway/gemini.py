"""Google's Gemini API (``generativelanguage``) as the gateway reads it.

Calls, by the method after the model in the path (``/v1beta/models/{model}:{method}``):

* ``generateContent``: one ``GenerateContentResponse``;
* ``streamGenerateContent``: with ``?alt=sse`` (what ``google-genai`` asks for) an event
  stream of responses, each ``data: {…}``; without it one JSON array of them, streamed;
* ``embedContent`` / ``batchEmbedContents``: embeddings.

Other methods (``countTokens``, ``GET /models``, files, caches) are forwarded and recorded
as spans only. The key (``x-goog-api-key`` or ``?key=``) is forwarded and never stored:
records keep the path without its query.

Usage from ``usageMetadata`` (a stream's last one counts; each is cumulative): input is
``promptTokenCount``, which already includes the cached tokens; cache read is
``cachedContentTokenCount``; output is ``candidatesTokenCount + thoughtsTokenCount``
(Gemini counts thinking apart, the record counts it inside output); reasoning is
``thoughtsTokenCount``. ``toolUsePromptTokenCount`` is kept as an attribute. Finish
reasons as Gemini spells them (``STOP``, ``MAX_TOKENS``, ``SAFETY``…); the model's
``modelVersion`` is the response model. Embedding answers carry no usage: their input
is estimated from the texts (``tokens_estimated``). A 429's ``RetryInfo.retryDelay``
(Google sends no ``Retry-After``) is honoured by the retry loop as ``Retry-After`` is.
"""

from __future__ import annotations

from typing import Any

import orjson

from gensight.enrich import tokens
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

_OPERATIONS = {
    "generateContent": "generate_content",
    "streamGenerateContent": "generate_content",
    "embedContent": "embeddings",
    "batchEmbedContents": "embeddings",
}
#: generationConfig keys kept as attributes (semconv names).
_CONFIG_ATTRS = {
    "topK": "gen_ai.request.top_k",
    "candidateCount": "gen_ai.request.choice.count",
    "stopSequences": "gen_ai.request.stop_sequences",
    "responseMimeType": "gen_ai.output.type",
}


def retry_delay(error_body: str) -> float | None:
    """Seconds an error body's ``google.rpc.RetryInfo`` asks to wait (Google sends it
    there, not as ``Retry-After``), else None."""
    try:
        data = orjson.loads(error_body)
    except orjson.JSONDecodeError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    for detail in err.get("details") or () if isinstance(err, dict) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            value = str(detail.get("retryDelay", ""))
            try:
                return float(value.removesuffix("s")) if value.endswith("s") else None
            except ValueError:
                return None
    return None


def split_path(path: str) -> tuple[str | None, str | None]:
    """``(model, method)`` of ``…/models/{model}:{method}``; Nones when not of that form."""
    tail = path.rstrip("/").rsplit("/models/", 1)
    if len(tail) != 2:
        return None, None
    model, sep, method = tail[1].partition(":")
    return (model or None, method or None) if sep else (model or None, None)


def _get(d: dict[str, Any], camel: str) -> Any:
    """A field by its REST (camelCase) name or its proto (snake_case) one."""
    if camel in d:
        return d[camel]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return d.get(snake)


def content_message(content: Any, default_role: str = "user") -> list[dict[str, Any]]:
    """One ``Content`` (role + parts) as record messages: text as content,
    ``functionCall`` parts as tool calls, each ``functionResponse`` a ``tool`` message,
    thought parts as reasoning, inline data elided into parts."""
    if not isinstance(content, dict):
        return []
    role = content.get("role") or default_role
    role = "assistant" if role == "model" else role
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    parts: list[Any] = []
    out: list[dict[str, Any]] = []
    for p in content.get("parts") or ():
        if not isinstance(p, dict):
            continue
        call = _get(p, "functionCall")
        answer = _get(p, "functionResponse")
        if isinstance(p.get("text"), str):
            (thoughts if p.get("thought") else texts).append(p["text"])
        elif isinstance(call, dict):
            calls.append(
                {
                    "id": call.get("id") or call.get("name"),
                    "name": call.get("name"),
                    "arguments": to_json(call.get("args") or {}),
                }
            )
        elif isinstance(answer, dict):
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": answer.get("id") or answer.get("name"),
                    "content": to_json(answer.get("response")),
                }
            )
        else:
            parts.append(_elide({k: v for k, v in p.items() if k != "thoughtSignature"}))
    if texts or calls or thoughts or parts:
        m: dict[str, Any] = {"role": role, "content": "".join(texts) if texts else None}
        if calls:
            m["tool_calls"] = calls
        if thoughts:
            m["reasoning"] = "".join(thoughts)
        if parts:
            m["parts"] = parts
        out.append(m)
    return out


class _Candidate:
    __slots__ = ("parts", "finish")

    def __init__(self) -> None:
        self.parts: list[Any] = []
        self.finish: str | None = None


class GeminiCapture(NativeCapture):
    """One Gemini API call, read from its request and answer."""

    def __init__(self, method: str, path: str, body: bytes) -> None:
        req = parse_object(body) if body.lstrip()[:1] == b"{" else None
        model, verb = split_path(path)
        op = _OPERATIONS.get(verb or "") if method == "POST" else None
        super().__init__(op, req, body)
        self.stream = verb == "streamGenerateContent"
        self.model = model
        self._verb = verb
        self._candidates: dict[int, _Candidate] = {}
        self._embedded = False

    # -- answer ----------------------------------------------------------------
    def on_body(self, body: bytes) -> None:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        # streamGenerateContent without alt=sse: one JSON array of responses
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict):
                self._response(item)

    def on_event(self, event: str | None, data: bytes) -> bool:
        d = parse_object(data)
        if d is not None:
            self._response(d)
        return False

    def _response(self, d: dict[str, Any]) -> None:
        err = d.get("error")
        if isinstance(err, dict):
            # the HTTP code classes it (``UNAVAILABLE`` alone would be "unknown")
            code = as_int(err.get("code"))
            self.stream_error(str(code) if code else str(err.get("status") or "stream_error"), d)
            return
        if isinstance(_get(d, "responseId"), str) and self.response_id is None:
            self.response_id = _get(d, "responseId")
        if isinstance(_get(d, "modelVersion"), str):
            self.response_model = _get(d, "modelVersion")
        if "embedding" in d or "embeddings" in d:
            self._embedded = True
        for i, c in enumerate(d.get("candidates") or ()):
            if not isinstance(c, dict):
                continue
            cand = self._candidates.setdefault(as_int(c.get("index")) or i, _Candidate())
            content = c.get("content")
            if isinstance(content, dict) and content.get("parts"):
                self.token_seen()
                cand.parts.extend(content["parts"])
            finish = _get(c, "finishReason")
            if isinstance(finish, str) and finish:
                cand.finish = finish
        usage = _get(d, "usageMetadata")
        if isinstance(usage, dict):
            self._apply_usage(usage)

    def _apply_usage(self, u: dict[str, Any]) -> None:
        prompt = as_int(_get(u, "promptTokenCount"))
        out = as_int(_get(u, "candidatesTokenCount"))
        thoughts = as_int(_get(u, "thoughtsTokenCount"))
        self.input_tokens = prompt
        self.cache_read = as_int(_get(u, "cachedContentTokenCount"))
        self.reasoning = thoughts
        if out is not None or thoughts is not None:
            self.output_tokens = (out or 0) + (thoughts or 0)
        tool = as_int(_get(u, "toolUsePromptTokenCount"))
        if tool is not None:
            self.attrs["gcp.gemini.usage.tool_use_prompt_tokens"] = tool

    # -- results ---------------------------------------------------------------
    def outputs(self) -> list[dict[str, Any]] | None:
        if not self._candidates:
            return None
        outputs = []
        for i in sorted(self._candidates):
            cand = self._candidates[i]
            merged = content_message({"role": "model", "parts": cand.parts}, "assistant")
            m = merged[-1] if merged else {"role": "assistant", "content": None}
            out = assistant_message(m.get("content"), m.get("tool_calls") or [], cand.finish)
            for key in ("reasoning", "parts"):
                if key in m:
                    out[key] = m[key]
            outputs.append(out)
        self.finish_reasons = [c.finish for _, c in sorted(self._candidates.items()) if c.finish]
        return outputs

    def input_messages(self) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
        req = self.request or {}
        system = _get(req, "systemInstruction")
        instructions = None
        if isinstance(system, dict):
            texts = [p.get("text") for p in system.get("parts") or () if isinstance(p, dict)]
            text = "\n".join(t for t in texts if isinstance(t, str))
            instructions = [{"role": "system", "content": text}] if text else None
        elif isinstance(system, str):
            instructions = [{"role": "system", "content": system}]
        if self.operation == "embeddings":
            return [{"role": "user", "content": t} for t in self._embed_texts()] or None, None
        out: list[dict[str, Any]] = []
        for c in req.get("contents") or ():
            out.extend(content_message(c))
        return out or None, instructions

    def _embed_texts(self) -> list[str]:
        req = self.request or {}
        contents = [req.get("content")] + [
            r.get("content") for r in req.get("requests") or () if isinstance(r, dict)
        ]
        texts = []
        for c in contents:
            for p in (c or {}).get("parts") or () if isinstance(c, dict) else ():
                if isinstance(p, dict) and isinstance(p.get("text"), str):
                    texts.append(p["text"])
        return texts

    def params(self, call: CallRecord) -> None:
        req = self.request or {}
        config = _get(req, "generationConfig")
        config = config if isinstance(config, dict) else {}
        call.temperature = as_float(config.get("temperature"))
        call.top_p = as_float(_get(config, "topP"))
        call.max_tokens = as_int(_get(config, "maxOutputTokens"))
        call.seed = as_int(config.get("seed"))
        call.presence_penalty = as_float(_get(config, "presencePenalty"))
        call.frequency_penalty = as_float(_get(config, "frequencyPenalty"))
        attrs = call.attributes
        for key, name in _CONFIG_ATTRS.items():
            value = _get(config, key)
            if value is not None:
                attrs[name] = value if isinstance(value, str | int | float) else to_json(value)
        thinking = _get(config, "thinkingConfig")
        if isinstance(thinking, dict) and as_int(_get(thinking, "thinkingBudget")) is not None:
            attrs["gcp.gemini.request.thinking_budget"] = as_int(_get(thinking, "thinkingBudget"))
        tool_definitions.record(attrs, req.get("tools"), "gemini")

    def needs_estimate(self, call: CallRecord) -> bool:
        """Embedding answers carry no usage: their input is counted from the texts."""
        return call.operation == "embeddings" and call.input_tokens is None and self._embedded

    def estimate(self, call: CallRecord) -> None:
        call.input_tokens = tokens.count_texts(self._embed_texts(), call.request_model)
        call.output_tokens = 0
        call.tokens_estimated = True
