"""What the fake model says and how many tokens it counts: a pure function of the
request, so tests can predict replies and usage.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping, Sequence
from typing import Any

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")

_WORDS = (
    "the", "model", "answer", "is", "simulated", "and", "deterministic", "so", "tests",
    "can", "predict", "every", "token", "of", "this", "reply", "latency", "cost",
    "traces", "observability", "request", "response", "stream", "chunk", "usage",
    "gateway", "spans", "metrics", "prompt", "completion", "cache", "retrieval",
    "context", "document", "search", "result", "summary", "helpful", "quick", "brown",
    "fox", "jumps", "over", "lazy", "dog", "data", "pipeline", "store", "query",
    "window", "budget", "alert", "error", "retry", "upstream", "provider", "record",
    "value", "signal", "insight", "clear", "short", "final",
)  # fmt: skip


def count_tokens(text: str) -> int:
    """Deterministic token count of ``text``: words and punctuation marks."""
    return len(_TOKEN_RE.findall(text or ""))


def content_text(content: Any) -> str:
    """Plain text of a message ``content`` (a string or a list of content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return " ".join(parts)
    return str(content)


def chat_prompt_tokens(messages: Sequence[Mapping[str, Any]], tools: Any = None) -> int:
    """Prompt tokens of a chat request: 3 + per message (4 + its tokens), plus the tools' JSON."""
    total = 3
    for msg in messages:
        total += 4 + count_tokens(content_text(msg.get("content")))
        if msg.get("name"):
            total += 1
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            total += count_tokens(str(fn.get("name", ""))) + count_tokens(
                str(fn.get("arguments", ""))
            )
    if tools:
        total += count_tokens(json.dumps(tools, sort_keys=True))
    return total


def responses_input_tokens(body: Mapping[str, Any]) -> int:
    """Input tokens of a Responses API request (instructions + input items + tools)."""
    total = 3
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        total += 4 + count_tokens(instructions)
    inp = body.get("input")
    if isinstance(inp, str):
        total += 4 + count_tokens(inp)
    elif isinstance(inp, list):
        for item in inp:
            if isinstance(item, dict):
                text = content_text(item.get("content"))
                if not text and "output" in item:
                    text = str(item.get("output"))
                if not text and "arguments" in item:
                    text = str(item.get("arguments"))
                total += 4 + count_tokens(text)
            else:
                total += 4 + count_tokens(str(item))
    if body.get("tools"):
        total += count_tokens(json.dumps(body["tools"], sort_keys=True))
    return total


def _digest(*parts: Any) -> bytes:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\x00")
    return h.digest()


def reply_pieces(prompt: str, model: str, index: int = 0, length: int | None = None) -> list[str]:
    """The deterministic reply to ``prompt``: a list of pieces, one token each.

    Between 8 and 24 pieces unless ``length`` is given; the first piece has no
    leading space, the last one ends with a period.
    """
    seed = _digest(prompt, model, index)
    rng = random.Random(seed)
    n = length if length is not None else 8 + seed[0] % 17
    words = [rng.choice(_WORDS) for _ in range(max(n, 0))]
    if not words:
        return []
    pieces = [words[0].capitalize()] + [" " + w for w in words[1:]]
    pieces[-1] += "."
    return pieces


_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def is_reasoning_model(model: str) -> bool:
    """True for o-series and gpt-5 models, which report reasoning tokens."""
    return model.startswith(_REASONING_PREFIXES)


def split_text(text: str, n: int) -> list[str]:
    """Split ``text`` into ``n`` (or fewer) contiguous non-empty pieces."""
    if not text:
        return []
    n = max(1, min(n, len(text)))
    size = -(-len(text) // n)
    return [text[i : i + size] for i in range(0, len(text), size)]


def embedding(text: str, dims: int) -> list[float]:
    """A unit vector of ``dims`` floats, a pure function of ``text``."""
    rng = random.Random(_digest("embedding", text))
    vec = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in vec]


def resolved_model(model: str) -> str:
    """The model name the API reports back (real OpenAI resolves aliases to snapshots)."""
    snapshots = {
        "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
        "gpt-4o": "gpt-4o-2024-08-06",
        "gpt-4.1": "gpt-4.1-2025-04-14",
        "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
        "o3-mini": "o3-mini-2025-01-31",
    }
    return snapshots.get(model, model)
