"""``gensight demo``: the whole system on a fresh machine, with nothing configured.

One process runs three things:

* the Gensight server on the embedded DuckDB store (a temporary data dir unless
  ``--data-dir`` is given), with the gateway's ``openai`` and ``deepseek`` upstreams
  pointed at
* a simulated OpenAI-compatible upstream (``gensight.demo.upstream`` with
  realistic per-model latency, time to first token and token counts, and a share
  of rate limits and server errors), and
* a traffic generator driving both capture paths at once:
  - the **gateway**: four apps and twenty users (``X-Gensight-App|User|Session``
    headers) calling chat (streamed and not, some with tools), embeddings and the
    Responses API through ``/openai/v1`` and ``/p/deepseek/v1``, including calls
    that fail for each reason (a bad parameter, a wrong key, a rate limit, an
    upstream error, a timeout);
  - **Claude and Gemini** on their own wire formats through ``/anthropic`` and
    ``/gemini``, to simulated Anthropic and Gemini upstreams
    (``gensight.demo.native_traffic``), so the dashboard shows three providers;
  - the **SDK**: ``gensight.init()`` and a RAG service whose requests are traces of
    handler → retrieve → LLM → tool → LLM, its openai client calling the upstream
    directly, so those calls arrive over OTLP.
  - **feedback**: a share of the gateway's plain chat answers get a user's thumbs up or
    down (``POST /api/scores`` with the ``X-Gensight-Call-Id`` the answer carried),
    likelier up for the larger models, so cost per good answer has something to rank.

Everything is on loopback; nothing reaches the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gensight.demo.anthropic_upstream import create_app as anthropic_app
from gensight.demo.gemini_upstream import create_app as gemini_app
from gensight.demo.native_traffic import NativeTraffic
from gensight.demo.serve import ServerThread
from gensight.demo.upstream import DEMO_PROFILES, ModelProfile, UpstreamConfig, create_app
from gensight.enrich.pricing import PRICED_HOSTS_ENV
from gensight.model.settings import Settings

#: The demo's upstream key; the gateway forwards it, and never stores it.
DEMO_KEY = "sk-demo-0000000000000000000000000000"

APPS = {  # app: (models, share of traffic, stream share)
    "support-bot": (["gpt-4o-mini", "gpt-4.1-mini"], 0.35, 0.7),
    "search": (["gpt-4.1-nano", "gpt-4o-mini"], 0.25, 0.2),
    "copilot": (["gpt-4o", "gpt-4.1", "o4-mini"], 0.25, 0.8),
    "batch-summarizer": (["gpt-4o-mini", "gpt-5-mini"], 0.15, 0.0),
}
DEEPSEEK_SHARE = 0.08
#: Share of plain chat answers a user rates, and each model's chance of a thumbs up.
THUMBS_SHARE = 0.4
THUMBS_UP = {"gpt-4o": 0.9, "gpt-4.1": 0.9, "o4-mini": 0.85, "gpt-5-mini": 0.85,
             "gpt-4.1-mini": 0.75, "gpt-4o-mini": 0.7, "gpt-4.1-nano": 0.55}  # fmt: skip
QUESTIONS = (
    "How do I reset my password?",
    "Summarize the refund policy in two sentences.",
    "Which plan includes SSO?",
    "Translate 'order shipped' to German.",
    "What is the status of order 8812?",
    "Write a haiku about latency.",
    "Explain retrieval-augmented generation to a new engineer.",
    "List three risks of caching LLM responses.",
)
DOCS = ("refunds.md", "sso.md", "shipping.md", "pricing.md", "faq.md", "api.md")


def demo_upstream_config(seed: int | None = None) -> UpstreamConfig:
    """The simulated upstream: realistic latency per model, some failures, a real key check."""
    errors = {429: 0.03, 500: 0.015, 503: 0.005}
    profiles = {
        name: ModelProfile(p.ttft_ms, p.ms_per_token, p.jitter, errors)
        for name, p in DEMO_PROFILES.items()
    }
    seed = int(time.time()) if seed is None else seed
    return UpstreamConfig(profiles=profiles, api_key=DEMO_KEY, seed=seed)


#: The failures the demo shows within its first gateway calls, whatever the rate or the
#: machine's load, so every error class is on the dashboard at once: our bad parameter,
#: a wrong key, the provider's rate limit, its outage, and the gateway's timeout.
FAILURE_TOUR = ("bad_parameter", "wrong_key", "rate_limit", "server_error", "timeout")


@dataclass
class Tally:
    """What the traffic generator saw, for the progress display."""

    sent: int = 0
    ok: int = 0
    cut: int = 0  # calls still in flight when the demo stopped
    by_path: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)


#: Completion lengths stop here, so a slow model's long answer still comes back well
#: within the demo gateway's timeout: the timeouts the dashboard shows are the ones the
#: demo means to show, not a latency p95 pinned at the timeout.
MAX_COMPLETION_TOKENS = 500


def _completion_tokens(rng: random.Random, app: str) -> int:
    median = {"batch-summarizer": 320, "copilot": 220, "support-bot": 120, "search": 40}[app]
    return min(MAX_COMPLETION_TOKENS, max(3, int(rng.lognormvariate(0, 0.6) * median)))


class Traffic:
    """Generates the demo's calls at ``rate`` per second until stopped."""

    def __init__(
        self, server_url: str, upstream_url: str, rate: float, seed: int, native: bool = False
    ) -> None:
        self.native = NativeTraffic(server_url, random.Random(seed + 1)) if native else None
        self.server_url = server_url
        self.upstream_url = upstream_url
        self.rate = rate
        self.rng = random.Random(seed)
        self.tour = list(FAILURE_TOUR)
        self.tally = Tally()
        self.stop = asyncio.Event()
        #: seconds the calls in flight get to finish once stopped (Ctrl-C: a moment)
        self.grace = 10.0

    async def run(self) -> None:
        """Start calls at Poisson arrivals until ``stop`` is set; wait for those in flight."""
        import openai

        gw = f"{self.server_url}/openai/v1"
        self.gateway = openai.AsyncOpenAI(base_url=gw, api_key=DEMO_KEY, max_retries=0)
        self.deepseek = openai.AsyncOpenAI(
            base_url=f"{self.server_url}/p/deepseek/v1", api_key=DEMO_KEY, max_retries=0
        )
        self.direct = openai.AsyncOpenAI(
            base_url=self.upstream_url, api_key=DEMO_KEY, max_retries=1, timeout=20
        )
        self.feedback = httpx.AsyncClient(timeout=10)
        tasks: set[asyncio.Task[None]] = set()
        while not self.stop.is_set():
            task = asyncio.create_task(self._one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.rng.expovariate(self.rate))
        if tasks:
            await asyncio.wait(tasks, timeout=self.grace)
        for t in tasks:
            t.cancel()
        # collect the cancelled calls, so none is reported as "never retrieved"
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in (self.gateway, self.deepseek, self.direct):
            with contextlib.suppress(Exception):
                await client.close()
        with contextlib.suppress(Exception):
            await self.feedback.aclose()
        if self.native is not None:
            with contextlib.suppress(Exception):
                await self.native.close()

    async def _one(self) -> None:
        r = self.rng.random()
        self.tally.sent += 1
        try:
            if r < 0.18:
                await self._rag_request()
                self.tally.by_path["sdk"] += 1
            elif r < 0.32 and self.native is not None:
                user = f"user-{self.rng.randint(1, 20)}"
                meta = {"X-Gensight-App": "assistant", "X-Gensight-User": user,
                        "X-Gensight-Session": f"{user}-s{self.rng.randint(1, 3)}"}  # fmt: skip
                await self.native.call(meta, self.rng.choice(QUESTIONS))
                self.tally.by_path["gateway"] += 1
            else:
                await self._gateway_call()
                self.tally.by_path["gateway"] += 1
            self.tally.ok += 1
        except asyncio.CancelledError:  # stopped mid-call: not a failure of the show
            self.tally.cut += 1
            raise
        except Exception as e:  # every failure is part of the show; count it
            self.tally.failures[_failure_name(e)] += 1

    # -- gateway traffic ----------------------------------------------------
    async def _gateway_call(self) -> None:
        rng = self.rng
        app = rng.choices(list(APPS), weights=[v[1] for v in APPS.values()])[0]
        models, _, stream_share = APPS[app]
        user = f"user-{rng.randint(1, 20)}"
        headers = {
            "X-Gensight-App": app,
            "X-Gensight-User": user,
            "X-Gensight-Session": f"{user}-s{rng.randint(1, 3)}",
            "X-Gensight-Tags": rng.choice(["web", "mobile", "api"]),
            "x-fake-completion-tokens": str(_completion_tokens(rng, app)),
        }
        client = self.gateway
        model = rng.choice(models)
        if rng.random() < DEEPSEEK_SHARE:
            client, model = self.deepseek, "deepseek-chat"
        forced = self.tour.pop(0) if self.tour else None
        roll = 1.0 if forced else rng.random()  # a forced failure rides on a plain chat call
        if forced == "rate_limit":
            headers.update({"x-fake-status": "429", "x-fake-retry-after": "0"})
        elif forced == "server_error":
            headers["x-fake-status"] = "500"
        if forced == "bad_parameter" or roll < 0.02:  # our own bad parameter: the upstream's 400
            await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": rng.choice(QUESTIONS)}],
                stream_options={"include_usage": True},
                extra_headers=headers,
            )
            return
        if forced == "wrong_key" or roll < 0.03:  # a wrong key: 401
            await client.with_options(api_key="sk-wrong-key-000000000000").chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": rng.choice(QUESTIONS)}],
                extra_headers=headers,
            )
            return
        if forced == "timeout" or roll < 0.04:  # no answer in time: the gateway's 504
            headers["x-fake-ttft-ms"] = "12000"
        if roll < 0.12 and app in ("search", "support-bot"):
            await client.embeddings.create(
                model="text-embedding-3-small",
                input=rng.choice(QUESTIONS),
                extra_headers={k: v for k, v in headers.items() if not k.startswith("x-fake-c")},
            )
            return
        if roll < 0.17 and app == "copilot":
            await client.responses.create(
                model=model, input=rng.choice(QUESTIONS), extra_headers=headers
            )
            return
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": f"You are the {app} assistant. Be concise."},
            {"role": "user", "content": rng.choice(QUESTIONS)},
        ]
        kwargs: dict[str, Any] = {"temperature": round(rng.uniform(0, 1), 1)}
        if app == "support-bot" and rng.random() < 0.3:
            messages[-1]["content"] = "What's the weather in Berlin for my delivery?"
            kwargs["tools"] = [_WEATHER_TOOL]
        if rng.random() < stream_share:
            stream = await client.chat.completions.create(
                model=model, messages=messages, stream=True, extra_headers=headers, **kwargs
            )
            async for _chunk in stream:
                pass
        else:
            raw = await client.chat.completions.with_raw_response.create(
                model=model, messages=messages, extra_headers=headers, **kwargs
            )
            if rng.random() < THUMBS_SHARE:
                await self._thumbs(raw.headers.get("x-gensight-call-id"), model, user)

    async def _thumbs(self, call_id: str | None, model: str, user: str) -> None:
        """A user's thumbs up or down on one answer, as an app sends it."""
        if not call_id:
            return
        up = self.rng.random() < THUMBS_UP.get(model, 0.65)
        score = {"call_id": call_id, "name": "thumbs", "value": 1 if up else 0,
                 "label": "up" if up else "down", "source": "user", "author": user}  # fmt: skip
        with contextlib.suppress(httpx.HTTPError):  # feedback lost is not a failed call
            await self.feedback.post(f"{self.server_url}/api/scores", json=score)

    # -- SDK traffic: a RAG service traced with gensight.span ---------------
    async def _rag_request(self) -> None:
        import gensight

        rng = self.rng
        question = rng.choice(QUESTIONS)
        with gensight.span("POST /ask", **{"http.route": "/ask", "rag.question": question}):
            with gensight.span("retrieve", **{"db.system": "qdrant", "db.operation": "search"}):
                await self.direct.embeddings.create(model="text-embedding-3-small", input=question)
                await asyncio.sleep(rng.uniform(0.02, 0.12))  # the vector search
            docs = rng.sample(DOCS, 3)
            context = " ".join(f"[{d}]" for d in docs)
            first = await self.direct.chat.completions.create(
                model="gpt-4o-mini",
                messages=[
                    {"role": "system", "content": "Answer from the context; call tools if needed."},
                    {"role": "user", "content": f"Context: {context}\nQuestion: {question}"},
                ],
                tools=[_ORDER_TOOL],
                tool_choice="auto",
                extra_headers={"x-fake-completion-tokens": str(rng.randint(20, 80))},
            )
            with gensight.span("execute_tool lookup_order", **{"gen_ai.tool.name": "lookup_order"}):
                await asyncio.sleep(rng.uniform(0.01, 0.08))
            reply = first.choices[0].message.content or "(tool call)"
            stream = await self.direct.chat.completions.create(
                model=rng.choice(["gpt-4o-mini", "gpt-4.1-mini"]),
                messages=[
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": reply},
                    {"role": "user", "content": "Now answer for the customer."},
                ],
                stream=True,
                stream_options={"include_usage": True},
                extra_headers={"x-fake-completion-tokens": str(rng.randint(60, 260))},
            )
            async for _chunk in stream:
                pass


_WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
_ORDER_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Status of an order",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}


def _failure_name(e: Exception) -> str:
    status = getattr(e, "status_code", None)
    if isinstance(e, httpx.HTTPStatusError):
        status = e.response.status_code
    return f"{type(e).__name__}" + (f" ({status})" if status else "")


def _progress(
    tally: Tally, started: float, duration: float | None, url: str, stats: dict[str, Any]
) -> Any:
    from rich.panel import Panel
    from rich.table import Table

    elapsed = time.monotonic() - started
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    left = f" / {duration:.0f}s" if duration else " (Ctrl-C to stop)"
    t.add_row("running", f"{elapsed:.0f}s{left}")
    t.add_row("requests sent", f"{tally.sent}  (gateway {tally.by_path['gateway']},"
              f" SDK traces {tally.by_path['sdk']})")  # fmt: skip
    totals = stats.get("totals") or {}
    t.add_row("calls recorded", str(totals.get("calls", 0)))
    t.add_row("errors", f"{totals.get('errors', 0)}  {dict(tally.failures.most_common(4))}")
    t.add_row("cost so far", f"${totals.get('cost_usd', 0.0):.4f}")
    p95 = (totals.get("latency_ms") or {}).get("p95")
    t.add_row("latency p95", f"{p95:.0f} ms" if p95 else "-")
    t.add_row("dashboard", f"[link={url}]{url}[/link]")
    return Panel(t, title="gensight demo", border_style="cyan")


def run(
    *,
    duration: float | None,
    rate: float,
    port: int,
    host: str = "127.0.0.1",
    data_dir: Path | None = None,
    quiet: bool = False,
    seed: int | None = None,
) -> int:
    """Run the demo; returns the exit status (0 on Ctrl-C or when the duration is over).

    ``seed`` makes the traffic and the upstream's random failures repeatable (default: the
    clock); the first gateway calls always show each failure of ``FAILURE_TOUR``."""
    seed = int(time.time()) if seed is None else seed
    from rich.console import Console

    from gensight.web.app import create_app as create_server

    console = Console(stderr=False, quiet=quiet)
    # Ctrl-C or SIGTERM at any moment (even while starting) ends the demo cleanly.
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    data = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="gensight-demo-"))
    # the upstream's in-flight requests are cut at exit: that is no error worth printing
    upstream = ServerThread(create_app(demo_upstream_config(seed)), log_level="critical").start()
    claude = ServerThread(anthropic_app(), log_level="critical").start()
    gemini = ServerThread(gemini_app(), log_level="critical").start()
    # The simulated upstreams stand for OpenAI, DeepSeek, Anthropic and Google: price
    # their calls publicly (loopback addresses are otherwise self-hosted), in the server
    # and in the SDK.
    os.environ.setdefault(PRICED_HOSTS_ENV, "127.0.0.1")
    settings = Settings(
        host=host,
        port=port,
        data_dir=data,
        upstreams={
            "openai": upstream.url + "/v1",
            "deepseek": upstream.url + "/v1",
            "anthropic": "anthropic:" + claude.url,
            "gemini": "gemini:" + gemini.url,
        },
        retries=1,
        upstream_timeout=10.0,
    )
    asgi = create_server(settings)
    # at exit, requests still open get half a second, then are cut; the writer still drains
    server = ServerThread(asgi, host, port, timeout_graceful_shutdown=0.5).start()
    url = f"http://{host}:{server.port}"
    if quiet:  # scripts still need to know where the dashboard is
        print(f"Gensight dashboard: {url}   data: {data}", flush=True)
    else:
        console.print(f"[bold cyan]Gensight[/] dashboard: [link={url}]{url}[/link]   data: {data}")

    import gensight

    gensight.init(endpoint=url, app="rag-service", environment="demo", capture_content=True)
    traffic = Traffic(url, upstream.url + "/v1", rate, seed=seed, native=True)
    started = time.monotonic()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, lambda: _interrupt(stopping, traffic))
        if duration:
            loop.call_later(duration, traffic.stop.set)
        if stopping.is_set():
            _interrupt(stopping, traffic)
        gen = asyncio.create_task(traffic.run())
        stats: dict[str, Any] = {}
        async with httpx.AsyncClient(base_url=url, timeout=5) as api:
            if quiet:
                await gen
                return
            from rich.live import Live

            with Live(console=console, refresh_per_second=4, transient=False) as live:
                while not gen.done():
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        r = await api.get("/api/stats/overview", params={"since": "1h"})
                        stats = r.json()
                    live.update(_progress(traffic.tally, started, duration, url, stats))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(gen), 1.0)
                live.update(_progress(traffic.tally, started, duration, url, stats))

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        if stopping.is_set():  # cut requests end in cancellations: nothing to report
            for name in ("uvicorn.error", "asyncio"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        gensight.shutdown()
        server.stop(timeout=20)  # the writer drains its queue before the server exits
        upstream.stop(timeout=0.4)  # the simulated providers: no need to wait
        claude.stop(timeout=0.4)
        gemini.stop(timeout=0.4)
    q = asgi.state.pipeline.stats()
    calls = _calls_stored(settings)
    t = traffic.tally
    # the summary is printed even with --quiet: scripts read it
    print(
        f"demo finished: {t.sent} requests sent (gateway {t.by_path['gateway']}, SDK traces"
        f" {t.by_path['sdk']}{f', {t.cut} cut off at exit' if t.cut else ''});"
        f" {calls} LLM calls recorded.",
        flush=True,
    )
    print(
        f"The server stored {q['written']} of {q['accepted']} records it accepted"
        f" ({q['dropped']} dropped): calls, spans and content events.",
        flush=True,
    )
    print(f"Keep exploring with: gensight serve --data-dir {data}", flush=True)
    return 0


def _interrupt(stopping: threading.Event, traffic: Traffic) -> None:
    """Ctrl-C: stop sending, give the calls in flight a moment, then cut them."""
    stopping.set()
    traffic.grace = 0.5
    traffic.stop.set()


def _calls_stored(settings: Settings) -> int | str:
    """How many calls the demo's store holds (read after the server let it go)."""
    from gensight.query import answers
    from gensight.store import open_store
    from gensight.store.base import CallFilters

    try:
        store = open_store(settings.store_url(), settings.retention)
    except Exception:  # the summary never fails the demo
        return "?"
    try:
        return answers.totals(store, CallFilters())["calls"]
    finally:
        store.close()
