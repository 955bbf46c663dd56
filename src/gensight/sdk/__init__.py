"""Gensight SDK: one line instruments the ``openai`` client with OpenTelemetry.

Usage
-----

.. code:: python

    import gensight
    gensight.init()                      # before or after creating clients

    from openai import OpenAI
    client = OpenAI()
    client.chat.completions.create(model="gpt-4o-mini", messages=[...])

    with gensight.span("retrieve", k=5):  # the app's own steps, same trace
        ...

    @gensight.trace
    async def answer(question): ...

    gensight.score(call_id, "helpful", value=1.0)  # feedback: see gensight.sdk.scores

``gensight.init(endpoint=None, app=None, environment=None, capture_content=None)``
sets up OpenTelemetry tracer, meter and logger providers that export over OTLP/HTTP
(protobuf) to ``endpoint`` — Gensight (``gensight serve``) or any OTLP backend: an
OTel Collector, Jaeger, Elastic APM, Guance DataKit's ``/otel`` endpoint… — and
instruments ``openai``. It is safe to call twice (the second call changes nothing)
and never raises: a malformed endpoint logs one warning and leaves the app
untraced; an unreachable one logs one warning and telemetry is dropped in the
background while the app's calls run as fast as before. ``gensight.shutdown()``
exports what is left (it also runs at exit, bounded to a few seconds) and stops
tracing; ``init()`` after ``shutdown()`` does nothing.

If the app already configured OpenTelemetry (a global ``TracerProvider``,
``MeterProvider`` or ``LoggerProvider`` from the SDK), ``init()`` uses those providers
and their exporters; given an explicit ``endpoint`` it also adds a Gensight exporter
to the app's tracer and logger providers (an SDK ``MeterProvider`` cannot take a
reader after it is made). Otherwise it makes its own and sets them as the globals,
so other instrumentations in the app export through them too.

What is traced
--------------

Sync and async clients (``OpenAI``, ``AsyncOpenAI``, ``AzureOpenAI``…), for every
OpenAI-compatible service they point at:

* ``chat.completions.create`` (streamed or not), ``.parse``, the
  ``chat.completions.stream(...)`` helper, ``with_raw_response``;
* ``completions.create`` (legacy completions), ``embeddings.create``;
* ``responses.create`` (streamed or not), ``.parse``, ``responses.stream(...)``.

One CLIENT span per call, named ``{gen_ai.operation.name} {gen_ai.request.model}``,
with the OpenTelemetry GenAI semantic conventions' attributes:
``gen_ai.operation.name`` (``chat``, ``text_completion``, ``embeddings``; the
Responses API is ``chat`` with ``openai.api.type=responses``), ``gen_ai.provider.name``
(from the base URL's host: ``openai``, ``azure.ai.openai``, ``deepseek``,
``moonshot_ai``…), ``gen_ai.request.*`` (model, temperature, top_p, max_tokens,
penalties, stop sequences, seed, choice count, stream), ``gen_ai.response.{id, model,
finish_reasons}``, ``gen_ai.usage.{input_tokens, output_tokens,
cache_read.input_tokens, reasoning.output_tokens}``, ``server.address/port``, and on
failure ``error.type`` (the exception's class, e.g. ``RateLimitError``; ``cancelled``
for a stream closed or dropped before it finished), ``http.response.status_code`` and
an error status. Streams add ``gen_ai.response.time_to_first_chunk`` (seconds). Every
call with usage adds ``gen_ai.usage.cost`` (USD) from Gensight's own price data
(``gensight.enrich.pricing``, loaded in a background thread started by ``init()``: calls
in the first second or so carry none; ``GENSIGHT_COST=false`` skips it and saves
the ~1 s of CPU and ~70 MB the price data takes).

A stream's span ends when the stream does: read to the end, failed, closed (``with``,
``.close()``, the helpers' context managers), or dropped by the app unread — then at
the next instrumented call or at exit. To report usage for streamed chat and
completions, the SDK asks for it (``stream_options.include_usage``) when the app did
not, and hides that extra final chunk from the app, as the Gensight gateway does
(``GENSIGHT_STREAM_USAGE=false`` turns this off).

Metrics: ``gen_ai.client.operation.duration`` (s), ``gen_ai.client.token.usage``
(``{token}``, ``gen_ai.token.type`` input/output) and, for streams,
``gen_ai.client.operation.time_to_first_chunk`` (s), with the conventions' bucket
boundaries.

Content: messages are recorded only with capture on, as ``gen_ai.input.messages``,
``gen_ai.output.messages`` and ``gen_ai.system_instructions`` JSON (the conventions'
"parts" format) on the span, and/or as a ``gen_ai.client.inference.operation.details``
log event. Inline images and audio are elided.

Through the Gensight gateway
----------------------------

When a client's ``base_url`` is the gateway of the configured endpoint (same host and
port, path ``/openai/v1`` or ``/p/NAME/v1``), the SDK sends the span's ``traceparent``
(and ``X-Gensight-App``) with the request, so the gateway's record joins the app's
trace as the SDK span's child. The call is counted once: **the gateway's record is
the call** (it saw the upstream's exact answer, retries and fallbacks); the SDK span
carries ``gensight.via_gateway=true`` and the Gensight server keeps it as a plain
span of the trace, never as a second call.

Environment variables
---------------------

``OTEL_EXPORTER_OTLP_ENDPOINT``
    Base URL of the OTLP/HTTP receiver when ``endpoint`` is not given
    (default ``http://127.0.0.1:4318``); the per-signal
    ``OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_ENDPOINT`` are honoured too, as are
    ``OTEL_EXPORTER_OTLP_HEADERS`` (e.g. ``Authorization=Bearer KEY``), ``…_TIMEOUT``,
    ``…_COMPRESSION`` and ``…_CERTIFICATE``.
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``
    The app's name and other resource attributes (``deployment.environment.name=prod``);
    the ``app`` and ``environment`` arguments take precedence.
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    ``true`` (or ``span_only``): messages on spans; ``event_only``: as log events;
    ``span_and_event``: both. Off by default; the ``capture_content`` argument wins.
``OTEL_SDK_DISABLED=true``
    ``init()`` does nothing.
``GENSIGHT_STREAM_USAGE=false``
    Do not ask streams for usage (see above).
``GENSIGHT_COST=false``
    No ``gen_ai.usage.cost`` (and no price data in the app's memory).
"""

from __future__ import annotations

from typing import Any

from gensight.sdk.scores import score
from gensight.sdk.setup import flush, init, shutdown
from gensight.sdk.workflow import span, trace

__all__ = ["OpenAIInstrumentor", "flush", "init", "score", "shutdown", "span", "trace"]


def __getattr__(name: str) -> Any:
    # imported on demand: it imports openai, which an app may not have
    if name == "OpenAIInstrumentor":
        from gensight.sdk.instrumentor import OpenAIInstrumentor

        return OpenAIInstrumentor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
