"""A fake OpenAI API upstream, faithful enough for the real ``openai`` client and
the real OpenTelemetry GenAI instrumentations.

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions``,
``POST /v1/embeddings``, ``POST /v1/responses`` (each streamed and not, where the
real API streams), ``GET /v1/models`` and ``GET /v1/models/{id}``.

Determinism
    Reply text and token counts are a pure function of the request, so tests can
    predict them:

    * ``prompt_tokens``: :func:`chat_prompt_tokens` (chat), :func:`count_tokens`
      of the prompt (legacy completions, embeddings), :func:`responses_input_tokens`.
    * the reply is :func:`reply_pieces` of the prompt; each piece is one token,
      so ``completion_tokens == len(pieces)`` (plus reasoning tokens for
      reasoning models, see :func:`is_reasoning_model`). ``max_tokens`` /
      ``max_completion_tokens`` / ``max_output_tokens`` truncate the reply
      (``finish_reason="length"``).
    * ``cached_tokens``: ``(prompt_tokens // 256) * 128`` when the prompt has at
      least 1024 tokens (OpenAI caches prompts of 1024+ tokens), else 0.

Injection (works through any client, no custom code)
    * model ``fake-<status>`` (``fake-400``, ``fake-401``, ``fake-403``,
      ``fake-404``, ``fake-429``, ``fake-429-quota``, ``fake-500``, ``fake-503``…)
      answers that status with the real OpenAI error body (429 also with
      ``Retry-After``);
    * header ``x-fake-status: 429`` does the same for any model; with
      ``x-fake-fail-times: N`` only the first N such requests fail (counted per
      ``x-fake-fail-key``, default the status), which is what retry tests need;
    * ``x-fake-ttft-ms``: delay before the first chunk (or before a non-streamed
      answer); ``x-fake-latency-ms``: extra delay for a non-streamed answer;
      ``x-fake-stall-ms``: a stall halfway through a stream;
      ``x-fake-stream-error-after: N``: an SSE error event after N chunks;
      ``x-fake-disconnect-after: N``: the connection drops after N chunks;
      ``x-fake-completion-tokens``, ``x-fake-cached-tokens``,
      ``x-fake-reasoning-tokens``: force those counts; ``x-fake-retry-after``:
      the Retry-After value of an injected 429/503;
    * ``x-fake-ignore-include-usage: 1`` (or ``UpstreamConfig(honor_include_usage=False)``):
      streams never carry usage, like OpenAI-compatible servers that ignore
      ``stream_options.include_usage``.

Latency
    :class:`ModelProfile` per model (exact name or longest prefix), default
    instantaneous for tests. :data:`DEMO_PROFILES` holds realistic ones.

Recording
    ``app.state.log`` (a :class:`RequestLog`) keeps every request received and
    what was sent back (body, SSE chunks, usage), for in-process comparisons.

Modules: ``config`` (profiles, ``UpstreamConfig``), ``recording`` (``RequestLog``),
``text`` (replies and token counts), ``errors`` (OpenAI error bodies), ``base`` (the
per-request plan, streaming, tools), ``completions`` (chat, legacy completions,
embeddings), ``responses`` (the Responses API), ``app`` (routes, ``serve``).

Use :func:`create_app` to build the ASGI app and :func:`serve` to run it on a
loopback port: ``with serve(app) as base_url:`` yields ``http://127.0.0.1:PORT/v1``.
"""

from gensight.demo.upstream.app import create_app, serve
from gensight.demo.upstream.config import (
    DEFAULT_MODELS,
    DEMO_PROFILES,
    ModelProfile,
    UpstreamConfig,
)
from gensight.demo.upstream.errors import error_body
from gensight.demo.upstream.recording import Exchange, RequestLog
from gensight.demo.upstream.text import (
    chat_prompt_tokens,
    count_tokens,
    is_reasoning_model,
    reply_pieces,
    responses_input_tokens,
)

__all__ = [
    "DEFAULT_MODELS",
    "DEMO_PROFILES",
    "Exchange",
    "ModelProfile",
    "RequestLog",
    "UpstreamConfig",
    "chat_prompt_tokens",
    "count_tokens",
    "create_app",
    "error_body",
    "is_reasoning_model",
    "reply_pieces",
    "responses_input_tokens",
    "serve",
]
