"""The telemetry of one instrumentation, and what a client's base URL means for it.

``Telemetry`` holds what every wrapper needs (tracer, instruments, settings, caches)
and ``begin`` starts the span of a call about to be made. ``Target`` is a client's
base URL resolved once: its provider (``gensight.conventions.providers``), server address,
and whether it is the Gensight gateway (``Gateway``), whose calls then carry the
trace context and the app's name to it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import openai
from opentelemetry import context as otel_context
from opentelemetry import propagate
from opentelemetry import trace as otel_trace
from opentelemetry.trace import SpanKind

from gensight.conventions.providers import provider_for_host
from gensight.sdk import attributes as a
from gensight.sdk.call import Call, StreamCall
from gensight.sdk.instruments import Instruments
from gensight.sdk.operations import Operation, _given
from gensight.sdk.runtime import drain_orphans, orphans, set_attributes, warn_once
from gensight.sdk.scores import remember_call

_RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"
_perf = time.perf_counter


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
            if orphans:
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
                set_attributes(span, attrs)
            else:
                span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attrs)

            remember_call(span)  # what gensight.score(None, ...) judges
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
            warn_once("begin", "gensight: could not start the span of an OpenAI call")
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
