"""Stream wrappers: an ``openai.Stream`` / ``AsyncStream`` watched in place.

The app keeps the very stream object it got; its iterator is replaced by one that
reads each chunk into the ``Call`` on the way (time to first chunk, finish reasons,
usage, text when capture is on) and ends the call when the stream ends, fails, is
closed or is dropped. When the SDK asked for usage the app did not, the usage chunk
and the ``"usage": null`` members are cut before the client parses them.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from gensight.sdk.operations import CHAT, _chat_usage
from gensight.sdk.runtime import orphans, warn_once

if TYPE_CHECKING:
    from gensight.sdk.call import Call

_perf = time.perf_counter
_time_ns = time.time_ns


def _take_usage(data: str, call: Call) -> bool:
    """Read a usage-only chunk's JSON into the call; False if ``data`` is not one."""
    try:
        chunk = json.loads(data)
    except ValueError:
        return False
    usage = chunk.get("usage") if isinstance(chunk, dict) else None
    if not isinstance(usage, dict) or chunk.get("choices"):
        return False
    call.input_tokens = usage.get("prompt_tokens")
    call.output_tokens = usage.get("completion_tokens")
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        call.cache_read_tokens = details.get("cached_tokens")
    details = usage.get("completion_tokens_details")
    if isinstance(details, dict):
        call.reasoning_tokens = details.get("reasoning_tokens")
    return True


def _strip_null_usage(data: str) -> str:
    """A chunk's JSON without its ``"usage": null`` member (either spacing, any place)."""
    for member in (',"usage":null', ', "usage": null'):
        if member in data:
            return data.replace(member, "", 1)
    for member in ('"usage":null,', '"usage": null, '):
        if member in data:
            return data.replace(member, "", 1)
    return data


def _skip_usage(events: Iterator[Any], call: Call) -> Iterator[Any]:
    """The stream's server-sent events as the app would have had them without usage.

    With ``include_usage`` the provider adds ``"usage": null`` to every chunk and a
    final usage-only chunk. The nulls are cut from the JSON (the client would build
    that field of every chunk's model for nothing) and the usage chunk is read here
    and dropped, before the client builds a model of it (some 400 Python calls).
    """
    for sse in events:
        try:
            data = sse._data  # the ``data`` property's field: a Python call less per event
        except AttributeError:
            yield sse
            continue
        if ',"usage":null' in data:  # OpenAI's compact JSON, inline: it is every chunk
            sse._data = data.replace(',"usage":null', "", 1)
        elif '"usage":null' in data or '"usage": null' in data:
            sse._data = _strip_null_usage(data)
        elif ('"choices":[]' in data or '"choices": []' in data) and _take_usage(data, call):
            continue
        yield sse


async def _askip_usage(events: AsyncIterator[Any], call: Call) -> AsyncIterator[Any]:
    async for sse in events:
        try:
            data = sse._data
        except AttributeError:
            yield sse
            continue
        if ',"usage":null' in data:  # OpenAI's compact JSON, inline: it is every chunk
            sse._data = data.replace(',"usage":null', "", 1)
        elif '"usage":null' in data or '"usage": null' in data:
            sse._data = _strip_null_usage(data)
        elif ('"choices":[]' in data or '"choices": []' in data) and _take_usage(data, call):
            continue
        yield sse


def wrap_stream(stream: Any, call: Call) -> None:
    """Watch a sync ``openai.Stream`` in place: same object, its chunks seen on the way."""
    call.finish = {}
    if call.capture:
        call.texts = {}
        call.tools = {}
    events = getattr(stream, "_iter_events", None)
    if call.hide_usage_chunk and events is not None:
        stream._iter_events = lambda: _skip_usage(events(), call)
    chat = call.op is CHAT and not call.capture
    gen = (_iterate_chat if chat else _iterate)(stream._iterator, call)
    stream._iterator = gen
    response = stream.response
    original_close = response.close

    def close() -> None:
        try:
            original_close()
        finally:
            # closed from inside the stream (its end, or an error): the iterator ends
            # the span itself, with the outcome it is about to see
            if not gen.gi_running:
                call.end_closed()

    response.close = close


def _iterate(inner: Iterator[Any], call: Call) -> Iterator[Any]:
    on_chunk = call.op.chunk
    first = True
    try:
        for chunk in inner:
            if first:
                call.ttft = _perf() - call.t0
                first = False
            try:
                keep = on_chunk(chunk, call)
            except Exception:
                warn_once("chunk", "gensight: could not read a stream chunk")
                keep = True
            if keep:
                yield chunk
    except GeneratorExit:
        # closed by the garbage collector: end the span outside of it
        if not call.done:
            orphans.append((call, _perf(), _time_ns()))
        raise
    except BaseException as exc:
        call.fail(exc)
        raise
    call.end()


def _iterate_chat(inner: Iterator[Any], call: Call) -> Iterator[Any]:
    """``_iterate`` for chat completions without content capture, ``Chat.chunk`` inlined.

    The common streamed call: every Python call saved here is saved per chunk.
    """
    finish = call.finish
    assert finish is not None
    first = True
    try:
        for chunk in inner:
            if first:
                call.ttft = _perf() - call.t0
                first = False
                call.response_id = chunk.id
                call.response_model = chunk.model
                call.service_tier = getattr(chunk, "service_tier", None)
                call.fingerprint = getattr(chunk, "system_fingerprint", None)
            choices = chunk.choices
            for ch in choices:
                if ch.finish_reason is not None:
                    finish[ch.index] = ch.finish_reason
            if chunk.usage is not None:
                try:
                    _chat_usage(call, chunk.usage)
                except Exception:
                    warn_once("chunk", "gensight: could not read a stream chunk")
                if not choices and call.hide_usage_chunk:
                    continue
            yield chunk
    except GeneratorExit:
        if not call.done:
            orphans.append((call, _perf(), _time_ns()))
        raise
    except BaseException as exc:
        call.fail(exc)
        raise
    call.end()


def wrap_async_stream(stream: Any, call: Call) -> None:
    """Watch an ``openai.AsyncStream`` in place (see ``_wrap_stream``)."""
    call.finish = {}
    if call.capture:
        call.texts = {}
        call.tools = {}
    events = getattr(stream, "_iter_events", None)
    if call.hide_usage_chunk and events is not None:
        stream._iter_events = lambda: _askip_usage(events(), call)
    gen = _aiterate(stream._iterator, call)
    stream._iterator = gen
    response = stream.response
    original_aclose = response.aclose

    async def aclose() -> None:
        try:
            await original_aclose()
        finally:
            if not gen.ag_running:
                call.end_closed()

    response.aclose = aclose


async def _aiterate(inner: AsyncIterator[Any], call: Call) -> AsyncIterator[Any]:
    on_chunk = call.op.chunk
    first = True
    try:
        async for chunk in inner:
            if first:
                call.ttft = _perf() - call.t0
                first = False
            try:
                keep = on_chunk(chunk, call)
            except Exception:
                warn_once("chunk", "gensight: could not read a stream chunk")
                keep = True
            if keep:
                yield chunk
    except GeneratorExit:
        # finalized by the event loop (not inside the garbage collector)
        call.end_abandoned(_perf(), _time_ns())
        raise
    except BaseException as exc:
        call.fail(exc)
        raise
    call.end()
