"""The wrappers: one span, its metrics and (opt-in) content per OpenAI call.

A wrapped method opens a ``Call`` (``Telemetry.begin``: the span, started as the
current span, with the request's attributes), runs the original method, then either
ends the call with the response's attributes or, for a stream, hands the call to the
stream (``streams``): the span then ends when the stream does (read to the end,
closed, failed, or dropped by the app).

Nothing here may raise into the app: if telemetry fails the original method still
runs, and the app's own exceptions pass through unchanged after being recorded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from gensight.sdk.operations import Operation
from gensight.sdk.telemetry import Telemetry


def wrap_sync(original: Callable[..., Any], op: Operation, tel: Telemetry) -> Callable[..., Any]:
    """A traced version of a sync resource method such as ``Completions.create``."""

    @functools.wraps(original)
    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = tel.begin(op, self, kwargs)
        if call is None:
            return original(self, *args, **kwargs)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        return call.succeed(result)

    traced.__gensight_original__ = original  # type: ignore[attr-defined]
    return traced


def wrap_async(original: Callable[..., Any], op: Operation, tel: Telemetry) -> Callable[..., Any]:
    """A traced version of an async resource method such as ``AsyncCompletions.create``."""

    @functools.wraps(original)
    async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = tel.begin(op, self, kwargs)
        if call is None:
            return await original(self, *args, **kwargs)
        call.is_async = True
        try:
            result = await original(self, *args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        return call.succeed(result)

    traced.__gensight_original__ = original  # type: ignore[attr-defined]
    return traced
