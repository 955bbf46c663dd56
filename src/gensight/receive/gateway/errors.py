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
