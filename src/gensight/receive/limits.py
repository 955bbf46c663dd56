"""Bounds on what one connection may cost: body sizes per route, read timeouts.

- **Bodies.** ``BodyLimit`` answers 413 as soon as a body is known to exceed its route's
  limit: at once from ``Content-Length``, else when the bytes read pass it, never reading
  further. ``/login`` and ``/logout`` take 8 KiB, the UI's forms and ``/api/alert-rules``
  16 KiB, other ``/api`` writes 1 MiB, ``/api/import`` ``--max-body``; OTLP and the
  gateway apply ``--max-body`` themselves (the gateway records the refusal as a call).
- **Slow bodies.** A body must arrive within ``--body-timeout`` of the request's start
  (408 and the connection closed otherwise), so a client trickling bytes cannot hold a
  connection open.
- **Slow headers and idle connections.** ``protocol_class`` gives uvicorn's HTTP protocol
  a deadline for a request's headers (``--header-timeout``, from the connection's start or
  the previous response's end); ``--keep-alive-timeout`` closes idle keep-alive
  connections (uvicorn's own timer).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gensight.receive.auth import GATEWAY_PREFIXES

KiB = 1024
SMALL_FORM = 8 * KiB
FORM = 16 * KiB
API = 1024 * KiB


def body_limit(path: str, max_body: int) -> int | None:
    """The most bytes a request body to ``path`` may have (None: the route bounds it)."""
    if path.startswith(GATEWAY_PREFIXES) or path.startswith("/v1/"):
        return None  # OTLP and the gateway enforce --max-body with their own answers
    if path in ("/login", "/logout"):
        return SMALL_FORM
    if path == "/api/import":
        return max_body
    if path.startswith("/api/alert-rules"):
        return FORM
    if path.startswith("/api/"):
        return API
    return FORM  # the UI's forms


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


class BodyLimit:
    """Refuses bodies over their route's limit (413) and bodies read too slowly (408)."""

    def __init__(self, app: ASGIApp, max_body: int, body_timeout: float) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = body_limit(path, self.max_body)
        if limit is not None:
            for name, value in scope.get("headers") or ():
                if name == b"content-length":
                    if not value.strip().isdigit():
                        await _refuse(scope, receive, send, 400, "Content-Length is not a number")
                        return
                    if int(value) > limit:
                        await _refuse(scope, receive, send, 413, _too_large(path, limit))
                        return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        size = 0
        body_done = False
        started = False

        async def bounded_receive() -> Message:
            nonlocal size, body_done
            if body_done:  # later receives wait for the disconnect: no deadline on those
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                raise _TooSlow from None
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if limit is not None and size > limit:
                    raise _TooLarge
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _refuse(scope, receive, send, 413, _too_large(path, limit or 0))
        except _TooSlow:
            if not started:
                await _refuse(
                    scope, receive, send, 408,
                    f"the request body did not arrive within {self.body_timeout:g} s",
                )  # fmt: skip


def _too_large(path: str, limit: int) -> str:
    return f"request body exceeds the limit of {limit} bytes for {path}"


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    # "Connection: close": the unread rest of the body must not be taken as a next request
    response = JSONResponse({"detail": detail}, status_code=status, headers={"connection": "close"})
    await response(scope, receive, send)


def protocol_class(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (the one it would pick) with a deadline for headers."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class HeaderDeadline(base):  # type: ignore[misc, valid-type]
        """Closes a connection whose request headers take longer than ``header_timeout``."""

        _header_timer: asyncio.TimerHandle | None = None
        _armed_cycle: Any = None

        def _arm(self) -> None:
            self._disarm()
            self._armed_cycle = self.cycle
            self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._header_timer is not None and self.cycle is not self._armed_cycle:
                self._disarm()  # a request's headers are complete

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and (
                self.cycle is None or self.cycle.response_complete
            ):
                self._arm()  # the next request's headers must come in time too

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadline


def server_options(header_timeout: float, keep_alive_timeout: float) -> dict[str, Any]:
    """The uvicorn options ``gensight serve`` runs with (tests use the same)."""
    return {
        "http": protocol_class(header_timeout),
        "timeout_keep_alive": keep_alive_timeout,
        "h11_max_incomplete_event_size": 64 * KiB,
    }
