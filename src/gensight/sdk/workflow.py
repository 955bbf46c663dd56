"""``gensight.span`` and ``gensight.trace``: the app's own steps as spans.

So a request reads as one tree: the HTTP handler, the retrieval, each LLM call::

    with gensight.span("retrieve", k=5) as span:
        docs = index.search(question)
        span.set_attribute("documents", len(docs))

    @gensight.trace
    async def answer(question: str) -> str: ...

Both use the current OpenTelemetry context, so they nest under spans of other
instrumentations (a FastAPI request) and the OpenAI spans nest under them. They
never raise into the app: an exception from the app's code is recorded on the span
(status error, ``exception`` event) and re-raised unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload

from opentelemetry import trace as otel_trace

log = logging.getLogger("gensight.sdk")

F = TypeVar("F", bound=Callable[..., Any])


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    """Attribute values OpenTelemetry accepts; anything else as its ``str``."""
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, str | bool | int | float):
            out[key] = value
        elif isinstance(value, list | tuple) and all(
            isinstance(v, str | bool | int | float) for v in value
        ):
            out[key] = list(value)
        else:
            out[key] = str(value)
    return out


def _tracer() -> Any:
    from gensight.sdk.setup import tracer

    return tracer()


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span around a block, child of the current span; yields the OpenTelemetry span."""
    try:
        cm = _tracer().start_as_current_span(name, attributes=_clean(attributes))
        current = cm.__enter__()
    except Exception:
        log.debug("gensight: could not start span %r", name, exc_info=True)
        yield otel_trace.INVALID_SPAN
        return
    try:
        yield current
    except BaseException as exc:
        if not cm.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        try:
            cm.__exit__(None, None, None)
        except Exception:
            log.debug("gensight: could not end span %r", name, exc_info=True)


@overload
def trace(func: F, /) -> F: ...


@overload
def trace(name: str | None = None, /, **attributes: Any) -> Callable[[F], F]: ...


def trace(func: Any = None, /, **attributes: Any) -> Any:
    """Decorate a function (sync, async, generator) so each call is a span.

    ``@gensight.trace``, ``@gensight.trace("name")`` or ``@gensight.trace(k=v)``; the
    span is named after the function's qualified name unless a name is given.
    """
    if callable(func):
        return _decorate(func, None, attributes)
    name = func if isinstance(func, str) else None

    def decorator(f: F) -> F:
        return _decorate(f, name, attributes)

    return decorator


def _decorate(func: Any, name: str | None, attributes: dict[str, Any]) -> Any:
    span_name = name or getattr(func, "__qualname__", None) or repr(func)
    attrs = {"code.function.name": f"{func.__module__}.{getattr(func, '__qualname__', '')}"}
    attrs.update(attributes)

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            with span(span_name, **attrs):
                async for item in func(*args, **kwargs):
                    yield item

        return agen_wrapper

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            with span(span_name, **attrs):
                return await func(*args, **kwargs)

        return async_wrapper

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            with span(span_name, **attrs):
                return (yield from func(*args, **kwargs))

        return gen_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with span(span_name, **attrs):
            return func(*args, **kwargs)

    return wrapper
