"""Drive the anthropic and openai-agents producers through their scenarios.

Runs inside the producer's own venv (see envs.py), never imports gensight::

    ENV_PYTHON drive_more.py --producer anthropic --upstream http://127.0.0.1:P \
        --otlp http://127.0.0.1:Q [--capture-content] [--sdk-spans on|off] [--openllmetry]

anthropic (the real ``anthropic`` client against ``gensight.demo.anthropic_upstream``,
max_retries=0; the SDK's own spans on unless ``--sdk-spans off``; OpenLLMetry's
``opentelemetry-instrumentation-anthropic`` with ``--openllmetry``):
  1. message, system + user, max_tokens 50 (this SDK has no temperature), with 5 cache-read and
     3 cache-write prompt tokens (x-fake-cache-* headers)
  2. streamed message (``stream=True``), every event read
  3. tool round trip: a ``get_weather`` tool → ``tool_use``; the ``tool_result`` → text
  4. 429 (rate_limit_error) and 529 (overloaded_error) via x-fake-status, caught
  5. span ``rag-request`` > ``retrieve``, then a message inside ``rag-request``

openai-agents (``openai-agents`` with ``OpenAIChatCompletionsModel`` on the fake OpenAI
upstream, traced by ``openinference-instrumentation-openai-agents``):
  1. an agent run (one chat call)
  2. a streamed agent run (one streamed chat call, ``include_usage=True``)
  3. an agent with a ``get_weather`` function tool (chat → tool → chat)
  4. an agent run whose model call fails with 429, caught
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable

from drive import SERVICE, _otel_sdk


def setup_anthropic(args: argparse.Namespace) -> Callable[[], None]:
    if args.sdk_spans == "off":
        os.environ["ANTHROPIC_OPEN_TELEMETRY"] = "false"
    if args.capture_content:
        os.environ["ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE"] = "content"
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true" if args.capture_content else "false"
    shutdown = _otel_sdk(args.otlp, SERVICE.format(name=args.producer), logs=False, metrics=False)
    if args.openllmetry:
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument()
    return shutdown


def scenario_anthropic(upstream: str) -> None:
    import anthropic
    from opentelemetry import trace

    client = anthropic.Anthropic(base_url=upstream, api_key="sk-ant-test-producer", max_retries=0)
    model = "claude-sonnet-4-5"
    client.messages.create(
        model=model,
        max_tokens=50,
        system="You are a terse assistant.",
        messages=[{"role": "user", "content": "Say hello to the observability team."}],
        extra_headers={"x-fake-cache-read-tokens": "5", "x-fake-cache-write-tokens": "3"},
    )
    stream = client.messages.create(
        model=model,
        max_tokens=100,
        messages=[{"role": "user", "content": "Stream a short greeting."}],
        stream=True,
    )
    for _event in stream:
        pass
    tools = [
        {
            "name": "get_weather",
            "description": "The current weather in a city.",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    question = {"role": "user", "content": "What is the weather in Paris?"}
    first = client.messages.create(model=model, max_tokens=200, tools=tools, messages=[question])
    (use,) = [b for b in first.content if b.type == "tool_use"]
    client.messages.create(
        model=model,
        max_tokens=200,
        tools=tools,
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": "18°C, sunny"}
                ],
            },
        ],
    )
    for status in ("429", "529"):
        try:
            client.messages.create(
                model=model,
                max_tokens=50,
                messages=[{"role": "user", "content": f"This call fails with {status}."}],
                extra_headers={"x-fake-status": status},
            )
        except anthropic.APIStatusError as exc:
            print(f"expected error {exc.status_code}", file=sys.stderr)
        else:
            raise SystemExit(f"the {status} call did not fail")
    tracer = trace.get_tracer("producer-scenario")
    with tracer.start_as_current_span("rag-request"):
        with tracer.start_as_current_span("retrieve") as span:
            span.set_attribute("retrieval.documents", 3)
        client.messages.create(
            model=model,
            max_tokens=100,
            system="Answer from the context.",
            messages=[
                {"role": "user", "content": "Context: doc1 doc2 doc3. Question: what is RAG?"}
            ],
        )


def setup_openai_agents(args: argparse.Namespace) -> Callable[[], None]:
    shutdown = _otel_sdk(args.otlp, SERVICE.format(name=args.producer), logs=False, metrics=False)
    from openinference.instrumentation import TraceConfig
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor
    from opentelemetry import trace

    hide = not args.capture_content
    config = TraceConfig(
        hide_inputs=hide,
        hide_outputs=hide,
        hide_input_messages=hide,
        hide_output_messages=hide,
    )
    # exclusive (the default): replaces the agents SDK's own exporter to api.openai.com
    OpenAIAgentsInstrumentor().instrument(
        tracer_provider=trace.get_tracer_provider(), config=config
    )
    return shutdown


async def _agents(upstream: str) -> None:
    import openai
    from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool

    client = openai.AsyncOpenAI(base_url=upstream, api_key="sk-test-producer", max_retries=0)
    model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)

    @function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        return f"18°C and sunny in {city}"

    greeter = Agent(name="greeter", instructions="You are a terse assistant.", model=model,
                    model_settings=ModelSettings(temperature=0.2, max_tokens=50))  # fmt: skip
    await Runner.run(greeter, "Say hello to the observability team.")
    # include_usage: without it the chat-completions stream has no usage at all
    streamer = greeter.clone(model_settings=ModelSettings(temperature=0.2, include_usage=True))
    streamed = Runner.run_streamed(streamer, "Stream a short greeting.")
    async for _event in streamed.stream_events():
        pass
    weather = Agent(name="weather", instructions="Use the tool.", model=model, tools=[get_weather])
    await Runner.run(weather, "What is the weather in Paris?")
    fail = ModelSettings(extra_headers={"x-fake-status": "429"})
    failing = Agent(name="failing", model=model, model_settings=fail)
    try:
        await Runner.run(failing, "This call fails with 429.")
    except openai.RateLimitError:
        print("expected error 429", file=sys.stderr)
    else:
        raise SystemExit("the 429 run did not fail")


def scenario_openai_agents(upstream: str) -> None:
    asyncio.run(_agents(upstream))


Setup = Callable[[argparse.Namespace], Callable[[], None]]
PRODUCERS: dict[str, tuple[Setup, Callable[[str], None]]] = {
    "anthropic": (setup_anthropic, scenario_anthropic),
    "openai-agents": (setup_openai_agents, scenario_openai_agents),
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--producer", required=True, choices=sorted(PRODUCERS))
    parser.add_argument("--upstream", required=True, help="fake upstream base URL")
    parser.add_argument("--otlp", required=True, help="OTLP/HTTP base URL (no /v1/traces)")
    parser.add_argument("--capture-content", action="store_true")
    parser.add_argument("--sdk-spans", default="on", choices=["on", "off"])
    parser.add_argument("--openllmetry", action="store_true")
    args = parser.parse_args()
    args.otlp = args.otlp.rstrip("/")
    os.environ.setdefault("OTEL_SERVICE_NAME", SERVICE.format(name=args.producer))
    setup, scenario = PRODUCERS[args.producer]
    shutdown = setup(args)
    try:
        scenario(args.upstream)
    finally:
        shutdown()


if __name__ == "__main__":
    main()
