"""The call log's text helpers: one-line previews of a call's messages and search marks.

Previews are plain text cut from the stored messages (the templates escape them); a
search match is returned as segments so the template can wrap it in ``<mark>`` without
ever marking the text itself safe.
"""

from __future__ import annotations

from typing import Any

PREVIEW_CHARS = 120


def _text(message: Any) -> str | None:
    if isinstance(message, str):
        return message
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str) and content.strip():
        return content
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict) and call.get("name"):
            return f"→ tool call {call['name']}"
    return None


def _one_line(text: str | None, limit: int = PREVIEW_CHARS) -> str | None:
    if not text:
        return None
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def preview(call: dict[str, Any]) -> dict[str, str | None]:
    """``{"prompt", "response"}``: the last user message and the first output as one line
    each (None when the call carries no such text)."""
    inputs = call.get("input_messages") or []
    prompt = None
    for m in reversed(inputs):
        if isinstance(m, dict) and m.get("role") not in ("user", None):
            continue
        prompt = _text(m)
        if prompt:
            break
    response = next((t for t in map(_text, call.get("output_messages") or []) if t), None)
    return {"prompt": _one_line(prompt), "response": _one_line(response)}


def marked(text: str | None, needle: str | None) -> list[tuple[str, bool]]:
    """``text`` as ``(segment, is_match)`` pairs for every case-insensitive ``needle``."""
    if not text:
        return []
    if not needle:
        return [(text, False)]
    out: list[tuple[str, bool]] = []
    low, key = text.lower(), needle.lower()
    i = 0
    while (j := low.find(key, i)) >= 0:
        if j > i:
            out.append((text[i:j], False))
        out.append((text[j : j + len(key)], True))
        i = j + len(key)
    if i < len(text):
        out.append((text[i:], False))
    return out


def search_preview(call: dict[str, Any], needle: str | None) -> dict[str, str | None]:
    """Like ``preview``, but when a search term is given, the prompt or response line is
    cut around the first match so the match is visible."""
    shown = preview(call)
    if not needle:
        return shown
    key = needle.lower()
    for field, messages in (
        ("prompt", call.get("input_messages") or []),
        ("response", call.get("output_messages") or []),
    ):
        for m in messages:
            text = " ".join((_text(m) or "").split())
            at = text.lower().find(key)
            if at < 0:
                continue
            start = max(0, at - PREVIEW_CHARS // 3)
            cut = text[start : start + PREVIEW_CHARS]
            shown[field] = (
                ("…" if start else "") + cut + ("…" if len(text) > start + len(cut) else "")
            )
            return shown
    return shown
