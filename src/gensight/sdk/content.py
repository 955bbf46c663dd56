"""Messages in the GenAI semantic conventions' "parts" JSON, built only with capture on.

``gen_ai.input.messages``, ``gen_ai.output.messages`` and ``gen_ai.system_instructions``
follow the JSON schemas of open-telemetry/semantic-conventions-genai::

    [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
     {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1",
                                      "name": "get_weather", "arguments": {"city": "Paris"}}]},
     {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1",
                                 "response": "rainy, 57°F"}]}]

Output messages add ``finish_reason``; system instructions are a list of parts.
Request messages may be dicts or the client's own pydantic objects (an assistant
message passed back in), so every field is read through ``_get``. Inline binary
payloads (``data:`` URLs, input audio) are elided: the telemetry keeps their type and
size, not megabytes of base64.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

Part = dict[str, Any]
Message = dict[str, Any]


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


def to_json(value: Any) -> str:
    """Compact JSON for an attribute value (non-JSON objects as their ``str``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _arguments(raw: Any) -> Any:
    """Tool-call arguments as an object when they are valid JSON, else as sent."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _elided(data: Any) -> str:
    return f"<elided {len(data) if isinstance(data, str | bytes) else 0} bytes>"


def _content_part(p: Any) -> Part:
    """One OpenAI content part (chat or Responses spelling) as a semconv part."""
    if isinstance(p, str):
        return {"type": "text", "content": p}
    kind = _get(p, "type")
    if kind in ("text", "input_text", "output_text"):
        return {"type": "text", "content": _get(p, "text")}
    if kind == "refusal":
        return {"type": "text", "content": _get(p, "refusal")}
    if kind in ("image_url", "input_image"):
        url = _get(p, "image_url")
        url = _get(url, "url") if url is not None and not isinstance(url, str) else url
        if isinstance(url, str) and url.startswith("data:"):
            mime = url[5:].split(";", 1)[0] or None
            return {"type": "blob", "modality": "image", "mime_type": mime, "content": _elided(url)}
        if url is None and _get(p, "file_id"):
            return {"type": "file", "modality": "image", "file_id": _get(p, "file_id")}
        return {"type": "uri", "modality": "image", "uri": url}
    if kind == "input_audio":
        audio = _get(p, "input_audio")
        fmt = _get(audio, "format")
        return {
            "type": "blob",
            "modality": "audio",
            "mime_type": f"audio/{fmt}" if fmt else None,
            "content": _elided(_get(audio, "data")),
        }
    if kind in ("file", "input_file"):
        f = _get(p, "file") or p
        return {"type": "file", "file_id": _get(f, "file_id"), "filename": _get(f, "filename")}
    return {"type": kind or "unknown"}


def _parts(content: Any) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, Iterable):
        return [_content_part(p) for p in content]
    return [{"type": "text", "content": str(content)}]


def _tool_call_part(tc: Any) -> Part:
    fn = _get(tc, "function")
    if fn is None:  # custom tool calls
        fn = _get(tc, "custom")
        args = _get(fn, "input") if fn is not None else None
    else:
        args = _arguments(_get(fn, "arguments"))
    return {
        "type": "tool_call",
        "id": _get(tc, "id"),
        "name": _get(fn, "name") if fn is not None else None,
        "arguments": args,
    }


# -- Chat Completions ----------------------------------------------------------------


def chat_input(messages: Any) -> list[Message]:
    """The request's ``messages`` as semconv input messages (system ones included)."""
    out: list[Message] = []
    for m in messages or ():
        role = _get(m, "role")
        if role == "tool":
            out.append(
                {
                    "role": "tool",
                    "parts": [
                        {
                            "type": "tool_call_response",
                            "id": _get(m, "tool_call_id"),
                            "response": _text_or_parts(_get(m, "content")),
                        }
                    ],
                }
            )
            continue
        parts = _parts(_get(m, "content"))
        for tc in _get(m, "tool_calls") or ():
            parts.append(_tool_call_part(tc))
        fc = _get(m, "function_call")  # deprecated functions API
        if fc is not None:
            parts.append(
                {
                    "type": "tool_call",
                    "id": None,
                    "name": _get(fc, "name"),
                    "arguments": _arguments(_get(fc, "arguments")),
                }
            )
        msg: Message = {"role": role, "parts": parts}
        name = _get(m, "name")
        if name:
            msg["name"] = name
        out.append(msg)
    return out


def _text_or_parts(content: Any) -> Any:
    if content is None or isinstance(content, str):
        return content
    texts = [_get(p, "text") for p in content]
    return "\n".join(t for t in texts if isinstance(t, str))


def chat_output(choices: Any) -> list[Message]:
    """A ChatCompletion's choices as semconv output messages."""
    out: list[Message] = []
    for c in choices or ():
        m = c.message
        parts: list[Part] = []
        if m.content is not None:
            parts.append({"type": "text", "content": m.content})
        refusal = getattr(m, "refusal", None)
        if refusal:
            parts.append({"type": "text", "content": refusal})
        for tc in m.tool_calls or ():
            parts.append(_tool_call_part(tc))
        role = m.role or "assistant"
        out.append({"role": role, "parts": parts, "finish_reason": c.finish_reason})
    return out


def streamed_output(
    texts: dict[int, list[str]],
    tools: dict[int, dict[int, dict[str, Any]]],
    finish: dict[int, str],
) -> list[Message]:
    """Output messages assembled from stream deltas, per choice index."""
    out: list[Message] = []
    for index in sorted(set(texts) | set(tools) | set(finish)):
        parts: list[Part] = []
        pieces = texts.get(index)
        if pieces:
            parts.append({"type": "text", "content": "".join(pieces)})
        for _, tc in sorted(tools.get(index, {}).items()):
            parts.append(
                {
                    "type": "tool_call",
                    "id": tc.get("id"),
                    "name": tc.get("name"),
                    "arguments": _arguments("".join(tc.get("arguments", ()))),
                }
            )
        out.append({"role": "assistant", "parts": parts, "finish_reason": finish.get(index)})
    return out


# -- legacy Completions --------------------------------------------------------------


def completion_input(prompt: Any) -> list[Message]:
    """A legacy completion's ``prompt`` (text or list of texts) as input messages."""
    if isinstance(prompt, str):
        return [{"role": "user", "parts": [{"type": "text", "content": prompt}]}]
    if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
        return [{"role": "user", "parts": [{"type": "text", "content": p}]} for p in prompt]
    return [{"role": "user", "parts": [{"type": "tokens"}]}]  # token-id prompts


def completion_output(choices: Any) -> list[Message]:
    """A Completion's choices as output messages."""
    return [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": c.text}],
            "finish_reason": c.finish_reason,
        }
        for c in choices or ()
    ]


# -- Responses API -------------------------------------------------------------------


def responses_instructions(instructions: Any) -> list[Part] | None:
    """``instructions`` as semconv system instructions (a list of parts)."""
    if isinstance(instructions, str) and instructions:
        return [{"type": "text", "content": instructions}]
    if isinstance(instructions, list) and instructions:
        return [p for m in instructions for p in _parts(_get(m, "content"))]
    return None


def responses_input(value: Any) -> list[Message]:
    """The Responses API ``input`` (text or items) as input messages."""
    if isinstance(value, str):
        return [{"role": "user", "parts": [{"type": "text", "content": value}]}]
    out: list[Message] = []
    for item in value or ():
        kind = _get(item, "type")
        if kind == "function_call":
            out.append(
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": _get(item, "call_id"),
                            "name": _get(item, "name"),
                            "arguments": _arguments(_get(item, "arguments")),
                        }
                    ],
                }
            )
        elif kind == "function_call_output":
            out.append(
                {
                    "role": "tool",
                    "parts": [
                        {
                            "type": "tool_call_response",
                            "id": _get(item, "call_id"),
                            "response": _text_or_parts(_get(item, "output")),
                        }
                    ],
                }
            )
        elif kind == "reasoning":
            continue  # the model's own earlier reasoning, passed back opaquely
        elif _get(item, "role") is not None:
            out.append({"role": _get(item, "role"), "parts": _parts(_get(item, "content"))})
    return out


def responses_finish_reason(response: Any, has_calls: bool) -> str | None:
    """A chat-style finish reason for a Response (the gateway's spelling)."""
    status = getattr(response, "status", None)
    if status == "incomplete":
        details = getattr(response, "incomplete_details", None)
        reason = getattr(details, "reason", None)
        return "length" if reason == "max_output_tokens" else (reason or "incomplete")
    if has_calls:
        return "tool_calls"
    if status == "completed":
        return "stop"
    return status


def responses_output(response: Any) -> list[Message]:
    """A Response's output items as one assistant output message."""
    parts: list[Part] = []
    has_calls = False
    for item in getattr(response, "output", None) or ():
        kind = getattr(item, "type", None)
        if kind == "message":
            parts.extend(_content_part(p) for p in item.content or ())
        elif kind == "function_call":
            has_calls = True
            parts.append(
                {
                    "type": "tool_call",
                    "id": item.call_id,
                    "name": item.name,
                    "arguments": _arguments(item.arguments),
                }
            )
        elif kind == "reasoning":
            texts = [s.text for s in getattr(item, "summary", None) or () if getattr(s, "text", "")]
            if texts:
                parts.append({"type": "reasoning", "content": "\n".join(texts)})
    return [
        {
            "role": "assistant",
            "parts": parts,
            "finish_reason": responses_finish_reason(response, has_calls),
        }
    ]
