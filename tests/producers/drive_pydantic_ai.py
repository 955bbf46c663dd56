"""Drive pydantic-ai (``Agent(..., instrument=True)``) through a fixed agent scenario.

Runs inside the ``pydantic-ai`` venv (see envs.py), never imports gensight::

    ENV_PYTHON drive_pydantic_ai.py --upstream http://127.0.0.1:P/v1 --otlp http://127.0.0.1:Q

Scenario (``Agent.instrument_all``; pydantic-ai's ``OpenAIChatModel`` on the real
``openai`` client, max_retries=0), six model requests in all, each one an LLM call:
  1. ``agent.run``: a plain question            → 1 chat request
  2. ``agent.run``: "weather in Paris" with a tool → 2 chat requests (tool call, answer)
     plus one ``execute_tool`` span
  3. ``agent.run_stream``: a streamed answer    → 1 streamed chat request
  4. ``Embedder.embed_query``                   → 1 embeddings request
  5. ``agent.run`` against a 429 (``x-fake-status``), exception caught → 1 failed request
Every agent run is an ``invoke_agent`` span carrying the run's aggregated usage;
those are not calls. The tracer provider is flushed and shut down at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

SERVICE = "producer-pydantic-ai"


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--otlp", required=True)
    p.add_argument("--capture-content", action="store_true")
    p.add_argument("--producer", default="pydantic-ai")  # run.py's common arguments
    p.add_argument("--mode", default="default")
    args = p.parse_args()

    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    resource = Resource.create({"service.name": SERVICE, "deployment.environment": "test"})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{args.otlp}/v1/traces")))
    trace.set_tracer_provider(tp)

    import openai
    from pydantic_ai import Agent, InstrumentationSettings
    from pydantic_ai.embeddings import Embedder
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    def provider(headers: dict[str, str] | None = None) -> OpenAIProvider:
        client = openai.AsyncOpenAI(
            base_url=args.upstream, api_key="sk-test", max_retries=0, default_headers=headers
        )
        return OpenAIProvider(openai_client=client)

    instrument = InstrumentationSettings(include_content=args.capture_content)
    model = OpenAIChatModel("gpt-4o-mini", provider=provider())
    # pydantic-ai 2.x: ``Agent(instrument=...)`` became the ``instrument`` property and
    # ``Agent.instrument_all``; this is the documented switch for every agent.
    Agent.instrument_all(instrument)
    agent = Agent(model, system_prompt="Be brief.")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}, 21 C"

    async def scenario() -> None:
        await agent.run("Name a colour.")
        await agent.run("What is the weather in Paris?")
        async with agent.run_stream("Tell me a short story.") as result:
            async for _ in result.stream_text():
                pass
        embedder = Embedder(_embedding_model(provider()), instrument=instrument)
        await embedder.embed_query("hello world")
        failing = Agent(OpenAIChatModel("gpt-4o-mini", provider=provider({"x-fake-status": "429"})))
        try:
            await failing.run("This one fails.")
        except Exception as e:  # the 429, as the app sees it
            print("expected failure:", type(e).__name__, file=sys.stderr)

    asyncio.run(scenario())
    tp.force_flush()
    tp.shutdown()
    return 0


def _embedding_model(provider):  # type: ignore[no-untyped-def]
    from pydantic_ai.embeddings.openai import OpenAIEmbeddingModel

    return OpenAIEmbeddingModel("text-embedding-3-small", provider=provider)


if __name__ == "__main__":
    raise SystemExit(main())
