"""How the gateway answers when it cannot forward: error bodies in the client's shape.

Every refusal and every failure the gateway itself produces (unknown upstream, body
too large, budget, unreachable upstream) answers in the error shape of the wire the
upstream speaks (``wire_error``): OpenAI's ``{"error": {message, type, param, code}}``,
Anthropic's ``{"type": "error", "error": {type, message}}`` or Google's
``{"error": {code, message, status}}``, which that provider's clients already parse;
a stream cut mid-way ends with that wire's error event (``stream_error_event``).
``Failure`` is an upstream attempt that produced no response at all.
"""

from __future__ import annotations

from collections.abc import Sequence

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


#: Anthropic's error ``type`` and Google's status name for the statuses the gateway sends.
_ANTHROPIC_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
}
_GOOGLE_STATUS = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    502: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def wire_error(
    wire: str | None, status: int, message: str, type_: str, code: str | None = None
) -> bytes:
    """An error body in the shape of ``wire`` (OpenAI's for None and ``openai``)."""
    if wire == "anthropic":
        kind = _ANTHROPIC_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    if wire == "gemini":
        name = _GOOGLE_STATUS.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        return orjson.dumps({"error": {"code": status, "message": message, "status": name}})
    return openai_error(message, type_, code)


def stream_error_event(wire: str | None, status: int, message: str, code: str) -> bytes:
    """The event that ends a stream the upstream broke off, as ``wire`` reports errors."""
    body = wire_error(wire, status, message, "upstream_error", code)
    if wire == "anthropic":
        return b"event: error\ndata: " + body + b"\n\n"
    if wire == "gemini":
        return b"data: " + body + b"\r\n\r\n"
    return b"data: " + body + b"\n\n"


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    no_retry: bool = False,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Send a whole JSON answer (the gateway's own errors) on an ASGI ``send``;
    ``no_retry`` adds ``x-should-retry: false`` (OpenAI's SDKs then do not retry)."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    if no_retry:
        headers.append((b"x-should-retry", b"false"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
