"""The wrappers: one span, its metrics and (opt-in) content per OpenAI call.

A wrapped method opens a ``Call`` (the span, started as the current span, with the
request's attributes), runs the original method, then either ends the call with the
response's attributes or, for a stream, hands the call to the stream: the span then
ends when the stream does (read to the end, closed, failed, or dropped by the app).

Nothing here may raise into the app: if telemetry fails the original method still
runs, and the app's own exceptions pass through unchanged after being recorded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import openai
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from gensight.conventions.providers import provider_for_host
from gensight.sdk import attributes as a
from gensight.sdk import content
from gensight.sdk.instruments import Instruments
from gensight.sdk.operations import CHAT, Operation, _chat_usage, _given

log = logging.getLogger("gensight.sdk")

_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"
_perf = time.perf_counter
_time_ns = time.time_ns

#: Streams dropped by the app without being closed, waiting for their span to end.
#: Their finalizer runs inside the garbage collector, where ending a span (which
#: takes the span processor's locks) could deadlock; the next call ends them instead.
_orphans: collections.deque[tuple[Call, float, int]] = collections.deque()

_warned: set[str] = set()

#: Ways a call ends without an answer because the caller gave up on it.
_CANCELLED = (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt, SystemExit)


def _warn_once(key: str, message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args, exc_info=log.isEnabledFor(logging.DEBUG))


def drain_orphans() -> None:
    """End the spans of streams the app dropped (see ``_orphans``)."""
    while _orphans:
        try:
            call, end_perf, end_ns = _orphans.popleft()
        except IndexError:
            return
        call.end_abandoned(end_perf, end_ns)


# -- where a client's calls go ---------------------------------------------------------

# Host → ``gen_ai.provider.name``: the one provider table (shared with the gateway and
# the mappers); anything else speaking the OpenAI API is reported as ``openai`` (the
# conventions' "telemetry flavour" reading of the name).
_AZURE_CLIENTS = (openai.AzureOpenAI, openai.AsyncAzureOpenAI)
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0"})
_GATEWAY_PATH = re.compile(r"^/(?:openai/v1|p/[^/]+/v1)(?:/|$)")


class Gateway:
    """Recognizes base URLs that point at the Gensight gateway of ``endpoint``."""

    def __init__(self, endpoint: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
        self.hosts = _LOOPBACK if host in _LOOPBACK else frozenset({host})
        self.port = parts.port or (443 if parts.scheme == "https" else 80)

    def matches(self, host: str, port: int, path: str) -> bool:
        """Whether ``host:port/path`` is this gateway's ``/openai/v1`` or ``/p/NAME/v1``."""
        return host in self.hosts and port == self.port and bool(_GATEWAY_PATH.match(path))


class Target:
    """What a client's base URL means for its spans, resolved once per URL."""

    __slots__ = ("url", "provider", "attrs", "metric_attrs", "via_gateway", "headers")

    def __init__(self, url: Any, client: Any, gateway: Gateway | None, app: str | None) -> None:
        self.url = url
        host = (url.host or "").lower()
        port = url.port or (443 if url.scheme == "https" else 80)
        provider = provider_for_host(host) or "openai"
        if provider == "openai" and isinstance(client, _AZURE_CLIENTS):
            provider = "azure.ai.openai"
        self.provider = provider
        self.via_gateway = gateway is not None and gateway.matches(host, port, url.path)
        # Metrics get the required attributes only: every attribute of every measurement
        # costs ~1.5 µs of cleaning and hashing in the OpenTelemetry SDK.
        self.metric_attrs = {a.GEN_AI_PROVIDER_NAME: provider}
        self.attrs = {
            a.GEN_AI_PROVIDER_NAME: provider,
            a.SERVER_ADDRESS: host,
            a.SERVER_PORT: port,
        }
        self.headers: dict[str, str] = {}
        if self.via_gateway:
            self.attrs[a.GENSIGHT_VIA_GATEWAY] = True
            if app:
                self.headers["X-Gensight-App"] = app


# -- the telemetry of one instrumentation ----------------------------------------------


class Telemetry:
    """Everything a wrapper needs: tracer, instruments, settings, caches."""

    def __init__(
        self,
        tracer: Any,
        meter: Any,
        logger: Any,
        *,
        capture_span: bool,
        capture_event: bool,
        pricer: Any = None,
        gateway: Gateway | None = None,
        app: str | None = None,
        stream_usage: bool = True,
    ) -> None:
        self.tracer = tracer
        self.instruments = Instruments(meter)
        self.logger = logger
        self.capture_span = capture_span
        self.capture_event = capture_event
        self.capture = capture_span or capture_event
        #: a ``gensight.enrich.pricing.Pricer`` once its price data is loaded, else None
        self.pricer = pricer
        self.gateway = gateway
        self.app = app
        self.stream_usage = stream_usage
        self._targets: dict[int, Target] = {}
        #: whether the sampler's decision ignores attributes (see ``begin``)
        self.late_attributes = _ignores_attributes(getattr(tracer, "sampler", None))

    def target(self, client: Any) -> Target:
        # ``_base_url``: openai 3's ``base_url`` property imports a module on every read
        url = getattr(client, "_base_url", None) or client.base_url
        t = self._targets.get(id(url))
        if t is None or t.url is not url:
            t = Target(url, client, self.gateway, self.app)
            if len(self._targets) > 1000:
                self._targets.clear()
            self._targets[id(url)] = t
        return t

    def cost(self, call: Call) -> float | None:
        if call.input_tokens is None and call.output_tokens is None:
            return None
        pricer = self.pricer
        if pricer is None:
            return None
        provider = call.target.provider
        for model in (call.response_model, call.request_model):
            if model:
                usd, _ = pricer.cost(
                    provider=provider,
                    model=model,
                    input_tokens=call.input_tokens,
                    output_tokens=call.output_tokens,
                    cache_read_tokens=call.cache_read_tokens,
                    reasoning_tokens=call.reasoning_tokens,
                    # a self-hosted server (loopback, private) is not priced publicly
                    server_address=call.target.attrs[a.SERVER_ADDRESS],
                )
                if usd is not None:
                    return usd
        return None

    def begin(self, op: Operation, resource: Any, kwargs: dict[str, Any]) -> Call | None:
        """Start the span of a call about to be made; adjusts ``kwargs`` in place.

        Returns None (the call then runs untraced) if anything goes wrong.
        """
        try:
            if _orphans:
                drain_orphans()
            target = self.target(resource._client)
            model = kwargs.get("model")
            attrs = {a.GEN_AI_OPERATION_NAME: op.name, **target.attrs}
            if op.api_type is not None:
                attrs[a.OPENAI_API_TYPE] = op.api_type
            if isinstance(model, str):
                attrs[a.GEN_AI_REQUEST_MODEL] = model
                name = f"{op.name} {model}"
            else:
                model = None
                name = op.name
            stream = kwargs.get("stream") is True
            if stream:
                attrs[a.GEN_AI_REQUEST_STREAM] = True
            op.request(kwargs, attrs)
            if self.late_attributes:
                # Same span, a quarter of the cost: the SDK cleans attributes given at
                # creation value by value; a sampler that ignores them loses nothing.
                span = self.tracer.start_span(name, kind=SpanKind.CLIENT)
                _set_attributes(span, attrs)
            else:
                span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)

            call = StreamCall() if stream else Call()
            call.tel = self
            call.op = op
            call.span = span
            call.target = target
            call.request_model = model
            call.stream = stream
            call.capture = self.capture
            extra = kwargs.get("extra_headers")
            if extra:
                call.raw = extra.get(_RAW_RESPONSE_HEADER)
            if stream and op.usage_needs_stream_options and self.stream_usage:
                _ask_stream_usage(kwargs, call)
            if self.capture:
                op.request_content(kwargs, call)
            span_context = otel_trace.set_span_in_context(span)
            if target.via_gateway:
                headers = dict(extra) if extra else {}
                given = {k.lower() for k in headers}
                # the app's own X-Gensight-App (per request) wins over the SDK's app name
                headers.update((k, v) for k, v in target.headers.items() if k.lower() not in given)
                propagate.inject(headers, context=span_context)
                kwargs["extra_headers"] = headers
            call.token = otel_context.attach(span_context)
            call.t0 = _perf()
            return call
        except Exception:
            _warn_once("begin", "gensight: could not start the span of an OpenAI call")
            return None


def _ignores_attributes(sampler: Any) -> bool:
    """Whether an SDK sampler decides without looking at span attributes."""
    try:
        from opentelemetry.sdk.trace import sampling
    except ImportError:
        return False
    if isinstance(sampler, sampling.StaticSampler | sampling.TraceIdRatioBased):
        return True
    if type(sampler) is sampling.ParentBased:
        parts = ("_root", "_remote_parent_sampled", "_remote_parent_not_sampled")
        parts += ("_local_parent_sampled", "_local_parent_not_sampled")
        return all(_ignores_attributes(getattr(sampler, p, None)) for p in parts)
    return False


def _ask_stream_usage(kwargs: dict[str, Any], call: Call) -> None:
    """Ask for the final usage chunk, which the app then does not see unless it asked.

    Sent as ``extra_body``, which the client copies into the JSON as is: as a
    ``stream_options`` argument it would go through the client's typed-dict transform,
    which costs more (~150 µs) than everything else the SDK does for a call.
    """
    options = _given(kwargs, "stream_options")
    if options is None:
        extra = _given(kwargs, "extra_body")
        if extra is None:
            kwargs["extra_body"] = {"stream_options": {"include_usage": True}}
        elif isinstance(extra, dict) and "stream_options" not in extra:
            kwargs["extra_body"] = {**extra, "stream_options": {"include_usage": True}}
        else:
            return
        call.hide_usage_chunk = True
    elif isinstance(options, dict) and "include_usage" not in options:
        kwargs["stream_options"] = {**options, "include_usage": True}
        call.hide_usage_chunk = True


# -- one call in flight ----------------------------------------------------------------


class Call:
    """One OpenAI call in flight: its span and what the response said so far.

    Unset fields fall back to the class defaults, so starting a call only sets what
    it knows.
    """

    tel: Telemetry
    op: Operation
    span: Any
    target: Target
    token: Any = None
    t0: float = 0.0
    request_model: str | None = None
    stream = False
    capture = False
    raw: str | None = None
    is_async = False
    hide_usage_chunk = False
    done = False
    ttft: float | None = None
    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] | None = None
    finish: dict[int, str] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    reasoning_tokens: int | None = None
    service_tier: str | None = None
    fingerprint: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    input_messages: list[dict[str, Any]] | None = None
    output_messages: list[dict[str, Any]] | None = None
    system_instructions: list[dict[str, Any]] | None = None
    texts: dict[int, list[str]] | None = None
    tools: dict[int, dict[int, dict[str, Any]]] | None = None

    def detach(self) -> None:
        token = self.token
        if token is not None:
            self.token = None
            try:  # noqa: SIM105 - hot path: a plain try costs nothing, suppress() does
                otel_context.detach(token)
            except Exception:
                pass

    # -- outcomes --------------------------------------------------------------------

    def succeed(self, result: Any) -> Any:
        """The original method returned ``result``: end the span or hand it to the stream."""
        try:
            self.detach()
            raw = self.raw
            if raw == "stream":  # with_streaming_response: the body is the app's to read
                self._follow_raw_stream(result)
                return result
            parsed = result.parse() if raw else result
            if self.stream:
                if isinstance(parsed, openai.Stream):
                    _wrap_stream(parsed, self)
                    return result
                if isinstance(parsed, openai.AsyncStream):
                    _wrap_async_stream(parsed, self)
                    return result
            self.op.response(parsed, self)
            self.end()
        except Exception:
            _warn_once("succeed", "gensight: could not record an OpenAI response")
            self.end()
        return result

    def fail(self, exc: BaseException) -> None:
        """The call (or its stream) raised ``exc``."""
        if self.done:
            return
        try:
            self.detach()
            if isinstance(exc, openai.APIStatusError):
                self.span.set_attribute(a.HTTP_RESPONSE_STATUS_CODE, exc.status_code)
            elif isinstance(exc, _CANCELLED):
                self.error_type = "cancelled"
                self.error_message = f"{type(exc).__name__}: the call was interrupted"
                self.end()
                return
            self.error_type = type(exc).__qualname__
            self.error_message = str(exc)[:1000] or self.error_type
            self.end()
        except Exception:
            _warn_once("fail", "gensight: could not record an OpenAI error")

    def end_closed(self) -> None:
        """The app closed the stream: fine if the answer was complete, else cancelled."""
        if not self.done and not self._complete():
            self.error_type = "cancelled"
            self.error_message = "the stream was closed before it was complete"
        self.end()

    def end_abandoned(self, end_perf: float, end_ns: int) -> None:
        """The app dropped the stream without closing it (see ``_orphans``)."""
        if not self.done and not self._complete():
            self.error_type = "cancelled"
            self.error_message = "the stream was abandoned before it was complete"
        self.end(end_perf, end_ns)

    def _complete(self) -> bool:
        return bool(self.finish or self.finish_reasons)

    def _follow_raw_stream(self, response: Any) -> None:
        """End the span when the app closes a ``with_streaming_response`` response."""
        http = response.http_response
        if http.status_code >= 400:
            self.span.set_attribute(a.HTTP_RESPONSE_STATUS_CODE, http.status_code)
            self.error_type = str(http.status_code)
        if self.is_async:
            original_aclose = http.aclose

            async def aclose() -> None:
                try:
                    await original_aclose()
                finally:
                    self.end()

            http.aclose = aclose
        else:
            original_close = http.close

            def close() -> None:
                try:
                    original_close()
                finally:
                    self.end()

            http.close = close

    # -- the end ---------------------------------------------------------------------

    def end(self, end_perf: float | None = None, end_ns: int | None = None) -> None:
        """Set the response attributes, end the span, record the metrics. Idempotent."""
        if self.done:
            return
        self.done = True
        try:
            self._end(end_perf, end_ns)
        except Exception:
            _warn_once("end", "gensight: could not end the span of an OpenAI call")
            with contextlib.suppress(Exception):
                self.span.end()

    def _end(self, end_perf: float | None, end_ns: int | None) -> None:
        duration = (end_perf if end_perf is not None else _perf()) - self.t0
        tel = self.tel
        span = self.span
        attrs: dict[str, Any] = {}
        if self.response_id:
            attrs[a.GEN_AI_RESPONSE_ID] = self.response_id
        if self.response_model:
            attrs[a.GEN_AI_RESPONSE_MODEL] = self.response_model
        finish = self.finish_reasons
        if finish is None and self.finish:
            finish = [self.finish[i] for i in sorted(self.finish)]
        if finish:
            attrs[a.GEN_AI_RESPONSE_FINISH_REASONS] = tuple(finish)
        if self.input_tokens is not None:
            attrs[a.GEN_AI_USAGE_INPUT_TOKENS] = self.input_tokens
        if self.output_tokens is not None:
            attrs[a.GEN_AI_USAGE_OUTPUT_TOKENS] = self.output_tokens
        if self.cache_read_tokens is not None:
            attrs[a.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = self.cache_read_tokens
        if self.reasoning_tokens is not None:
            attrs[a.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = self.reasoning_tokens
        cost = tel.cost(self)
        if cost is not None:
            attrs[a.GEN_AI_USAGE_COST] = cost
        if self.stream and self.ttft is not None:
            attrs[a.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self.ttft
        if self.service_tier:
            attrs[a.OPENAI_RESPONSE_SERVICE_TIER] = self.service_tier
        if self.fingerprint:
            attrs[a.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] = self.fingerprint
        error_type = self.error_type
        if error_type is not None:
            attrs[a.ERROR_TYPE] = error_type
        if self.capture:
            self._content(attrs)
        _set_attributes(span, attrs)
        if error_type is not None:
            span.set_status(Status(StatusCode.ERROR, self.error_message or error_type))
        span.end(end_ns)

        target = self.target
        m = {a.GEN_AI_OPERATION_NAME: self.op.name, **target.metric_attrs}
        if self.request_model:
            m[a.GEN_AI_REQUEST_MODEL] = self.request_model
        if self.response_model:
            m[a.GEN_AI_RESPONSE_MODEL] = self.response_model
        if error_type is not None:
            m[a.ERROR_TYPE] = error_type
        instruments = tel.instruments
        instruments.operation_duration.record(duration, m)
        if self.input_tokens is not None or self.output_tokens is not None:
            m.pop(a.ERROR_TYPE, None)
            if self.input_tokens is not None:
                instruments.token_usage.record(
                    self.input_tokens, {**m, a.GEN_AI_TOKEN_TYPE: "input"}
                )
            if self.output_tokens is not None:
                instruments.token_usage.record(
                    self.output_tokens, {**m, a.GEN_AI_TOKEN_TYPE: "output"}
                )
        if self.stream and self.ttft is not None:
            instruments.time_to_first_chunk.record(self.ttft, m)

    def _content(self, attrs: dict[str, Any]) -> None:
        """The messages, on the span and/or as a log event (capture on only)."""
        if self.stream and self.output_messages is None and (self.texts or self.tools):
            self.output_messages = content.streamed_output(
                self.texts or {}, self.tools or {}, self.finish or {}
            )
        messages = {}
        if self.system_instructions:
            messages[a.GEN_AI_SYSTEM_INSTRUCTIONS] = self.system_instructions
        if self.input_messages:
            messages[a.GEN_AI_INPUT_MESSAGES] = self.input_messages
        if self.output_messages:
            messages[a.GEN_AI_OUTPUT_MESSAGES] = self.output_messages
        if not messages:
            return
        tel = self.tel
        if tel.capture_span:
            for key, value in messages.items():
                attrs[key] = content.to_json(value)
        if tel.capture_event and tel.logger is not None:
            event = {
                a.GEN_AI_OPERATION_NAME: self.op.name,
                a.GEN_AI_PROVIDER_NAME: self.target.provider,
                **messages,
            }
            if self.request_model:
                event[a.GEN_AI_REQUEST_MODEL] = self.request_model
            for key in (a.GEN_AI_RESPONSE_ID, a.GEN_AI_RESPONSE_MODEL):
                if key in attrs:
                    event[key] = attrs[key]
            tel.logger.emit(
                event_name=a.GEN_AI_CLIENT_INFERENCE_OPERATION_DETAILS,
                attributes=event,
                context=otel_trace.set_span_in_context(self.span),
            )


def _set_attributes(span: Any, attrs: dict[str, Any]) -> None:
    """``span.set_attributes(attrs)``, minus the SDK's per-value cleaning when it is moot.

    The values built here are already valid attribute values (str, int, float, bool,
    lists of str), so on an SDK span with no value-length limit they go straight into
    its attribute dict: the cleaning costs ~0.7 µs per attribute per call.
    """
    bounded = getattr(span, "_attributes", None)
    target = getattr(bounded, "_dict", None)
    if (
        type(target) is dict
        and getattr(bounded, "max_value_len", 0) is None
        and getattr(bounded, "maxlen", 0) is not None
        and len(target) + len(attrs) <= bounded.maxlen
        and getattr(span, "_end_time", 0) is None
        and not getattr(bounded, "_immutable", True)
    ):
        for key, value in attrs.items():
            # sequences are stored as tuples, as the SDK's cleaning would
            target[key] = tuple(value) if type(value) is list else value
    else:
        span.set_attributes(attrs)


class StreamCall(Call):
    """A streamed call: ends with its stream, even one the app drops unread."""

    def __del__(self) -> None:
        if not self.done and self.t0:
            _orphans.append((self, _perf(), _time_ns()))


# -- streams ---------------------------------------------------------------------------


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


def _wrap_stream(stream: Any, call: Call) -> None:
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
                _warn_once("chunk", "gensight: could not read a stream chunk")
                keep = True
            if keep:
                yield chunk
    except GeneratorExit:
        # closed by the garbage collector: end the span outside of it
        if not call.done:
            _orphans.append((call, _perf(), _time_ns()))
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
                    _warn_once("chunk", "gensight: could not read a stream chunk")
                if not choices and call.hide_usage_chunk:
                    continue
            yield chunk
    except GeneratorExit:
        if not call.done:
            _orphans.append((call, _perf(), _time_ns()))
        raise
    except BaseException as exc:
        call.fail(exc)
        raise
    call.end()


def _wrap_async_stream(stream: Any, call: Call) -> None:
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
                _warn_once("chunk", "gensight: could not read a stream chunk")
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


# -- the wrappers ----------------------------------------------------------------------


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
