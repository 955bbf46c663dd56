"""How the gateway answers when it cannot forward: OpenAI-style error bodies.

Every refusal and every failure the gateway itself produces (unknown upstream, body
too large, budget, unreachable upstream) answers in the OpenAI API's error shape, which
every OpenAI client already parses; ``Failure`` is an upstream attempt that produced
no response at all.
"""

from __future__ import annotations

import orjson
from starlette.types import Send

#: How much of an upstream error body is kept as ``error_message``.
MAX_ERROR_MESSAGE = 8192


class Failure(Exception):
    """An attempt that produced no response: ``error_class`` is connection or timeout."""

    def __init__(self, error_class: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.retryable = retryable


def content_free(text: str | None) -> str | None:
    """An upstream error body reduced to what names the error (its type, code, status).

    Providers' error messages often quote the request ("… 'messages[0].content' …"), so
    with ``--capture metadata`` their bodies are not stored, only this summary."""
    if not text:
        return text
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        data = None
    err = data.get("error") if isinstance(data, dict) else None
    parts = []
    if isinstance(err, dict):
        for k in ("type", "code", "status"):
            v = err.get(k)
            if isinstance(v, (str, int)) and not isinstance(v, bool) and len(str(v)) <= 64:
                parts.append(f"{k}={v}")
    named = f" ({', '.join(parts)})" if parts else ""
    return f"upstream error{named}; body not stored (--capture metadata)"


def openai_error(message: str, type_: str, code: str | None = None) -> bytes:
    """An error body in the OpenAI API's shape, which every OpenAI client understands."""
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


async def send_json(send: Send, status: int, body: bytes, no_retry: bool = False) -> None:
    """Send a whole JSON answer (the gateway's own errors) on an ASGI ``send``;
    ``no_retry`` adds ``x-should-retry: false`` (OpenAI's SDKs then do not retry)."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if no_retry:
        headers.append((b"x-should-retry", b"false"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
