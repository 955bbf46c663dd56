"""One OpenAI call in flight: its span's life cycle from the response to the metrics.

``Telemetry.begin`` starts a ``Call`` (a ``StreamCall`` for a stream); the wrapper then
reports the outcome: ``succeed`` (ends the span, or hands the call to its stream),
``fail``, and for streams ``end_closed`` / ``end_abandoned``. ``end`` sets the response's
attributes, ends the span and records the metrics, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import openai
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Status, StatusCode

from gensight.sdk import attributes as a
from gensight.sdk import content
from gensight.sdk.operations import Operation
from gensight.sdk.runtime import orphans, set_attributes, warn_once
from gensight.sdk.streams import wrap_async_stream, wrap_stream

if TYPE_CHECKING:
    from gensight.sdk.telemetry import Target, Telemetry

_perf = time.perf_counter
_time_ns = time.time_ns

#: Ways a call ends without an answer because the caller gave up on it.
_CANCELLED = (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt, SystemExit)


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
                    wrap_stream(parsed, self)
                    return result
                if isinstance(parsed, openai.AsyncStream):
                    wrap_async_stream(parsed, self)
                    return result
            self.op.response(parsed, self)
            self.end()
        except Exception:
            warn_once("succeed", "gensight: could not record an OpenAI response")
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
            warn_once("fail", "gensight: could not record an OpenAI error")

    def end_closed(self) -> None:
        """The app closed the stream: fine if the answer was complete, else cancelled."""
        if not self.done and not self._complete():
            self.error_type = "cancelled"
            self.error_message = "the stream was closed before it was complete"
        self.end()

    def end_abandoned(self, end_perf: float, end_ns: int) -> None:
        """The app dropped the stream without closing it (see ``runtime.orphans``)."""
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
            warn_once("end", "gensight: could not end the span of an OpenAI call")
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
        set_attributes(span, attrs)
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


class StreamCall(Call):
    """A streamed call: ends with its stream, even one the app drops unread."""

    def __del__(self) -> None:
        if not self.done and self.t0:
            orphans.append((self, _perf(), _time_ns()))
