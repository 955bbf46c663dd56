"""The OpenAI wire's messages in the record's shape (``gensight.conventions.messages``).

Chat Completions request messages (non-text parts' inline payloads elided), the
Responses API's ``input`` items and ``response`` output, turned into the chat-message
shape every record stores, whichever API carried them.
"""

from __future__ import annotations

from typing import Any

from gensight.conventions import messages as msg

#: Inline payloads (base64 images, audio, files) longer than this are not stored.
MAX_INLINE = 256

_BLOB_KEYS = frozenset({"data", "file_data", "b64_json"})


def _elide(value: Any, key: str = "") -> Any:
    """``value`` with long inline payloads (data: URLs, base64 audio/files) shortened."""
    if isinstance(value, str):
        if len(value) > MAX_INLINE and (value.startswith("data:") or key in _BLOB_KEYS):
            head = value.split(",", 1)[0] if value.startswith("data:") else key
            return f"{head},…[{len(value)} characters not stored]"
        return value
    if isinstance(value, dict):
        return {k: _elide(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_elide(v, key) for v in value]
    return value


def chat_messages(messages: Any) -> list[Any]:
    """Request messages with non-text parts' payloads elided (text left as sent)."""
    if not isinstance(messages, list):
        return []
    out = []
    for m in messages:
        if isinstance(m, dict) and isinstance(m.get("content"), list):
            m = dict(m, content=[p if _is_text_part(p) else _elide(p) for p in m["content"]])
        out.append(m)
    return out


def _is_text_part(p: Any) -> bool:
    return isinstance(p, str) or (isinstance(p, dict) and p.get("type") in ("text", None))


def responses_input(value: Any) -> list[Any]:
    """Responses API ``input`` items in chat-message shape."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    out: list[Any] = []
    for item in value if isinstance(value, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "function_call":
            call = {"id": item.get("call_id"), "name": item.get("name")}
            call["arguments"] = item.get("arguments")
            out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")}
            )
        elif "role" in item:
            content = item.get("content")
            if isinstance(content, list):
                content = [_responses_part(p) for p in content]
            out.append({"role": item["role"], "content": content})
    return chat_messages(out)


def _responses_part(p: Any) -> Any:
    if isinstance(p, dict) and p.get("type") in ("input_text", "output_text"):
        return {"type": "text", "text": p.get("text")}
    return p


def responses_output(resp: dict[str, Any]) -> list[dict[str, Any]]:
    """The assistant message of a Responses API ``response`` object (chat shape)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in resp.get("output") or ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict):
                    text = (
                        part.get("text") if part.get("type") != "refusal" else part.get("refusal")
                    )
                    if isinstance(text, str):
                        texts.append(text)
        elif kind == "function_call":
            calls.append(
                {
                    "id": item.get("call_id") or item.get("id"),
                    "name": item.get("name"),
                    "arguments": item.get("arguments"),
                }
            )
    return [
        assistant_message("".join(texts) if texts else None, calls, _responses_finish(resp, calls))
    ]


def _responses_finish(resp: dict[str, Any], calls: list[Any]) -> str | None:
    status = resp.get("status")
    if status == "incomplete":
        reason = (resp.get("incomplete_details") or {}).get("reason")
        return "length" if reason == "max_output_tokens" else (reason or "incomplete")
    if calls:
        return "tool_calls"
    if status == "completed":
        return "stop"
    return status


def assistant_message(content: str | None, calls: list[dict[str, Any]], finish: str | None) -> dict:
    """An assistant message in the record's shape, with its tool calls and finish reason."""
    m: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        m["tool_calls"] = calls
    if finish is not None:
        m["finish_reason"] = finish
    return msg.normalize_message(m, "assistant")
