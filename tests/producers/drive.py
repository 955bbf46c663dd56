"""Drive one real OTel GenAI producer through a fixed scenario.

Runs inside that producer's own venv (see envs.py), never imports gensight::

    ENV_PYTHON drive.py --producer openai-v2 --upstream http://127.0.0.1:P/v1 \
        --otlp http://127.0.0.1:Q [--mode default|latest] [--capture-content]

Scenario (the real ``openai`` client, max_retries=0):
  1. chat completion, system + user, temperature=0.2, max_tokens=50
  2. streamed chat completion with stream_options.include_usage
  3. embedding (dimensions=8, to keep fixtures small)
  4. chat that fails with 429 (x-fake-status header), exception caught
  5. chat that fails with 500, exception caught
  6. span ``rag-request`` (plain OTel tracer) > child ``retrieve``, then a chat call
     inside ``rag-request``
Then every provider is flushed and shut down.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable

SERVICE = "producer-{name}"


def _otel_sdk(otlp: str, service: str, logs: bool, metrics: bool) -> Callable[[], None]:
    """Plain OTel SDK: traces (+ logs, metrics) over OTLP/HTTP protobuf to ``otlp``."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    resource = Resource.create({"service.name": service, "deployment.environment": "test"})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{otlp}/v1/traces")))
    trace.set_tracer_provider(tp)
    closers: list[Callable[[], None]] = [tp.shutdown]

    if logs:
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        lp = LoggerProvider(resource=resource)
        lp.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{otlp}/v1/logs"))
        )
        set_logger_provider(lp)
        try:  # the (deprecated) Events API, still used by some instrumentations
            from opentelemetry._events import set_event_logger_provider
            from opentelemetry.sdk._events import EventLoggerProvider

            set_event_logger_provider(EventLoggerProvider(lp))
        except ImportError:
            pass
        closers.insert(0, lp.shutdown)

    if metrics:
        from opentelemetry import metrics as otel_metrics
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{otlp}/v1/metrics"), export_interval_millis=3_600_000
        )
        mp = MeterProvider(resource=resource, metric_readers=[reader])
        otel_metrics.set_meter_provider(mp)
        closers.insert(0, mp.shutdown)

    def shutdown() -> None:
        for close in closers:
            close()

    return shutdown


def setup_openai_v2(args: argparse.Namespace) -> Callable[[], None]:
    if args.mode == "latest":
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        if args.capture_content:
            os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_AND_EVENT"
    elif args.capture_content:
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
    shutdown = _otel_sdk(args.otlp, SERVICE.format(name=args.producer), logs=True, metrics=True)
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument()
    return shutdown


def setup_openlit(args: argparse.Namespace) -> Callable[[], None]:
    import openlit

    # A local pricing file: stops openlit fetching its pricing JSON from the internet
    # at init (it would block up to 20 s offline) and makes gen_ai.usage.cost non-zero.
    pricing = {
        "chat": {
            m: {"promptPrice": 0.00015, "completionPrice": 0.0006}
            for m in ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
        },
        "embeddings": {"text-embedding-3-small": 0.00002},
    }
    fd, pricing_path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(pricing, fh)
    openlit.init(
        otlp_endpoint=args.otlp,
        application_name=SERVICE.format(name=args.producer),
        environment="test",
        pricing_json=pricing_path,
        capture_message_content=args.capture_content,
        collect_gpu_stats=False,
        collect_system_metrics=False,
        disable_batch=True,
    )

    def shutdown() -> None:
        from opentelemetry import _logs, metrics, trace

        for provider in (metrics.get_meter_provider(), _logs.get_logger_provider(),
                         trace.get_tracer_provider()):  # fmt: skip
            fn = getattr(provider, "shutdown", None)  # flushes; no duplicate metrics export
            if fn is not None:
                fn()
        os.unlink(pricing_path)

    return shutdown


def setup_traceloop(args: argparse.Namespace) -> Callable[[], None]:
    os.environ["TRACELOOP_TELEMETRY"] = "false"
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true" if args.capture_content else "false"
    os.environ.setdefault("TRACELOOP_METRICS_ENABLED", "true")
    # its logging exporter only ships Python logging records (httpx INFO lines)
    os.environ.setdefault("TRACELOOP_LOGGING_ENABLED", "false")
    os.environ["OTEL_RESOURCE_ATTRIBUTES"] = "deployment.environment=test"
    from traceloop.sdk import Traceloop

    Traceloop.init(
        app_name=SERVICE.format(name=args.producer),
        api_endpoint=args.otlp,
        disable_batch=True,
        telemetry_enabled=False,
    )

    def shutdown() -> None:
        from opentelemetry import _logs, metrics, trace

        for provider in (trace.get_tracer_provider(), _logs.get_logger_provider(),
                         metrics.get_meter_provider()):  # fmt: skip
            fn = getattr(provider, "shutdown", None)  # flushes; no duplicate metrics export
            if fn is not None:
                fn()

    return shutdown


def setup_openinference(args: argparse.Namespace) -> Callable[[], None]:
    shutdown = _otel_sdk(args.otlp, SERVICE.format(name=args.producer), logs=False, metrics=False)
    from openinference.instrumentation import TraceConfig
    from openinference.instrumentation.openai import OpenAIInstrumentor
    from opentelemetry import trace

    hide = not args.capture_content
    config = TraceConfig(
        hide_inputs=hide,
        hide_outputs=hide,
        hide_input_messages=hide,
        hide_output_messages=hide,
        hide_embeddings_text=hide,
    )
    OpenAIInstrumentor().instrument(tracer_provider=trace.get_tracer_provider(), config=config)
    return shutdown


SETUPS: dict[str, Callable[[argparse.Namespace], Callable[[], None]]] = {
    "openai-v2": setup_openai_v2,
    "openlit": setup_openlit,
    "traceloop": setup_traceloop,
    "openinference": setup_openinference,
}


def scenario(upstream: str) -> None:
    import openai
    from opentelemetry import trace

    client = openai.OpenAI(base_url=upstream, api_key="sk-test-producer", max_retries=0)
    messages = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Say hello to the observability team."},
    ]
    client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, temperature=0.2, max_tokens=50
    )
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream a short greeting."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for _chunk in stream:
        pass
    client.embeddings.create(
        model="text-embedding-3-small", input="vector search query", dimensions=8
    )
    for status in ("429", "500"):
        try:
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"This call fails with {status}."}],
                extra_headers={"x-fake-status": status},
            )
        except openai.APIStatusError as exc:
            print(f"expected error {exc.status_code}", file=sys.stderr)
        else:
            raise SystemExit(f"the {status} call did not fail")
    tracer = trace.get_tracer("producer-scenario")
    with tracer.start_as_current_span("rag-request"):
        with tracer.start_as_current_span("retrieve") as span:
            span.set_attribute("retrieval.documents", 3)
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "Answer from the context."},
                {"role": "user", "content": "Context: doc1 doc2 doc3. Question: what is RAG?"},
            ],
            temperature=0.0,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--producer", required=True, choices=sorted(SETUPS))
    parser.add_argument("--upstream", required=True, help="fake upstream base URL (…/v1)")
    parser.add_argument("--otlp", required=True, help="OTLP/HTTP base URL (no /v1/traces)")
    parser.add_argument("--mode", default="default", choices=["default", "latest"])
    parser.add_argument("--capture-content", action="store_true")
    args = parser.parse_args()
    args.otlp = args.otlp.rstrip("/")
    os.environ.setdefault("OTEL_SERVICE_NAME", SERVICE.format(name=args.producer))
    shutdown = SETUPS[args.producer](args)
    try:
        scenario(args.upstream)
    finally:
        shutdown()


if __name__ == "__main__":
    main()
