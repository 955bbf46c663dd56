"""``gensight.init()`` and ``gensight.shutdown()``: configuration, providers, exporters.

See ``gensight.sdk`` for the user's manual; this module turns its rules into
OpenTelemetry providers and an ``OpenAIInstrumentor``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("gensight.sdk")

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
#: Longest ``shutdown()`` waits for the last telemetry to leave, in seconds.
SHUTDOWN_TIMEOUT = 5.0

_TRUE = ("1", "true", "yes", "on")
_CAPTURE_MODES = ("span_only", "event_only", "span_and_event")


@dataclass(frozen=True)
class Settings:
    """What ``init()`` was asked for, after the environment is read."""

    endpoint: str
    endpoint_given: bool
    app: str | None
    environment: str | None
    capture_content: bool | str
    stream_usage: bool
    cost: bool


class _State:
    """The one SDK set-up of this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settings: Settings | None = None
        self.instrumentor: Any = None
        self.tracer_provider: Any = None
        self.logger_provider: Any = None
        self.owned: list[Any] = []  # providers this SDK made (and so shuts down)
        self.added: list[Any] = []  # our processors added to the app's providers
        self.health: Any = None
        self.shut_down = False
        self.warned_args = False
        self.bad_endpoints: set[str] = set()


_state = _State()


def _env_bool(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip().lower() in _TRUE


def read_settings(
    endpoint: str | None,
    app: str | None,
    environment: str | None,
    capture_content: bool | str | None,
) -> Settings:
    """Arguments first, then the standard OpenTelemetry environment, then defaults."""
    given = endpoint is not None
    if endpoint is None:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_ENDPOINT
    endpoint = endpoint.strip().rstrip("/")
    if capture_content is None:
        raw = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
        raw = raw.strip().lower()
        capture_content = raw if raw in _CAPTURE_MODES else raw in _TRUE
    elif isinstance(capture_content, str) and capture_content.lower() not in _CAPTURE_MODES:
        capture_content = capture_content.lower() in _TRUE
    stream_usage = _env_bool("GENSIGHT_STREAM_USAGE")
    cost = _env_bool("GENSIGHT_COST")
    return Settings(
        endpoint=endpoint,
        endpoint_given=given,
        app=app,
        environment=environment,
        capture_content=capture_content,
        stream_usage=True if stream_usage is None else stream_usage,
        cost=True if cost is None else cost,
    )


def endpoint_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` cannot be an OTLP/HTTP base URL, or None if it can."""
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as e:
        return str(e)
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if not parts.hostname:
        return "it has no host"
    return None


def init(
    endpoint: str | None = None,
    app: str | None = None,
    environment: str | None = None,
    capture_content: bool | str | None = None,
) -> bool:
    """Set up OpenTelemetry for this process and instrument ``openai``; see ``gensight``."""
    try:
        with _state.lock:
            return _init(read_settings(endpoint, app, environment, capture_content))
    except Exception:
        log.warning("gensight: init() failed; the app runs without telemetry", exc_info=True)
        return False


def _init(settings: Settings) -> bool:
    if _state.shut_down:
        log.warning("gensight: init() after shutdown() is ignored")
        return False
    if _state.settings is not None:
        if settings != _state.settings and not _state.warned_args:
            _state.warned_args = True
            log.warning("gensight: init() was already called; its new arguments are ignored")
        return True
    if _env_bool("OTEL_SDK_DISABLED"):
        log.info("gensight: OTEL_SDK_DISABLED is set; not instrumenting")
        return False
    problem = endpoint_problem(settings.endpoint)
    if problem is not None:
        if settings.endpoint not in _state.bad_endpoints:
            _state.bad_endpoints.add(settings.endpoint)
            log.warning(
                "gensight: endpoint %r is not usable (%s); the app runs without telemetry",
                settings.endpoint,
                problem,
            )
        return False

    from opentelemetry import metrics, trace
    from opentelemetry._logs import get_logger_provider, set_logger_provider
    from opentelemetry.sdk.resources import Resource

    from gensight.sdk import export

    attrs: dict[str, Any] = {}
    if settings.app:
        attrs["service.name"] = settings.app
    if settings.environment:
        attrs["deployment.environment.name"] = settings.environment
    resource = Resource.create(attrs)  # reads OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    health = export.Health(settings.endpoint)
    _state.health = health
    base = settings.endpoint

    def url(signal: str) -> str | None:
        # an explicit endpoint wins; else OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT, as the spec says
        if settings.endpoint_given:
            return f"{base}/v1/{signal}"
        specific = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT", "").strip()
        return specific or f"{base}/v1/{signal}"

    tracer_provider = trace.get_tracer_provider()
    if hasattr(tracer_provider, "add_span_processor"):
        if settings.endpoint_given:  # the app's provider, and spans to Gensight too
            processor = _span_processor(export.SpanExporter(health, endpoint=url("traces")))
            tracer_provider.add_span_processor(processor)
            _state.added.append(processor)
    else:
        from opentelemetry.sdk.trace import TracerProvider

        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        tracer_provider.add_span_processor(
            _span_processor(export.SpanExporter(health, endpoint=url("traces")))
        )
        trace.set_tracer_provider(tracer_provider)
        _state.owned.append(tracer_provider)

    meter_provider = metrics.get_meter_provider()
    fast_meter = None
    if not hasattr(meter_provider, "force_flush"):
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        from gensight.sdk import histograms
        from gensight.sdk.instrumentor import SCOPE, version

        # The app's other instrumentations get a standard MeterProvider; the GenAI
        # histograms of this SDK take the faster path of ``histograms``.
        reader = PeriodicExportingMetricReader(
            export.MetricExporter(health, endpoint=url("metrics"))
        )
        meter_provider = MeterProvider(
            resource=resource, metric_readers=[reader], shutdown_on_exit=False
        )
        metrics.set_meter_provider(meter_provider)
        _state.owned.append(meter_provider)
        fast_meter = histograms.Meter()
        _state.owned.append(
            histograms.Exporter(
                fast_meter,
                export.MetricExporter(health, endpoint=url("metrics")),
                resource,
                (SCOPE, version()),
            )
        )

    logger_provider = get_logger_provider()
    if hasattr(logger_provider, "add_log_record_processor"):
        if settings.endpoint_given:
            processor = _log_processor(export.LogExporter(health, endpoint=url("logs")))
            logger_provider.add_log_record_processor(processor)
            _state.added.append(processor)
    else:
        from opentelemetry.sdk._logs import LoggerProvider

        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        logger_provider.add_log_record_processor(
            _log_processor(export.LogExporter(health, endpoint=url("logs")))
        )
        set_logger_provider(logger_provider)
        _state.owned.append(logger_provider)

    service = getattr(tracer_provider, "resource", resource).attributes.get("service.name")
    app = None
    if isinstance(service, str) and not service.startswith("unknown_service"):
        app = service

    from gensight.sdk.instrumentor import OpenAIInstrumentor

    instrumentor = OpenAIInstrumentor(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        meter=fast_meter,
        logger_provider=logger_provider,
        capture_content=settings.capture_content,
        gateway_endpoint=settings.endpoint,
        app=app,
        stream_usage=settings.stream_usage,
    )
    if not instrumentor.instrument():
        log.info("gensight: openai is not installed; only gensight.span/trace are traced")
    elif settings.cost:
        load_prices(instrumentor.telemetry)
    _state.instrumentor = instrumentor
    _state.tracer_provider = tracer_provider
    _state.logger_provider = logger_provider
    _state.settings = settings
    atexit.register(shutdown)
    return True


def _span_processor(exporter: Any) -> Any:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(exporter)


def _log_processor(exporter: Any) -> Any:
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    return BatchLogRecordProcessor(exporter)


def load_prices(telemetry: Any) -> None:
    """Load the price data in a background thread; calls carry a cost once it is loaded.

    genai-prices' data takes 0.5–1 s of CPU and ~70 MB to load. Done in a thread
    started by ``init()``, so neither ``init()`` nor any call waits for it, and at
    start-up, where sharing the interpreter for that second hurts least; calls made
    before it is loaded carry no cost (the Gensight server prices them anyway).
    """

    def load() -> None:
        try:
            from gensight.enrich.pricing import Pricer

            pricer = Pricer()
            pricer.cost(provider="openai", model="gpt-4o-mini", input_tokens=1, output_tokens=1)
            telemetry.pricer = pricer
        except Exception:
            log.info("gensight: price data unavailable; spans carry no cost", exc_info=True)

    threading.Thread(target=load, name="gensight-pricing", daemon=True).start()


def tracer() -> Any:
    """The tracer ``gensight.span`` / ``gensight.trace`` use."""
    from opentelemetry import trace

    from gensight.sdk.instrumentor import SCOPE

    return trace.get_tracer(SCOPE, tracer_provider=_state.tracer_provider)


def logger() -> Any:
    """The logger ``gensight.score`` emits its events with (None before ``init()``)."""
    if _state.logger_provider is None or _state.shut_down:
        return None
    from opentelemetry._logs import get_logger

    from gensight.sdk.instrumentor import SCOPE

    return get_logger(SCOPE, logger_provider=_state.logger_provider)


def flush(timeout: float = SHUTDOWN_TIMEOUT) -> bool:
    """Export everything recorded so far; True if it all left in time."""
    from gensight.sdk.runtime import drain_orphans

    try:
        drain_orphans()
        providers = list(_state.owned) + [p for p in _state.added if p not in _state.owned]
        ok = True
        for p in providers:
            ok = bool(p.force_flush(int(timeout * 1000))) and ok
        return ok
    except Exception:
        log.debug("gensight: flush failed", exc_info=True)
        return False


def shutdown(timeout: float = SHUTDOWN_TIMEOUT) -> None:
    """Stop tracing ``openai``, export what is left (at most ``timeout`` s), close exporters."""
    with _state.lock:
        if _state.shut_down or _state.settings is None:
            return
        _state.shut_down = True
    try:
        from gensight.sdk.runtime import drain_orphans

        drain_orphans()
        if _state.instrumentor is not None:
            _state.instrumentor.uninstrument()
        health = _state.health
        if health is not None:
            if not health.up_once:
                health.probe()
            health.shutting_down = True
        work = list(_state.added) + list(_state.owned)

        def stop() -> None:
            for p in work:
                try:
                    p.shutdown()
                except Exception:
                    log.debug("gensight: shutdown of %r failed", p, exc_info=True)

        # bounded: a slow endpoint must not hold the app's exit
        t = threading.Thread(target=stop, name="gensight-shutdown", daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            log.warning("gensight: telemetry not exported within %.0f s was dropped", timeout)
    except Exception:
        log.debug("gensight: shutdown failed", exc_info=True)
