"""Offline token estimation for calls whose provider reported no usage.

Some OpenAI-compatible servers ignore ``stream_options.include_usage``, legacy
completion streams carry no usage unless asked, and a stream the client cut short
never reaches its usage chunk. For those calls the gateway counts tokens itself and
marks the record ``tokens_estimated: true``.

Counting uses ``quicktok`` (PyPI package ``quicktok-v1``), an exact BPE tokenizer
whose o200k_base and cl100k_base vocabularies ship inside the package, so nothing is
ever downloaded (``tiktoken`` fetches its BPE files at first use and fails offline).
Models of the GPT-4o generation and later (gpt-4o, gpt-4.1, gpt-5, o1/o3/o4, …) use
o200k_base; older OpenAI models use cl100k_base; other vendors' models, whose
tokenizers are not shipped, are approximated with o200k_base.

Loading a vocabulary takes most of a second and ~80 MB (o200k_base; cl100k_base
~16 MB), without holding the GIL: ``ready()`` says whether counting would load one
first, so callers on an event loop can do that in a worker thread; ``warm()`` loads
them in a background thread ahead of time.
Chat prompts add OpenAI's documented per-message framing (3 tokens a message, 1 for
a ``name``, 3 to prime the reply), so estimates of plain-text chats match the
reported ``prompt_tokens``; images and audio are not counted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("gensight.enrich.tokens")

O200K = "o200k_base"
CL100K = "cl100k_base"

# Lowercased model-name prefixes, longest match first.
_CL100K_PREFIXES = (
    "gpt-4-",
    "gpt-4",
    "gpt-3.5",
    "gpt-35",
    "text-embedding-3",
    "text-embedding-ada",
    "davinci-002",
    "babbage-002",
)
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")

#: Tokens OpenAI adds around every chat message, per ``name``, and to prime the reply.
PER_MESSAGE = 3
PER_NAME = 1
REPLY_PRIMING = 3

_encoders: dict[str, Any] = {}
_lock = threading.Lock()
_unavailable = False


def encoding_name(model: str | None) -> str:
    """The vocabulary used to estimate ``model``'s tokens."""
    m = (model or "").lower().rsplit("/", 1)[-1]
    if m.startswith(_O200K_PREFIXES):
        return O200K
    if m.startswith(_CL100K_PREFIXES):
        return CL100K
    return O200K


def _encoder(name: str) -> Any | None:
    global _unavailable
    enc = _encoders.get(name)
    if enc is not None or _unavailable:
        return enc
    with _lock:
        enc = _encoders.get(name)
        if enc is None and not _unavailable:
            try:
                import quicktok

                enc = quicktok.get_encoding(name)
                _encoders[name] = enc
            except Exception as e:  # estimation is best effort, never a failure
                log.warning("token estimation unavailable (quicktok: %s)", e)
                _unavailable = True
    return enc


def ready(model: str | None = None) -> bool:
    """Whether counting for ``model`` can run without loading a vocabulary first."""
    return _unavailable or encoding_name(model) in _encoders


def warm(names: Iterable[str] = (O200K, CL100K)) -> threading.Thread:
    """Load the vocabularies in a daemon thread (so the first estimate is fast)."""

    def load() -> None:
        for name in names:
            _encoder(name)

    t = threading.Thread(target=load, name="gensight-tokens-warm", daemon=True)
    t.start()
    return t


def count_text(text: str | None, model: str | None = None) -> int:
    """Tokens in ``text`` (special-token markers count as plain text); 0 when unknown."""
    if not text:
        return 0
    enc = _encoder(encoding_name(model))
    if enc is None:
        return max(1, len(text) // 4)  # the usual 4-characters-a-token rule of thumb
    return int(enc.count(text))


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                t = part.get("text")
                if isinstance(t, str):
                    texts.append(t)
        return "".join(texts)
    return str(content)


def count_chat_prompt(messages: Any, model: str | None = None, tools: Any = None) -> int:
    """Estimated ``prompt_tokens`` of a chat request (OpenAI message shape)."""
    if not isinstance(messages, list):
        return 0
    n = REPLY_PRIMING
    for m in messages:
        if not isinstance(m, dict):
            continue
        n += PER_MESSAGE
        n += count_text(str(m.get("role") or ""), model)
        n += count_text(_content_text(m.get("content")), model)
        if m.get("name"):
            n += PER_NAME + count_text(str(m["name"]), model)
        for tc in m.get("tool_calls") or ():
            if isinstance(tc, dict):
                fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
                n += count_text(str(fn.get("name") or ""), model)
                n += count_text(str(fn.get("arguments") or ""), model)
    if tools:
        import orjson

        n += count_text(orjson.dumps(tools).decode(), model)
    return n


def count_texts(texts: Iterable[str | None], model: str | None = None) -> int:
    """Sum of ``count_text`` over several texts."""
    return sum(count_text(t, model) for t in texts)
