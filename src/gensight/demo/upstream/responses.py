"""The fake upstream's Responses API endpoint (``POST /v1/responses``), streamed and not."""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gensight.demo.upstream.base import UpstreamBase
from gensight.demo.upstream.text import (
    content_text,
    count_tokens,
    is_reasoning_model,
    reply_pieces,
    resolved_model,
    responses_input_tokens,
    split_text,
)


class ResponsesAPI(UpstreamBase):
    """``/v1/responses``."""

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
            pieces = split_text(args, max(2, count_tokens(args) // 2))
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
                "model": resolved_model(model),
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
        # the first output token: the first ``response.*.delta`` event
        first = next(
            (i for i, (f, _) in enumerate(frames) if f.split("\n")[0].endswith("delta")), 0
        )
        return await self._stream(ex, started, plan, frames, first)
