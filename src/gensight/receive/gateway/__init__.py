"""The gateway: an OpenAI-compatible recording proxy ("change one URL").

Usage: point any OpenAI client at Gensight instead of the provider::

    client = OpenAI(base_url="http://127.0.0.1:4318/openai/v1")        # upstream "openai"
    client = OpenAI(base_url="http://127.0.0.1:4318/p/deepseek/v1")    # upstream "deepseek"

and every call is recorded (input, output, latency, time to first token, tokens,
cost, failure cause) while the client notices nothing.

Routes
    ``/openai/v1/{path}`` goes to the upstream named ``openai``, ``/p/{name}/v1/{path}``
    to the upstream ``name``; upstreams come from ``gensight serve --upstream NAME=URL``
    (default ``openai=https://api.openai.com/v1``). An unknown name gets a 404 in the
    OpenAI error shape listing the configured upstreams; no other host is contacted.

Transparency
    Status, headers and body pass through unchanged (hop-by-hop headers aside; the
    server sets its own ``Date``). ``Authorization``, ``api-key`` and every other
    header are forwarded and never stored or logged. One exception: a streamed chat
    completion is sent upstream with ``stream_options.include_usage`` set, and when
    the client had not asked for usage the final usage chunk is removed (the other
    chunks then carry ``"usage": null``, as with the option set). Streams are
    forwarded chunk by chunk as they arrive.

Request headers read and stripped
    ``X-Gensight-App``, ``X-Gensight-User``, ``X-Gensight-Session``,
    ``X-Gensight-Tags`` (comma list) set the record's fields; ``X-Gensight-Key`` is
    the gateway key when the server has ``--api-key``. ``traceparent`` is forwarded
    and makes the gateway span a child of the caller's span.

Failures
    ``--retries N`` (default 2): 429, 5xx and connection failures are retried with
    exponential backoff and jitter (``Retry-After`` / ``retry-after-ms`` honoured,
    up to ``--retry-max-wait``), only while nothing has reached the client; then
    ``--fallback NAME`` gets the same tries. Upstream error answers reach the client
    as sent; an upstream that cannot be reached gets a 502, one that does not answer
    in time (``--upstream-timeout``) a 504, both with an OpenAI-style error body.
    A stream cut mid-way ends with an OpenAI-style ``data: {"error": …}`` event.
    Every attempt is a client span under the gateway's server span.

Recording is fail-open: records go to the pipeline's bounded queue without waiting;
a full queue or a down store costs records (counted in ``/api/health``), never calls.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gensight.model.settings import Settings
from gensight.receive.gateway.proxy import Gateway, Submit, openai_error

__all__ = ["Gateway", "GatewayMiddleware", "from_settings", "openai_error"]


class GatewayMiddleware:
    """Serves the gateway's paths ahead of the rest of the app.

    A proxy's overhead is per request, so gateway requests skip the web framework's
    routing and middleware (the key check, added outside this, still applies):
    ``/openai/v1/…`` and ``/p/{name}/v1/…`` go straight to ``Gateway.handle``.
    """

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/openai/v1/"):
                await self.gateway.handle(scope, receive, send, "openai")
                return
            if path.startswith("/p/"):
                name, _, rest = path[3:].partition("/")
                if name and rest.startswith("v1/"):
                    await self.gateway.handle(scope, receive, send, name)
                    return
        await self.app(scope, receive, send)


def from_settings(settings: Settings, submit: Submit, counters: dict[str, int]) -> Gateway:
    """A gateway configured from the server's ``Settings``."""
    return Gateway(
        dict(settings.upstreams),
        submit,
        counters,
        retries=settings.retries,
        fallback=settings.fallback,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.upstream_timeout,
        retry_backoff=settings.retry_backoff,
        retry_max_wait=settings.retry_max_wait,
        max_body=settings.max_body,
        capture_content=settings.capture_content,
    )
