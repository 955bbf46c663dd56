"""The fake upstream's Chat Completions, legacy Completions and Embeddings endpoints."""

from __future__ import annotations

import base64
import hashlib
import struct
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gensight.demo.upstream.base import UpstreamBase
from gensight.demo.upstream.errors import invalid
from gensight.demo.upstream.text import (
    chat_prompt_tokens,
    content_text,
    count_tokens,
    embedding,
    reply_pieces,
    resolved_model,
    split_text,
)


class CompletionsAPI(UpstreamBase):
    """``/v1/chat/completions``, ``/v1/completions`` and ``/v1/embeddings``."""

    async def chat_completions(self, request: Request) -> Response:
        accepted = await self._accept(request)
        if isinstance(accepted, Response):
            return accepted
        ex, started, body, model, plan = accepted
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            err = (
                invalid("Missing required parameter: 'messages'.", "messages",
                         "missing_required_parameter")
                if messages is None
                else invalid("Invalid 'messages': empty array. Expected an array with minimum "
                              "length 1, but got an empty array instead.", "messages",
                              "empty_array")
            )  # fmt: skip
            return self._json(ex, started, 400, err)

        prompt_tokens = chat_prompt_tokens(messages, body.get("tools"))
        per_prompt, per_message = self.config.template_tokens
        prompt_tokens += per_prompt + per_message * len(messages)
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
                pieces = split_text(args, max(2, count_tokens(args) // 2))
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
                    "model": resolved_model(model),
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
                "model": resolved_model(model),
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
            err = invalid("Missing required parameter: 'prompt'.", "prompt",
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
                    "model": resolved_model(model),
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
                "model": resolved_model(model),
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
        return await self._stream(ex, started, plan, frames, first_token=0)

    # ----------------------------------------------------------------- embeddings

    async def embeddings(self, request: Request) -> Response:
        accepted = await self._accept(request)
        if isinstance(accepted, Response):
            return accepted
        ex, started, body, model, plan = accepted
        raw = body.get("input")
        if raw is None or raw == "" or raw == []:
            err = invalid("'$.input' is invalid. Please check the API reference: "
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
            vector = embedding(text, dims)
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
            {"object": "list", "data": data, "model": resolved_model(model), "usage": usage},
        )
