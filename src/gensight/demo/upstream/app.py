"""The fake upstream's ASGI app: every endpoint routed, and ``serve`` on a loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gensight.demo.serve import serve_in_thread
from gensight.demo.upstream.completions import CompletionsAPI
from gensight.demo.upstream.config import UpstreamConfig
from gensight.demo.upstream.errors import error_body, invalid
from gensight.demo.upstream.files import FilesAPI
from gensight.demo.upstream.responses import ResponsesAPI


class FakeUpstream(CompletionsAPI, ResponsesAPI, FilesAPI):
    """All the endpoints, plus ``/v1/models`` and the 404 of unknown paths."""

    def _model_obj(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": 1715367049, "owned_by": "system"}

    async def list_models(self, request: Request) -> Response:
        ex, started, _body, early = await self._begin(request)
        if early is not None:
            return early
        data = [self._model_obj(m) for m in self.config.models]
        return self._json(ex, started, 200, {"object": "list", "data": data})

    async def get_model(self, request: Request) -> Response:
        ex, started, _body, early = await self._begin(request)
        if early is not None:
            return early
        name = request.path_params["model"]
        if name not in self.config.models:
            return self._json(ex, started, 404, error_body(404, name))
        return self._json(ex, started, 200, self._model_obj(name))

    async def not_found(self, request: Request) -> Response:
        ex, started, _body, _early = await self._begin(request)
        err = invalid(f"Invalid URL ({request.method} {request.url.path})")
        return self._json(ex, started, 404, err)


def create_app(config: UpstreamConfig | None = None) -> Starlette:
    """Build the fake OpenAI upstream ASGI app.

    ``app.state.log`` is its :class:`RequestLog`, ``app.state.config`` its config.
    Routes are served both under ``/v1`` and at the root (like base URLs that
    already include ``/v1``).
    """
    upstream = FakeUpstream(config or UpstreamConfig())
    routes = []
    for prefix in ("/v1", ""):
        routes += [
            Route(f"{prefix}/chat/completions", upstream.chat_completions, methods=["POST"]),
            Route(f"{prefix}/completions", upstream.completions, methods=["POST"]),
            Route(f"{prefix}/embeddings", upstream.embeddings, methods=["POST"]),
            Route(f"{prefix}/responses", upstream.responses, methods=["POST"]),
            Route(f"{prefix}/files", upstream.create_file, methods=["POST"]),
            Route(f"{prefix}/models", upstream.list_models, methods=["GET"]),
            Route(f"{prefix}/models/{{model:path}}", upstream.get_model, methods=["GET"]),
        ]
    routes.append(
        Route("/{path:path}", upstream.not_found, methods=["GET", "POST", "PUT", "DELETE"])
    )
    app = Starlette(routes=routes)
    app.state.log = upstream.log
    app.state.config = upstream.config
    app.state.upstream = upstream
    return app


@contextlib.contextmanager
def serve(app: Starlette | None = None, **config_kwargs: Any) -> Iterator[str]:
    """Run the fake upstream on a free loopback port; yield ``http://127.0.0.1:PORT/v1``.

    Without ``app``, one is built from ``UpstreamConfig(**config_kwargs)``.
    """
    app = app if app is not None else create_app(UpstreamConfig(**config_kwargs))
    with serve_in_thread(app) as url:
        yield url + "/v1"
