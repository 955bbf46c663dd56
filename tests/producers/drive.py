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
  7. (mlflow, logfire, litellm) a tool round trip: a chat offering ``get_weather`` that
     the fake model calls, then the chat carrying the tool's result
Then every provider is flushed and shut down. MLflow's spans come from its own
``mlflow.start_span``; litellm is driven through ``litellm.completion``/``embedding``
(an openai-compatible ``api_base``) instead of the openai client.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

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


def setup_mlflow(args: argparse.Namespace) -> Callable[[], None]:
    # MLflow exports OTLP (instead of to a tracking server) when this variable is set.
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{args.otlp}/v1/traces"
    os.environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
    os.environ["OTEL_RESOURCE_ATTRIBUTES"] = "deployment.environment=test"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # else it phones home at import
    # without a tracking URI, mlflow-tracing probes for a local store and fails (it lacks
    # the store's dependencies); with OTLP export nothing is written there
    os.environ["MLFLOW_TRACKING_URI"] = "file://" + tempfile.mkdtemp(prefix="mlruns-")
    import mlflow

    mlflow.openai.autolog()

    def shutdown() -> None:
        from mlflow.tracing.provider import provider

        tp = provider.get()
        tp.force_flush()
        tp.shutdown()

    return shutdown


def setup_logfire(args: argparse.Namespace) -> Callable[[], None]:
    # logfire's documented "alternative backend": the standard OTLP variables, nothing
    # sent to Logfire itself; version=1 is its request_data/response_data mode.
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = args.otlp
    import logfire

    logfire.configure(
        send_to_logfire=False,
        service_name=SERVICE.format(name=args.producer),
        environment="test",
        console=False,
        metrics=False,
    )
    # "latest" is logfire's own default today (version=2: gen_ai.* semconv attributes)
    logfire.instrument_openai(version=2 if args.mode == "latest" else 1)
    return logfire.shutdown


def setup_litellm(args: argparse.Namespace) -> Callable[[], None]:
    os.environ["OTEL_EXPORTER"] = "otlp_http"
    os.environ["OTEL_ENDPOINT"] = f"{args.otlp}/v1/traces"
    os.environ["OTEL_ENVIRONMENT_NAME"] = "test"
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # no price-map download at import
    os.environ["LITELLM_TELEMETRY"] = "False"
    # Without this, a call made inside an open span gets no span of its own: litellm
    # writes the call's attributes onto the caller's span, from a worker thread, usually
    # after that span has ended (so the call is lost: 7 of 8 in this scenario).
    os.environ["USE_OTEL_LITELLM_REQUEST_SPAN"] = "true"
    import litellm

    # content is on the span by default; this is litellm's switch to drop it
    litellm.turn_off_message_logging = not args.capture_content
    litellm.callbacks = ["otel"]

    def shutdown() -> None:
        import time

        from opentelemetry import trace

        # litellm logs a sync call's success from a worker thread: let those run first
        time.sleep(2.0)
        provider = trace.get_tracer_provider()
        for fn in (getattr(provider, "force_flush", None), getattr(provider, "shutdown", None)):
            if fn is not None:
                fn()

    return shutdown


SETUPS: dict[str, Callable[[argparse.Namespace], Callable[[], None]]] = {
    "openai-v2": setup_openai_v2,
    "openlit": setup_openlit,
    "traceloop": setup_traceloop,
    "openinference": setup_openinference,
    "mlflow": setup_mlflow,
    "logfire": setup_logfire,
    "litellm": setup_litellm,
}
#: producers whose scenario ends with the tool round trip (step 7)
WITH_TOOLS = {"mlflow", "logfire", "litellm"}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


class OpenAIDriver:
    """The scenario's calls through the real ``openai`` client."""

    def __init__(self, upstream: str) -> None:
        import openai

        self.errors: tuple[type[BaseException], ...] = (openai.APIStatusError,)
        self.client = openai.OpenAI(base_url=upstream, api_key="sk-test-producer", max_retries=0)

    def chat(self, **kw: Any) -> Any:
        return self.client.chat.completions.create(**kw)

    def embed(self, **kw: Any) -> Any:
        return self.client.embeddings.create(**kw)


class LiteLLMDriver:
    """The scenario's calls through ``litellm`` (openai-compatible ``api_base``)."""

    def __init__(self, upstream: str) -> None:
        import litellm

        self.litellm = litellm
        self.errors = (litellm.exceptions.APIError, litellm.exceptions.RateLimitError,
                       litellm.exceptions.InternalServerError)  # fmt: skip
        self.common = {"api_base": upstream, "api_key": "sk-test-producer", "max_retries": 0}

    def chat(self, model: str, **kw: Any) -> Any:
        return self.litellm.completion(model=f"openai/{model}", **self.common, **kw)

    def embed(self, model: str, **kw: Any) -> Any:
        return self.litellm.embedding(model=f"openai/{model}", **self.common, **kw)


def _spans(producer: str) -> Callable[[str], Any]:
    """A span factory for the app's own steps, in the producer's own tracing API."""
    if producer == "mlflow":
        import mlflow

        return mlflow.start_span
    from opentelemetry import trace

    return trace.get_tracer("producer-scenario").start_as_current_span


def scenario(upstream: str, producer: str = "") -> None:
    driver: Any = LiteLLMDriver(upstream) if producer == "litellm" else OpenAIDriver(upstream)
    span = _spans(producer)
    messages = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Say hello to the observability team."},
    ]
    driver.chat(model="gpt-4o-mini", messages=messages, temperature=0.2, max_tokens=50)
    stream = driver.chat(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Stream a short greeting."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for _chunk in stream:
        pass
    driver.embed(model="text-embedding-3-small", input="vector search query", dimensions=8)
    for status in ("429", "500"):
        try:
            driver.chat(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"This call fails with {status}."}],
                extra_headers={"x-fake-status": status},
            )
        except driver.errors as exc:
            print(f"expected error {getattr(exc, 'status_code', exc)}", file=sys.stderr)
        else:
            raise SystemExit(f"the {status} call did not fail")
    with span("rag-request"):
        with span("retrieve") as step:
            step.set_attribute("retrieval.documents", 3)
        driver.chat(
            model="gpt-4o-mini",
            messages=[
                {"role": "system", "content": "Answer from the context."},
                {"role": "user", "content": "Context: doc1 doc2 doc3. Question: what is RAG?"},
            ],
            temperature=0.0,
        )
    if producer in WITH_TOOLS:
        tool_round_trip(driver)


def tool_round_trip(driver: Any) -> None:
    """A chat the fake model answers with a ``get_weather`` call, then the tool's result."""
    history: list[dict[str, Any]] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = driver.chat(model="gpt-4o-mini", messages=history, tools=TOOLS)
    (call,) = first.choices[0].message.tool_calls
    history.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        }
    )
    history.append({"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 18}'})
    driver.chat(model="gpt-4o-mini", messages=history, tools=TOOLS)


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
        scenario(args.upstream, args.producer)
    finally:
        shutdown()


if __name__ == "__main__":
    main()
