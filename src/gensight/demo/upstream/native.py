"""What the fake Anthropic and Gemini upstreams share: the request log, the catch-all
404 in the provider's own error shape, and the app with its routes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gensight.demo.upstream.recording import Exchange, RequestLog


class NativeFake:
    """A provider's fake: ``log`` keeps every exchange; ``_error`` answers in its shape."""

    def __init__(self) -> None:
        self.log = RequestLog()

    def _error(self, ex: Exchange, status: int, message: str | None = None) -> Response:
        raise NotImplementedError

    async def not_found(self, request: Request) -> Response:
        ex = Exchange(
            id=uuid.uuid4().hex, ts=time.time(), method=request.method, path=request.url.path,
            headers=dict(request.headers), body=None,
        )  # fmt: skip
        return self._error(ex, 404, f"Not found: {request.url.path}")

    def app(self, routes: Sequence[BaseRoute]) -> Starlette:
        """The ASGI app of ``routes``, anything else a 404; ``app.state.log`` is the log."""
        app = Starlette(
            routes=[
                *routes,
                Route("/{path:path}", self.not_found, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )
        app.state.log = self.log
        return app
