"""Chat messages from every convention, in one simple shape.

Stored messages are dicts ``{"role", "content", "tool_calls"?, "tool_call_id"?,
"finish_reason"?, "parts"?}``: ``content`` is the text (what the UI shows and ``q``
searches), ``tool_calls`` a list of ``{"id", "name", "arguments"}``, and ``parts`` keeps
non-text parts (images, files) of the current semconv's ``parts`` form as sent.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

Message = dict[str, Any]

_INDEXED = re.compile(r"^(\d+)\.(.+)$")


#: How deep stored content may nest; deeper parts become ``TOO_DEEP`` (the recorder and
#: the store walk content recursively, and no real message nests anywhere near this).
MAX_DEPTH = 64
TOO_DEEP = "[nested too deep: not stored]"


def _children(value: dict[Any, Any] | list[Any]) -> Any:
    return value.values() if type(value) is dict else value


def clip_depth(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` with every dict or list nested deeper than ``max_depth`` replaced by
    ``TOO_DEEP`` (``value`` itself when nothing is that deep). Iterative: no recursion."""
    if type(value) is not dict and type(value) is not list:
        return value
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > max_depth:
            break
        stack.extend((c, depth + 1) for c in _children(v) if type(c) is dict or type(c) is list)
    else:
        return value
    root: Any = {} if type(value) is dict else []
    todo: list[tuple[Any, Any, int]] = [(value, root, 1)]
    while todo:
        src, dst, depth = todo.pop()
        items = src.items() if type(src) is dict else enumerate(src)
        for k, c in items:
            if type(c) is dict or type(c) is list:
                if depth >= max_depth:
                    c_out: Any = TOO_DEEP
                else:
                    c_out = {} if type(c) is dict else []
                    todo.append((c, c_out, depth + 1))
            else:
                c_out = c
            if type(dst) is dict:
                dst[k] = c_out
            else:
                dst.append(c_out)
    return root


def parse_json(value: Any) -> Any:
    """Decode a JSON string attribute; other values pass through; bad JSON stays a string.
    Content nested deeper than ``MAX_DEPTH`` is clipped (``clip_depth``)."""
    if isinstance(value, str | bytes) and value[:1] in ("[", "{", b"[", b"{"):
        try:
            return clip_depth(orjson.loads(value))
        except orjson.JSONDecodeError:
            return value
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts
        texts = []
        for p in value:
            if isinstance(p, dict):
                t = p.get("text") or p.get("content")
                if isinstance(t, str):
                    texts.append(t)
            elif isinstance(p, str):
                texts.append(p)
        return "\n".join(texts) if texts else _json(value)
    return _json(value)


def _json(value: Any) -> str:
    """Structured content as JSON text; a placeholder for what JSON cannot hold (nesting
    deeper than orjson's limit, which only a malformed or hostile payload reaches)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        return "[content not representable as JSON]"


def _tool_call(tc: Any) -> dict[str, Any]:
    if not isinstance(tc, dict):
        return {"id": None, "name": None, "arguments": _text(tc)}
    fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
    args = tc.get("arguments", fn.get("arguments"))
    return {
        "id": tc.get("id"),
        "name": tc.get("name") or fn.get("name"),
        "arguments": args if isinstance(args, str) or args is None else _text(args),
    }


def normalize_message(m: Any, default_role: str | None = None) -> Message:
    """One message of any known shape (OpenAI, semconv ``parts``, event body) as a Message."""
    if not isinstance(m, dict):
        return {"role": default_role, "content": _text(m)}
    if "message" in m and isinstance(m["message"], dict) and "role" not in m:
        # gen_ai.choice event body: {"index", "finish_reason", "message": {...}}
        out = normalize_message(m["message"], default_role or "assistant")
        if m.get("finish_reason") is not None:
            out["finish_reason"] = m["finish_reason"]
        return out
    out: Message = {"role": m.get("role") or default_role}
    parts = m.get("parts")
    if isinstance(parts, list):
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        other: list[Any] = []
        for p in parts:
            if not isinstance(p, dict):
                texts.append(str(p))
                continue
            ptype = p.get("type")
            if ptype == "text" or (ptype is None and "content" in p):
                if p.get("content") is not None:
                    texts.append(_text(p.get("content")) or "")
            elif ptype == "tool_call":
                calls.append(_tool_call(p))
            elif ptype == "tool_call_response":
                out["tool_call_id"] = p.get("id")
                texts.append(_text(p.get("response") or p.get("result")) or "")
            elif ptype == "reasoning":
                out["reasoning"] = _text(p.get("content"))
            else:
                other.append(p)
        out["content"] = "\n".join(texts) if texts else None
        if calls:
            out["tool_calls"] = calls
        if other:
            out["parts"] = other
    else:
        out["content"] = _text(m.get("content"))
        if isinstance(m.get("content"), list) and any(
            isinstance(p, dict) and p.get("type") not in ("text", None) for p in m["content"]
        ):
            out["parts"] = [
                p for p in m["content"] if isinstance(p, dict) and p.get("type") != "text"
            ]
    tcs = m.get("tool_calls")
    if isinstance(tcs, list) and tcs:
        out["tool_calls"] = [_tool_call(tc) for tc in tcs]
    if m.get("tool_call_id") or m.get("id") and out["role"] == "tool":
        out["tool_call_id"] = m.get("tool_call_id") or m.get("id")
    if m.get("finish_reason") is not None:
        out["finish_reason"] = m["finish_reason"]
    if m.get("name") and out["role"] != "tool":
        out["name"] = m["name"]
    return out


def messages_from_value(value: Any, default_role: str | None = None) -> list[Message] | None:
    """A messages attribute (JSON string or structured list) as Messages; None if absent."""
    if value is None:
        return None
    value = parse_json(value)
    if isinstance(value, dict):
        value = value.get("messages", [value])
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if not isinstance(value, list):
        return [{"role": default_role, "content": _text(value)}]
    return [normalize_message(m, default_role) for m in value]


def indexed_groups(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """Flattened ``prefix.{i}.rest`` attributes as a list of ``{rest: value}`` by ``i``.

    OpenLLMetry writes ``gen_ai.prompt.0.role``; OpenInference writes
    ``llm.input_messages.0.message.role``.
    """
    groups: dict[int, dict[str, Any]] = {}
    plen = len(prefix) + 1
    for key, value in attrs.items():
        if not key.startswith(prefix) or len(key) <= plen or key[plen - 1] != ".":
            continue
        m = _INDEXED.match(key[plen:])
        if m:
            groups.setdefault(int(m.group(1)), {})[m.group(2)] = value
    return [groups[i] for i in sorted(groups)]


def _nested_tool_calls(flat: dict[str, Any], prefix: str, inner: str = "") -> list[dict]:
    calls = indexed_groups(flat, prefix)
    out = []
    for c in calls:
        out.append(
            {
                "id": c.get(f"{inner}id"),
                "name": c.get(f"{inner}function.name") or c.get(f"{inner}name"),
                "arguments": c.get(f"{inner}function.arguments") or c.get(f"{inner}arguments"),
            }
        )
    return out


def traceloop_messages(attrs: dict[str, Any], prefix: str) -> list[Message] | None:
    """OpenLLMetry's ``gen_ai.prompt.{i}.*`` / ``gen_ai.completion.{i}.*`` messages."""
    groups = indexed_groups(attrs, prefix)
    if not groups:
        return None
    out = []
    for g in groups:
        content = parse_json(g.get("content"))
        m: Message = {"role": g.get("role"), "content": _text(content)}
        tcs = _nested_tool_calls(g, "tool_calls")
        if tcs:
            m["tool_calls"] = tcs
        if g.get("finish_reason") is not None:
            m["finish_reason"] = g["finish_reason"]
        if g.get("tool_call_id"):
            m["tool_call_id"] = g["tool_call_id"]
        out.append(m)
    return out


def openinference_messages(attrs: dict[str, Any], prefix: str) -> list[Message] | None:
    """OpenInference's ``llm.input_messages.{i}.message.*`` messages."""
    groups = indexed_groups(attrs, prefix)
    if not groups:
        return None
    out = []
    for g in groups:
        content = g.get("message.content")
        if content is None:
            texts = [
                c.get("message_content.text")
                for c in indexed_groups(g, "message.contents")
                if c.get("message_content.text") is not None
            ]
            content = "\n".join(t if isinstance(t, str) else str(t) for t in texts) or None
        m: Message = {"role": g.get("message.role"), "content": _text(content)}
        tcs = _nested_tool_calls(g, "message.tool_calls", "tool_call.")
        if tcs:
            m["tool_calls"] = tcs
        if g.get("message.tool_call_id"):
            m["tool_call_id"] = g["message.tool_call_id"]
        if g.get("message.name"):
            m["name"] = g["message.name"]
        out.append(m)
    return out


def openlit_messages(value: Any, role: str) -> list[Message] | None:
    """OpenLIT's ``gen_ai.prompt`` / ``gen_ai.completion``: text, maybe ``role: text`` lines."""
    if value is None:
        return None
    parsed = parse_json(value)
    if isinstance(parsed, list | dict):
        return messages_from_value(parsed, role)
    return [{"role": role, "content": str(value)}]


#: What producers write in place of content they were told not to capture.
_PLACEHOLDERS = frozenset({"__REDACTED__", "<redacted>", "[REDACTED]"})


def has_content(m: Message) -> bool:
    """Whether a message carries anything beyond its role (text, tool calls, parts)."""
    content = m.get("content")
    return bool(
        (content not in (None, "") and content not in _PLACEHOLDERS)
        or m.get("tool_calls")
        or m.get("parts")
    )


def drop_empty(messages: list[Message] | None) -> list[Message] | None:
    """None when no message has content (capture off or redacted by the producer)."""
    if not messages:
        return None
    if not any(has_content(m) for m in messages):
        return None
    for m in messages:
        if m.get("content") in _PLACEHOLDERS:
            m["content"] = None
    return messages
