"""The SDK with the real ``openai`` client against the fake upstream.

Spans, metrics and log events are collected by OpenTelemetry's in-memory exporters
and checked name by name against the ``opentelemetry-semantic-conventions`` constants;
``tests/e2e/test_sdk_init.py`` runs ``gensight.init()`` in app processes exporting to a real
``gensight serve``.
"""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GA
from opentelemetry.semconv._incubating.attributes import openai_attributes as OA
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as GM
from opentelemetry.semconv.attributes import error_attributes as EA
from opentelemetry.semconv.attributes import http_attributes as HA
from opentelemetry.semconv.attributes import server_attributes as SA
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.routing import Mount

from gensight.demo.serve import serve_in_thread
from gensight.demo.upstream import (
    chat_prompt_tokens,
    count_tokens,
    create_app,
    responses_input_tokens,
    serve,
)
from gensight.enrich.pricing import Pricer
from gensight.sdk import attributes as A
from gensight.sdk.instrumentor import SCOPE, OpenAIInstrumentor
from gensight.sdk.instruments import DURATION_BUCKETS, TOKEN_BUCKETS
from gensight.sdk.runtime import drain_orphans

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "How do I make tea?"},
]
CHAT_MODEL = "gpt-4o-mini"
SNAPSHOT = "gpt-4o-mini-2024-07-18"  # what the fake (like OpenAI) answers for gpt-4o-mini


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Any, str]]:
    app = create_app()
    with serve(app) as base_url:
        yield app, base_url


@pytest.fixture(scope="session")
def pricer() -> Pricer:
    p = Pricer()
    p.cost(provider="openai", model=CHAT_MODEL, input_tokens=1, output_tokens=1)
    return p


class Telemetry:
    """In-memory providers, and the instrumentation using them."""

    def __init__(self, pricer: Pricer) -> None:
        self.spans_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans_exporter))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader])
        self.logs_exporter = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.logs_exporter))
        self.pricer = pricer
        self.instrumentor: OpenAIInstrumentor | None = None

    def instrument(self, **kwargs: Any) -> OpenAIInstrumentor:
        if self.instrumentor is not None:
            self.instrumentor.uninstrument()
        kwargs.setdefault("pricer", self.pricer)
        self.instrumentor = OpenAIInstrumentor(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            logger_provider=self.logger_provider,
            **kwargs,
        )
        self.instrumentor.instrument()
        return self.instrumentor

    def spans(self) -> list[ReadableSpan]:
        return list(self.spans_exporter.get_finished_spans())

    def span(self) -> ReadableSpan:
        spans = [s for s in self.spans() if s.instrumentation_scope.name == SCOPE]
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def metrics(self) -> dict[str, list[Any]]:
        """Data points by metric name."""
        out: dict[str, list[Any]] = {}
        data = self.metric_reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out.setdefault(m.name, []).extend(m.data.data_points)
        return out


@pytest.fixture
def tel(pricer: Pricer) -> Iterator[Telemetry]:
    t = Telemetry(pricer)
    t.instrument()
    yield t
    if t.instrumentor is not None:
        t.instrumentor.uninstrument()


@pytest.fixture
def client(upstream: tuple[Any, str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream[1], api_key="sk-test", max_retries=0)


@pytest.fixture
def aclient(upstream: tuple[Any, str]) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=upstream[1], api_key="sk-test", max_retries=0)


def sent_text(app: Any) -> str:
    """The text the fake upstream sent in its last answer (streamed or not)."""
    exchange = app.state.log.last()
    if exchange.stream:
        return "".join(
            (c.get("delta") or {}).get("content") or ""
            for e in exchange.events()
            for c in e.get("choices") or ()
        )
    return exchange.response["choices"][0]["message"]["content"]


def sent_usage(app: Any) -> dict[str, Any]:
    """The usage the fake upstream reported in its last answer."""
    return app.state.log.last().usage


# -- names ---------------------------------------------------------------------------


def test_names_are_the_semantic_conventions():
    for name in dir(A):
        if not name.isupper() or name.startswith("OP_"):
            continue
        for module in (GA, OA, SA, EA, HA, GM):
            if hasattr(module, name):
                assert getattr(A, name) == getattr(module, name), name
    assert A.OPENAI_API_TYPE == OA.OPENAI_API_TYPE
    assert GA.GenAiOperationNameValues.CHAT.value == A.OP_CHAT
    assert GA.GenAiOperationNameValues.TEXT_COMPLETION.value == A.OP_TEXT_COMPLETION
    assert GA.GenAiOperationNameValues.EMBEDDINGS.value == A.OP_EMBEDDINGS
    # the ones the package does not define are the documented extensions
    undefined = {
        getattr(A, n)
        for n in dir(A)
        if n.isupper()
        and not n.startswith("OP_")
        and not any(hasattr(m, n) for m in (GA, OA, SA, EA, HA, GM))
    }
    assert undefined == {
        "gen_ai.usage.cost",  # OpenLIT's name, the proposed convention's
        "gensight.via_gateway",  # ours
        "gen_ai.client.inference.operation.details",  # an event name, not in the package
    }


# -- chat completions ----------------------------------------------------------------


def test_chat_completion_span(tel: Telemetry, client: openai.OpenAI, upstream):
    r = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=MESSAGES,
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
        stop=["\n\n"],
        seed=7,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        user="user-42",
    )
    span = tel.span()
    port = int(upstream[1].split(":")[2].split("/")[0])
    assert span.name == f"chat {CHAT_MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope.name == "gensight.sdk"
    input_tokens = chat_prompt_tokens(MESSAGES)
    output_tokens = r.usage.completion_tokens
    cost, source = tel.pricer.cost(
        provider="openai", model=SNAPSHOT, input_tokens=input_tokens, output_tokens=output_tokens,
        cache_read_tokens=0, reasoning_tokens=0,
    )  # fmt: skip
    assert source == "computed" and cost
    assert dict(span.attributes) == {
        GA.GEN_AI_OPERATION_NAME: "chat",
        GA.GEN_AI_PROVIDER_NAME: "openai",
        OA.OPENAI_API_TYPE: "chat_completions",
        SA.SERVER_ADDRESS: "127.0.0.1",
        SA.SERVER_PORT: port,
        GA.GEN_AI_REQUEST_MODEL: CHAT_MODEL,
        GA.GEN_AI_REQUEST_TEMPERATURE: 0.2,
        GA.GEN_AI_REQUEST_TOP_P: 0.9,
        GA.GEN_AI_REQUEST_MAX_TOKENS: 50,
        GA.GEN_AI_REQUEST_STOP_SEQUENCES: ("\n\n",),
        GA.GEN_AI_REQUEST_SEED: 7,
        GA.GEN_AI_REQUEST_FREQUENCY_PENALTY: 0.1,
        GA.GEN_AI_REQUEST_PRESENCE_PENALTY: 0.2,
        "user.id": "user-42",
        GA.GEN_AI_RESPONSE_ID: r.id,
        GA.GEN_AI_RESPONSE_MODEL: SNAPSHOT,
        GA.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        GA.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
        GA.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        GA.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 0,
        GA.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0,
        "gen_ai.usage.cost": cost,
        OA.OPENAI_RESPONSE_SERVICE_TIER: r.service_tier,
        OA.OPENAI_RESPONSE_SYSTEM_FINGERPRINT: r.system_fingerprint,
    }
    assert r.usage.prompt_tokens == input_tokens  # the app's answer is untouched


def test_cached_and_reasoning_tokens(tel: Telemetry, client: openai.OpenAI):
    client.chat.completions.create(
        model="o3-mini",
        messages=[{"role": "user", "content": "think"}],
        extra_headers={"x-fake-cached-tokens": "5", "x-fake-reasoning-tokens": "12"},
    )
    attrs = tel.span().attributes
    assert attrs[GA.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 5
    assert attrs[GA.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 12
    assert attrs[GA.GEN_AI_USAGE_OUTPUT_TOKENS] >= 12  # output includes reasoning


def test_metrics_follow_the_conventions(tel: Telemetry, client: openai.OpenAI):
    r = client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fake-429", messages=MESSAGES)
    points = tel.metrics()
    durations = points[GM.GEN_AI_CLIENT_OPERATION_DURATION]
    assert {tuple(p.explicit_bounds) for p in durations} == {DURATION_BUCKETS}
    ok = [p for p in durations if EA.ERROR_TYPE not in p.attributes]
    failed = [p for p in durations if EA.ERROR_TYPE in p.attributes]
    assert dict(ok[0].attributes) == {
        GA.GEN_AI_OPERATION_NAME: "chat",
        GA.GEN_AI_PROVIDER_NAME: "openai",
        GA.GEN_AI_REQUEST_MODEL: CHAT_MODEL,
        GA.GEN_AI_RESPONSE_MODEL: SNAPSHOT,
    }
    assert ok[0].count == 1 and 0 < ok[0].sum < 5
    assert failed[0].attributes[EA.ERROR_TYPE] == "RateLimitError"
    usage = points[GM.GEN_AI_CLIENT_TOKEN_USAGE]
    assert {tuple(p.explicit_bounds) for p in usage} == {TOKEN_BUCKETS}
    by_type = {p.attributes[GA.GEN_AI_TOKEN_TYPE]: p for p in usage}
    assert by_type["input"].sum == chat_prompt_tokens(MESSAGES)
    assert by_type["output"].sum == r.usage.completion_tokens
    assert GM.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK not in points  # streams only


def test_streamed_chat(tel: Telemetry, client: openai.OpenAI, upstream):
    prompt = "Tell me about streams."
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            extra_headers={"x-fake-ttft-ms": "50"},
        )
    )
    # the app sees exactly what it asked for: no usage chunk
    assert all(c.choices for c in chunks) and all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == sent_text(upstream[0])
    # ... while the SDK asked the upstream for usage
    assert upstream[0].state.log.last().body["stream_options"] == {"include_usage": True}
    span = tel.span()
    attrs = span.attributes
    assert attrs[GA.GEN_AI_REQUEST_STREAM] is True
    assert attrs[GA.GEN_AI_USAGE_INPUT_TOKENS] == chat_prompt_tokens(
        [{"role": "user", "content": prompt}]
    )
    assert attrs[GA.GEN_AI_USAGE_OUTPUT_TOKENS] == sent_usage(upstream[0])["completion_tokens"]
    assert attrs[GA.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attrs[GA.GEN_AI_RESPONSE_MODEL] == SNAPSHOT
    assert attrs["gen_ai.usage.cost"] > 0
    ttft = attrs[GA.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert 0.04 < ttft < (span.end_time - span.start_time) / 1e9
    ttft_points = tel.metrics()[GM.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK]
    assert ttft_points[0].count == 1 and tuple(ttft_points[0].explicit_bounds) == DURATION_BUCKETS


def test_stream_keeps_the_apps_own_usage_chunk(tel: Telemetry, client: openai.OpenAI):
    chunks = list(
        client.chat.completions.create(
            model=CHAT_MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert (
        tel.span().attributes[GA.GEN_AI_USAGE_OUTPUT_TOKENS] == chunks[-1].usage.completion_tokens
    )


def test_stream_usage_can_be_left_alone(tel: Telemetry, client: openai.OpenAI, upstream):
    tel.instrument(stream_usage=False)
    list(client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True))
    assert "stream_options" not in upstream[0].state.log.last().body
    assert GA.GEN_AI_USAGE_INPUT_TOKENS not in tel.span().attributes


def test_stream_helper(tel: Telemetry, client: openai.OpenAI, upstream):
    with client.chat.completions.stream(model=CHAT_MODEL, messages=MESSAGES) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    attrs = tel.span().attributes
    assert attrs[GA.GEN_AI_REQUEST_STREAM] is True
    assert attrs[GA.GEN_AI_RESPONSE_ID] == final.id
    assert attrs[GA.GEN_AI_USAGE_OUTPUT_TOKENS] == sent_usage(upstream[0])["completion_tokens"]
    assert tel.span().status.status_code is StatusCode.UNSET


def test_stream_helper_left_early_ends_the_span(tel: Telemetry, client: openai.OpenAI):
    with client.chat.completions.stream(model=CHAT_MODEL, messages=MESSAGES) as stream:
        next(iter(stream))
    span = tel.span()  # ended when the context manager closed the stream
    assert span.attributes[EA.ERROR_TYPE] == "cancelled"
    assert span.status.status_code is StatusCode.ERROR


def test_with_raw_response(tel: Telemetry, client: openai.OpenAI):
    raw = client.chat.completions.with_raw_response.create(model=CHAT_MODEL, messages=MESSAGES)
    assert raw.headers["content-type"].startswith("application/json")
    completion = raw.parse()
    attrs = tel.span().attributes
    assert attrs[GA.GEN_AI_RESPONSE_ID] == completion.id
    assert attrs[GA.GEN_AI_USAGE_INPUT_TOKENS] == completion.usage.prompt_tokens


def test_with_raw_response_stream(tel: Telemetry, client: openai.OpenAI, upstream):
    raw = client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL, messages=MESSAGES, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse())
    assert text == sent_text(upstream[0])
    attrs = tel.span().attributes
    assert attrs[GA.GEN_AI_REQUEST_STREAM] is True
    assert attrs[GA.GEN_AI_USAGE_OUTPUT_TOKENS] > 0


def test_with_streaming_response(tel: Telemetry, client: openai.OpenAI):
    with client.chat.completions.with_streaming_response.create(
        model=CHAT_MODEL, messages=MESSAGES
    ) as response:
        body = json.loads(response.read())
    span = tel.span()
    assert body["model"] == SNAPSHOT
    assert span.attributes[GA.GEN_AI_REQUEST_MODEL] == CHAT_MODEL
    assert span.status.status_code is StatusCode.UNSET


def test_parse(tel: Telemetry, client: openai.OpenAI):
    client.chat.completions.parse(model=CHAT_MODEL, messages=MESSAGES)
    assert tel.span().attributes[GA.GEN_AI_USAGE_INPUT_TOKENS] == chat_prompt_tokens(MESSAGES)


# -- other operations ----------------------------------------------------------------


def test_legacy_completions(tel: Telemetry, client: openai.OpenAI):
    prompt = "Once upon a time"
    r = client.completions.create(model="gpt-3.5-turbo-instruct", prompt=prompt, max_tokens=5)
    span = tel.span()
    assert span.name == "text_completion gpt-3.5-turbo-instruct"
    attrs = span.attributes
    assert attrs[GA.GEN_AI_OPERATION_NAME] == "text_completion"
    assert attrs[GA.GEN_AI_REQUEST_MAX_TOKENS] == 5
    assert attrs[GA.GEN_AI_USAGE_INPUT_TOKENS] == count_tokens(prompt)
    assert attrs[GA.GEN_AI_USAGE_OUTPUT_TOKENS] == r.usage.completion_tokens
    assert attrs[GA.GEN_AI_RESPONSE_FINISH_REASONS] == (r.choices[0].finish_reason,)
    assert OA.OPENAI_API_TYPE not in attrs


def test_legacy_completions_stream(tel: Telemetry, client: openai.OpenAI):
    chunks = list(
        client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Hi", stream=True)
    )
    assert all(c.choices for c in chunks)
    attrs = tel.span().attributes
    assert attrs[GA.GEN_AI_USAGE_INPUT_TOKENS] == count_tokens("Hi")
    assert attrs[GA.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def test_embeddings(tel: Telemetry, client: openai.OpenAI):
    r = client.embeddings.create(
        model="text-embedding-3-small", input="hello world", dimensions=8, encoding_format="float"
    )
    span = tel.span()
    assert span.name == "embeddings text-embedding-3-small"
    attrs = span.attributes
    assert attrs[GA.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attrs[GA.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 8
    assert attrs[GA.GEN_AI_REQUEST_ENCODING_FORMATS] == ("float",)
    assert (
        attrs[GA.GEN_AI_USAGE_INPUT_TOKENS] == r.usage.prompt_tokens == count_tokens("hello world")
    )
    assert GA.GEN_AI_USAGE_OUTPUT_TOKENS not in attrs
    assert attrs["gen_ai.usage.cost"] > 0
    assert len(r.data[0].embedding) == 8


def test_responses(tel: Telemetry, client: openai.OpenAI):
    r = client.responses.create(
        model=CHAT_MODEL, input="Hello there", instructions="Be brief.", max_output_tokens=40
    )
    span = tel.span()
    assert span.name == f"chat {CHAT_MODEL}"
    attrs = span.attributes
    assert attrs[GA.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[OA.OPENAI_API_TYPE] == "responses"
    assert attrs[GA.GEN_AI_REQUEST_MAX_TOKENS] == 40
    assert attrs[GA.GEN_AI_RESPONSE_ID] == r.id
    assert attrs[GA.GEN_AI_RESPONSE_MODEL] == SNAPSHOT
    assert (
        attrs[GA.GEN_AI_USAGE_INPUT_TOKENS]
        == r.usage.input_tokens
        == responses_input_tokens({"input": "Hello there", "instructions": "Be brief."})
    )
    assert attrs[GA.GEN_AI_USAGE_OUTPUT_TOKENS] == r.usage.output_tokens
    assert attrs[GA.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert GA.GEN_AI_INPUT_MESSAGES not in attrs


def test_responses_stream_and_helper(tel: Telemetry, client: openai.OpenAI):
    events = list(client.responses.create(model=CHAT_MODEL, input="Stream it", stream=True))
    assert events[-1].type == "response.completed"
    with client.responses.stream(model=CHAT_MODEL, input="Stream it again") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    first, second = sorted(tel.spans(), key=lambda s: s.start_time)
    for span, response in ((first, events[-1].response), (second, final)):
        attrs = span.attributes
        assert attrs[GA.GEN_AI_REQUEST_STREAM] is True
        assert attrs[GA.GEN_AI_RESPONSE_ID] == response.id
        assert attrs[GA.GEN_AI_USAGE_OUTPUT_TOKENS] == response.usage.output_tokens
        assert attrs[GA.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


# -- async ---------------------------------------------------------------------------


def test_async_client(tel: Telemetry, aclient: openai.AsyncOpenAI):
    async def main() -> None:
        await aclient.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
        stream = await aclient.chat.completions.create(
            model=CHAT_MODEL, messages=MESSAGES, stream=True
        )
        async for chunk in stream:
            assert chunk.choices
        await aclient.embeddings.create(model="text-embedding-3-small", input="x")
        await aclient.responses.create(model=CHAT_MODEL, input="hi")
        async with aclient.chat.completions.stream(model=CHAT_MODEL, messages=MESSAGES) as s:
            async for _ in s:
                pass
        with pytest.raises(openai.InternalServerError):
            await aclient.chat.completions.create(model="fake-500", messages=MESSAGES)

    asyncio.run(main())
    spans = sorted(tel.spans(), key=lambda s: s.start_time)
    assert [s.name for s in spans] == [
        f"chat {CHAT_MODEL}",
        f"chat {CHAT_MODEL}",
        "embeddings text-embedding-3-small",
        f"chat {CHAT_MODEL}",
        f"chat {CHAT_MODEL}",
        "chat fake-500",
    ]
    assert spans[1].attributes[GA.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    assert spans[1].attributes[GA.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    assert spans[4].attributes[GA.GEN_AI_REQUEST_STREAM] is True
    assert spans[5].attributes[EA.ERROR_TYPE] == "InternalServerError"
    assert spans[5].attributes[HA.HTTP_RESPONSE_STATUS_CODE] == 500


def test_async_stream_closed_early(tel: Telemetry, aclient: openai.AsyncOpenAI):
    async def main() -> None:
        stream = await aclient.chat.completions.create(
            model=CHAT_MODEL, messages=MESSAGES, stream=True
        )
        async for _ in stream:
            break
        await stream.close()

    asyncio.run(main())
    assert tel.span().attributes[EA.ERROR_TYPE] == "cancelled"


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "headers", "error", "status"),
    [
        ("fake-429", {}, openai.RateLimitError, 429),
        (CHAT_MODEL, {"x-fake-status": "500"}, openai.InternalServerError, 500),
        ("fake-400", {}, openai.BadRequestError, 400),
        ("fake-401", {}, openai.AuthenticationError, 401),
    ],
)
def test_errors(tel: Telemetry, client: openai.OpenAI, model, headers, error, status):
    with pytest.raises(error) as caught:
        client.chat.completions.create(model=model, messages=MESSAGES, extra_headers=headers)
    span = tel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == str(caught.value)
    assert span.attributes[EA.ERROR_TYPE] == error.__name__
    assert span.attributes[HA.HTTP_RESPONSE_STATUS_CODE] == status


def test_connection_error(tel: Telemetry):
    from tests.support.server import free_port

    c = openai.OpenAI(base_url=f"http://127.0.0.1:{free_port()}/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    assert tel.span().attributes[EA.ERROR_TYPE] == "APIConnectionError"


def test_error_in_the_middle_of_a_stream(tel: Telemetry, client: openai.OpenAI):
    stream = client.chat.completions.create(
        model=CHAT_MODEL,
        messages=MESSAGES,
        stream=True,
        extra_headers={"x-fake-stream-error-after": "2"},
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    span = tel.span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[EA.ERROR_TYPE] == "APIError"


# -- streams the app does not finish -------------------------------------------------


def test_stream_closed_early(tel: Telemetry, client: openai.OpenAI):
    stream = client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True)
    next(iter(stream))
    assert tel.spans() == []
    stream.close()
    span = tel.span()
    assert span.attributes[EA.ERROR_TYPE] == "cancelled"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[GA.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def test_stream_in_a_with_block_left_early(tel: Telemetry, client: openai.OpenAI):
    with client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True) as s:
        for _ in s:
            break
    assert tel.span().attributes[EA.ERROR_TYPE] == "cancelled"


def test_stream_read_to_its_finish_reason_then_closed_is_ok(tel, client):
    with client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True) as s:
        for chunk in s:
            if chunk.choices[0].finish_reason:
                break
    span = tel.span()
    assert span.status.status_code is StatusCode.UNSET
    assert span.attributes[GA.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


@pytest.mark.parametrize("started", [True, False])
def test_stream_dropped_by_the_app(tel: Telemetry, client: openai.OpenAI, started: bool):
    def abandon() -> None:
        stream = client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True)
        if started:
            next(iter(stream))

    abandon()
    gc.collect()
    # ended at the next instrumented call (or at exit), outside the garbage collector
    client.embeddings.create(model="text-embedding-3-small", input="next")
    drain_orphans()
    chat = [s for s in tel.spans() if s.name.startswith("chat")]
    assert len(chat) == 1
    assert chat[0].attributes[EA.ERROR_TYPE] == "cancelled"


# -- content -------------------------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def test_no_content_by_default(tel: Telemetry, client: openai.OpenAI):
    client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    attrs = tel.span().attributes
    for key in (GA.GEN_AI_INPUT_MESSAGES, GA.GEN_AI_OUTPUT_MESSAGES, GA.GEN_AI_SYSTEM_INSTRUCTIONS):
        assert key not in attrs
    assert tel.logs_exporter.get_finished_logs() == ()


def test_content_on_spans(tel: Telemetry, client: openai.OpenAI):
    tel.instrument(capture_content=True)
    messages = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "rainy, 14°C"},
    ]
    r = client.chat.completions.create(model=CHAT_MODEL, messages=messages, tools=TOOLS)
    attrs = tel.span().attributes
    assert json.loads(attrs[GA.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "How do I make tea?"}]},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "get_weather",
                    "arguments": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "rainy, 14°C"}],
        },
    ]
    out = json.loads(attrs[GA.GEN_AI_OUTPUT_MESSAGES])
    choice = r.choices[0]
    assert out[0]["role"] == "assistant"
    assert out[0]["finish_reason"] == choice.finish_reason
    if choice.message.content is not None:
        assert out[0]["parts"][0] == {"type": "text", "content": choice.message.content}
    for part, tc in zip(
        [p for p in out[0]["parts"] if p["type"] == "tool_call"],
        choice.message.tool_calls or [],
        strict=True,
    ):
        assert part["name"] == tc.function.name
        assert part["arguments"] == json.loads(tc.function.arguments)


def test_content_of_a_stream_and_of_responses(tel: Telemetry, client: openai.OpenAI, upstream):
    tel.instrument(capture_content=True)
    prompt = "Stream me some content"
    list(
        client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": prompt}], stream=True
        )
    )
    text = sent_text(upstream[0])
    r = client.responses.create(model=CHAT_MODEL, input="Hi there", instructions="Be kind.")
    chat, resp = sorted(tel.spans(), key=lambda s: s.start_time)
    assert json.loads(chat.attributes[GA.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": text}],
            "finish_reason": "stop",
        }
    ]
    assert json.loads(resp.attributes[GA.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": "Be kind."}
    ]
    assert json.loads(resp.attributes[GA.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "Hi there"}]}
    ]
    assert json.loads(resp.attributes[GA.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": r.output_text}],
            "finish_reason": "stop",
        }
    ]


def test_content_as_log_events(tel: Telemetry, client: openai.OpenAI):
    tel.instrument(capture_content="event_only")
    client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    span = tel.span()
    assert GA.GEN_AI_INPUT_MESSAGES not in span.attributes
    (log,) = tel.logs_exporter.get_finished_logs()
    record = log.log_record
    assert record.event_name == A.GEN_AI_CLIENT_INFERENCE_OPERATION_DETAILS
    assert record.trace_id == span.context.trace_id
    assert record.span_id == span.context.span_id
    attrs = record.attributes
    assert attrs[GA.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[GA.GEN_AI_REQUEST_MODEL] == CHAT_MODEL
    messages = attrs[GA.GEN_AI_INPUT_MESSAGES]  # structured, as events must be
    assert messages[1]["parts"][0]["content"] == "How do I make tea?"
    assert attrs[GA.GEN_AI_OUTPUT_MESSAGES][0]["finish_reason"] == "stop"


def test_inline_images_are_elided(tel: Telemetry, client: openai.OpenAI):
    tel.instrument(capture_content=True)
    image = "data:image/png;base64," + "A" * 5000
    client.chat.completions.create(
        model=CHAT_MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            }
        ],
    )
    parts = json.loads(tel.span().attributes[GA.GEN_AI_INPUT_MESSAGES])[0]["parts"]
    assert parts[0] == {"type": "text", "content": "What is this?"}
    assert parts[1]["type"] == "blob" and parts[1]["mime_type"] == "image/png"
    assert "AAAA" not in parts[1]["content"]


# -- the gateway ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_gateway() -> Iterator[tuple[Any, str]]:
    """The fake upstream under ``/openai`` and ``/p/deepseek``, like the gateway's paths."""
    upstream_app = create_app()
    app = Starlette(routes=[Mount("/openai", upstream_app), Mount("/p/deepseek", upstream_app)])
    with serve_in_thread(app) as url:
        yield upstream_app, url


@pytest.mark.parametrize("path", ["/openai/v1", "/p/deepseek/v1"])
def test_calls_through_the_gateway_join_the_trace(tel: Telemetry, fake_gateway, path):
    upstream_app, url = fake_gateway
    tel.instrument(gateway_endpoint=url, app="my-app")
    c = openai.OpenAI(base_url=url + path, api_key="k", max_retries=0)
    c.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    span = tel.span()
    headers = upstream_app.state.log.last().headers
    ctx = span.context
    flags = f"{int(ctx.trace_flags):02x}"
    assert headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags}"
    assert headers["x-gensight-app"] == "my-app"
    assert span.attributes[A.GENSIGHT_VIA_GATEWAY] is True


def test_no_trace_headers_for_other_hosts(tel: Telemetry, client: openai.OpenAI, upstream):
    tel.instrument(gateway_endpoint="http://127.0.0.1:4318", app="my-app")
    client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    headers = upstream[0].state.log.last().headers
    assert "traceparent" not in headers and "x-gensight-app" not in headers
    assert A.GENSIGHT_VIA_GATEWAY not in tel.span().attributes


# -- the app's own spans -------------------------------------------------------------


def test_workflow_spans_nest(tel: Telemetry, client: openai.OpenAI, monkeypatch):
    import gensight
    from gensight.sdk import setup

    monkeypatch.setattr(setup._state, "tracer_provider", tel.tracer_provider)

    @gensight.trace
    def retrieve(query: str) -> list[str]:
        return [query.upper()]

    @gensight.trace("generate", step=2)
    async def generate(docs: list[str]) -> str:
        r = await openai.AsyncOpenAI(
            base_url=str(client.base_url), api_key="k", max_retries=0
        ).chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": docs[0]}])
        return r.choices[0].message.content

    @gensight.trace
    def chunks(n: int) -> Iterator[int]:
        yield from range(n)

    with gensight.span("handle request", route="/ask", tags=["a", "b"], obj=object()) as root:
        docs = retrieve("tea")
        asyncio.run(generate(docs))
        assert list(chunks(3)) == [0, 1, 2]
        root.set_attribute("answered", True)
    with pytest.raises(ValueError), gensight.span("failing step"):
        raise ValueError("boom")

    spans = {s.name: s for s in tel.spans()}
    handle = spans["handle request"]
    assert handle.attributes["route"] == "/ask"
    assert handle.attributes["tags"] == ("a", "b")
    assert handle.attributes["answered"] is True
    assert isinstance(handle.attributes["obj"], str)
    assert spans["test_workflow_spans_nest.<locals>.retrieve"].parent.span_id == (
        handle.context.span_id
    )
    assert spans["generate"].parent.span_id == handle.context.span_id
    assert spans["generate"].attributes["step"] == 2
    assert spans[f"chat {CHAT_MODEL}"].parent.span_id == spans["generate"].context.span_id
    assert spans["test_workflow_spans_nest.<locals>.chunks"].parent.span_id == (
        handle.context.span_id
    )
    assert len({s.context.trace_id for s in tel.spans() if s.name != "failing step"}) == 1
    failing = spans["failing step"]
    assert failing.status.status_code is StatusCode.ERROR
    assert failing.events[0].attributes["exception.type"] == "ValueError"


# -- never in the app's way ----------------------------------------------------------


def test_telemetry_failures_never_reach_the_app(tel: Telemetry, client, upstream, monkeypatch):
    from gensight.sdk import operations, runtime

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("telemetry bug")

    monkeypatch.setattr(operations.Chat, "response", broken)
    monkeypatch.setattr(operations.Chat, "chunk", broken)
    monkeypatch.setattr(runtime, "_warned", set())
    r = client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    assert r.choices[0].message.content == sent_text(upstream[0])
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, stream=True)
        if c.choices
    )
    assert text == sent_text(upstream[0])
    assert len(tel.spans()) == 2  # still ended
    monkeypatch.setattr(operations.Chat, "request", broken)  # fails before the span starts
    assert client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES).choices
    assert len(tel.spans()) == 2  # that call ran untraced


def test_uninstrument_restores_the_client(pricer: Pricer, client: openai.OpenAI):
    from openai.resources.chat.completions.completions import Completions

    original = Completions.__dict__["create"]
    t = Telemetry(pricer)
    t.instrument()
    assert Completions.__dict__["create"] is not original
    t.instrumentor.uninstrument()
    assert Completions.__dict__["create"] is original
    client.chat.completions.create(model=CHAT_MODEL, messages=MESSAGES)
    assert t.spans() == []


def test_instrumentation_waits_for_lazily_imported_resources(pricer: Pricer):
    """openai 3 imports each resource module on first use; those are wrapped on import."""
    import subprocess
    import sys

    code = """
import sys, openai
from gensight.sdk.instrumentor import OpenAIInstrumentor
OpenAIInstrumentor().instrument()
name = "openai.resources.embeddings"
print(name in sys.modules)
client = openai.OpenAI(api_key="k")
client.embeddings  # imports the module
from openai.resources.embeddings import Embeddings
print(hasattr(Embeddings.__dict__["create"], "__gensight_original__"))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


# -- the exporter --------------------------------------------------------------------


def test_fast_span_encoding_is_the_official_encoding():
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as official
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, Status, TraceFlags
    from opentelemetry.trace import set_span_in_context as in_context
    from opentelemetry.trace.span import TraceState

    from gensight.sdk.export import encode_spans

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "n": [1, 2]}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ours = provider.get_tracer("gensight.sdk", "1.0", schema_url="https://example.com/s")
    other = provider.get_tracer("other", attributes={"a": "b"})
    remote = SpanContext(
        trace_id=0xABC,
        span_id=0xDEF,
        is_remote=True,
        trace_flags=TraceFlags(1),
        trace_state=TraceState([("k", "v")]),
    )
    values = {
        "s": "é ü 中",
        "i": -5,
        "big": 2**62,
        "f": 0.5,
        "zero": 0.0,
        "negzero": -0.0,
        "b": True,
        "l": ["a", "b"],
        "li": [1, 2],
        "by": b"\x00\x01",
        "e": "",
    }
    for round_ in range(3):  # the second and third rounds hit the field cache
        with ours.start_as_current_span(
            "root", kind=SpanKind.SERVER, attributes={**values, "round": round_},
            links=[Link(remote, {"x": 1})],
        ) as span:  # fmt: skip
            span.add_event("ev", {"k": 1.5})
            span.set_status(Status(StatusCode.ERROR, "boom"))
            with other.start_as_current_span("child", kind=SpanKind.CLIENT):
                pass
        with ours.start_as_current_span(
            "remote child", context=in_context(NonRecordingSpan(remote))
        ):
            pass
    spans = exporter.get_finished_spans()
    assert ExportTraceServiceRequest.FromString(encode_spans(spans)) == official(spans)


@pytest.mark.parametrize(
    "data",
    [
        '{"id":"c","choices":[],"usage":null}',
        '{"id": "c", "choices": [], "usage": null}',
        '{"usage":null,"id":"c","choices":[]}',
        '{"usage": null, "id": "c", "choices": []}',
    ],
)
def test_null_usage_is_cut_from_chunks(data: str):
    from gensight.sdk.streams import _strip_null_usage

    assert json.loads(_strip_null_usage(data)) == {"id": "c", "choices": []}
