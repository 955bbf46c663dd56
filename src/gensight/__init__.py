"""Gensight: self-hosted observability for applications that call LLM APIs.

The SDK, in one line (see ``gensight.sdk`` for everything it does)::

    import gensight
    gensight.init()            # OTLP to http://127.0.0.1:4318, openai instrumented

    with gensight.span("retrieve"):
        ...

    @gensight.trace
    def answer(question): ...

Importing ``gensight`` costs nothing: the SDK (OpenTelemetry, the ``openai``
instrumentation) loads on the first call of these functions, and nothing of the
server (DuckDB, the web framework) is ever imported by them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["flush", "init", "last_call_id", "score", "shutdown", "span", "trace"]


def init(
    endpoint: str | None = None,
    app: str | None = None,
    environment: str | None = None,
    capture_content: bool | str | None = None,
) -> bool:
    """Send OpenTelemetry traces, metrics and logs over OTLP/HTTP and instrument ``openai``.

    ``endpoint``: OTLP/HTTP base URL (default ``OTEL_EXPORTER_OTLP_ENDPOINT``, else
    ``http://127.0.0.1:4318``); ``app``: ``service.name`` (default ``OTEL_SERVICE_NAME``);
    ``environment``: ``deployment.environment.name``; ``capture_content``: record
    messages (default ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, off).
    Safe to call twice; never raises. Returns whether telemetry is set up.
    """
    from gensight.sdk.setup import init as _init

    return _init(endpoint, app, environment, capture_content)


def shutdown(timeout: float = 5.0) -> None:
    """Export the telemetry not yet sent (waiting at most ``timeout`` s) and stop tracing."""
    from gensight.sdk.setup import shutdown as _shutdown

    _shutdown(timeout)


def flush(timeout: float = 5.0) -> bool:
    """Export the telemetry recorded so far; True if it all left within ``timeout`` s."""
    from gensight.sdk.setup import flush as _flush

    return _flush(timeout)


def span(name: str, **attributes: Any) -> Any:
    """``with gensight.span("retrieve", k=5) as s:`` — a span around a block of the app."""
    from gensight.sdk.workflow import span as _span

    return _span(name, **attributes)


def trace(func: Any = None, /, **attributes: Any) -> Any:
    """``@gensight.trace`` or ``@gensight.trace("name", k=v)``: each call as a span."""
    from gensight.sdk.workflow import trace as _trace

    return _trace(func, **attributes)


def score(
    target_id: str | None = None,
    name: str | None = None,
    value: float | None = None,
    label: str | None = None,
    comment: str | None = None,
    **kwargs: Any,
) -> str | None:
    """``gensight.score(call_id, "helpful", value=1.0)``: quality feedback about a call (the
    gateway's ``X-Gensight-Call-Id``), a trace id, or the current span when ``None``;
    also ``source=`` (user, human, eval, api), ``author=``, ``session=``, ``score_id=``.
    Sent in the background with the app's telemetry; returns the score's id."""
    from gensight.sdk.scores import score as _score

    return _score(target_id, name, value, label, comment, **kwargs)


def last_call_id() -> str | None:
    """The id of the last LLM call this thread or task made through the SDK (for
    ``gensight.score``); None before the first."""
    from gensight.sdk.scores import last_call_id as _last

    return _last()
