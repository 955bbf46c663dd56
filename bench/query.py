"""Query benchmark: dashboard, call log and trace latency on 1M-10M synthetic calls.

Generates calls spread over the last 30 days (diurnal and weekly pattern; 20 models, 50
apps, ~400 users, ~3% errors across every error class, streams with TTFT, realistic
tokens and costs, message content on gateway calls) as traces of 2-6 spans (a root HTTP
span, sometimes a retrieval span, 1-3 LLM calls), writes them through the store's own
``write(calls, spans, events)`` in batches (the ingest rate: record building and store
writes are timed apart), closes the store, then starts a real ``gensight serve --store
URL`` on the data in a subprocess and times the API over HTTP on loopback: warm-up, then
N repetitions per query, p50 and p95. Also: the server's peak RSS (``VmHWM``) and bytes
on disk per call.

Run by hand (see bench/README.md)::

    .venv/bin/python bench/query.py --store duckdb --calls 1000000
    .venv/bin/python bench/query.py --store chdb --calls 1000000
    # again on the same data (queries only)
    .venv/bin/python bench/query.py --store duckdb --calls 1000000 --reuse
    # where the time goes, and candidate fixes on a scratch copy of the data
    .venv/bin/python bench/query.py --store duckdb --calls 1000000 --reuse --explain
    .venv/bin/python bench/query.py --store duckdb --calls 1000000 --reuse --variant art

Every store-touching step (generation, EXPLAIN, variants) runs in a child process, so
this process never holds the store (chDB: one engine per process).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    VENV_BIN,
    Server,
    TreeMemory,
    dir_size,
    free_port,
    load_average,
    print_table,
    status_kb,
)

DAY_US = 86_400_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# -- the synthetic world ----------------------------------------------------------

# request model, response model, provider, server.address, $/1M in, $/1M out,
# median TTFT ms, ms per output token, weight, kind (chat|reasoning|embed)
MODELS: list[tuple[str, str, str, str, float | None, float | None, float, float, int, str]] = [
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai", "api.openai.com",
     0.15, 0.6, 350, 8, 30, "chat"),
    ("gpt-4o", "gpt-4o-2024-08-06", "openai", "api.openai.com", 2.5, 10, 450, 14, 14, "chat"),
    ("gpt-4.1", "gpt-4.1-2025-04-14", "openai", "api.openai.com", 2.0, 8.0, 500, 15, 6, "chat"),
    ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "openai", "api.openai.com",
     0.4, 1.6, 380, 9, 8, "chat"),
    ("gpt-4.1-nano", "gpt-4.1-nano-2025-04-14", "openai", "api.openai.com",
     0.1, 0.4, 300, 6, 4, "chat"),
    ("o3-mini", "o3-mini-2025-01-31", "openai", "api.openai.com",
     1.1, 4.4, 1500, 10, 3, "reasoning"),
    ("o4-mini", "o4-mini-2025-04-16", "openai", "api.openai.com",
     1.1, 4.4, 1800, 10, 2, "reasoning"),
    ("text-embedding-3-small", "text-embedding-3-small", "openai", "api.openai.com",
     0.02, None, 0, 0, 6, "embed"),
    ("text-embedding-3-large", "text-embedding-3-large", "openai", "api.openai.com",
     0.13, None, 0, 0, 1, "embed"),
    ("gpt-35-turbo", "gpt-35-turbo-0125", "azure.ai.openai", "acme-eu.openai.azure.com",
     0.5, 1.5, 400, 10, 4, "chat"),
    ("deepseek-chat", "deepseek-chat", "deepseek", "api.deepseek.com",
     0.27, 1.1, 600, 18, 5, "chat"),
    ("deepseek-reasoner", "deepseek-reasoner", "deepseek", "api.deepseek.com",
     0.55, 2.19, 2500, 20, 2, "reasoning"),
    ("kimi-k2-0711-preview", "kimi-k2-0711-preview", "moonshot_ai", "api.moonshot.ai",
     0.6, 2.5, 700, 20, 2, "chat"),
    ("moonshot-v1-8k", "moonshot-v1-8k", "moonshot_ai", "api.moonshot.ai",
     0.2, 2.0, 600, 18, 1, "chat"),
    ("mistral-large-latest", "mistral-large-2411", "mistral_ai", "api.mistral.ai",
     2.0, 6.0, 500, 15, 2, "chat"),
    ("mistral-small-latest", "mistral-small-2503", "mistral_ai", "api.mistral.ai",
     0.1, 0.3, 300, 8, 2, "chat"),
    ("grok-3", "grok-3", "x_ai", "api.x.ai", 3.0, 15.0, 600, 15, 1, "chat"),
    ("llama3.1:8b", "llama3.1:8b", "ollama", "localhost:11434",
     None, None, 200, 25, 2, "chat"),
    ("qwen2.5:7b", "qwen2.5:7b", "ollama", "localhost:11434", None, None, 220, 28, 1, "chat"),
    ("Qwen/Qwen2.5-72B-Instruct", "Qwen/Qwen2.5-72B-Instruct", "vllm", "vllm.internal:8000",
     None, None, 300, 30, 2, "chat"),
]  # fmt: skip

_APP_A = ["support", "search", "docs", "sales", "billing", "onboarding", "review", "triage",
          "summarize", "translate"]  # fmt: skip
_APP_B = ["bot", "api", "worker", "assistant", "agent"]
APPS = [f"{a}-{b}" for a in _APP_A for b in _APP_B]  # 50
N_USERS = 400
ENVIRONMENTS = ["production", "staging", "development"]
PRODUCERS = ["openai-v2", "openlit", "traceloop", "openinference", "gensight-sdk"]
ROUTES = ["/v1/chat", "/v1/answer", "/v1/search", "/v1/summarize", "/api/agent/step"]
VECTOR_DBS = [("qdrant", "qdrant.internal"), ("pgvector", "pg.internal"),
              ("elasticsearch", "es.internal")]  # fmt: skip

# error class, share of errors, http status (None: no response), duration ms (lo, hi)
ERRORS: list[tuple[str, float, int | None, tuple[float, float]]] = [
    ("rate_limit", 0.40, 429, (40, 400)),
    ("upstream_error", 0.20, 503, (300, 8000)),
    ("timeout", 0.14, None, (30000, 60000)),
    ("invalid_request", 0.10, 400, (30, 300)),
    ("connection", 0.07, None, (5, 3000)),
    ("auth", 0.03, 401, (20, 150)),
    ("cancelled", 0.04, None, (100, 20000)),
    ("unknown", 0.02, None, (50, 5000)),
]
ERROR_RATE = 0.03
ERROR_MESSAGES = {
    "rate_limit": "Rate limit reached for {m} in organization org-acme on tokens per min"
    " (TPM): Limit 30000, Used 29{n}, Requested 1250. Please try again in 2.{n}s.",
    "upstream_error": "The server is overloaded or not ready yet. (request id req_{n})",
    "timeout": "Request timed out after 60.0 seconds",
    "invalid_request": "This model's maximum context length is 128000 tokens. However, your"
    " messages resulted in 13{n} tokens. Please reduce the length of the messages.",
    "connection": "Connection error: [Errno 111] Connection refused",
    "auth": "Incorrect API key provided: sk-****{n}.",
    "cancelled": "client disconnected",
    "unknown": "unexpected response from upstream (request id req_{n})",
}

#: A word put into ~0.2% of user messages: what the ``q=`` benchmark searches for.
NEEDLE = "invoice"
NEEDLE_RATE = 0.002
#: A string no message contains: the whole-scan case of ``q=``.
MISSING = "zqxjv-never"

_WORDS = (  # noqa: SIM905
    "the a of to and in is it you that for on with as can this be are not we your have "
    "from or by at what how please help me need answer question customer order account "
    "product service error issue data report summary document page search result user "
    "model prompt response time cost price plan team project deploy server request file "
    "table query update change review check list step first next then also more about "
    "when where which why would should could will make use find show give tell explain "
    "write create open close send read build test run start stop new old good best fast "
    "simple detail example number value name type code message email support ticket "
    "refund payment shipping delivery return policy contract billing subscription trial "
    "login password reset security access permission role admin settings profile team"
).split()


def _sentences(rng: Any, n: int) -> list[str]:
    """A pool of pseudo-English sentences (realistic entropy for column compression)."""
    vocab = _WORDS + [
        "".join(rng.choice(list("bcdfghklmnprstvz")) + rng.choice(list("aeiou")) for _ in range(k))
        for k in rng.integers(2, 5, 3000)
    ]
    words = rng.integers(0, len(vocab), (n, 16))
    lens = rng.integers(6, 17, n)
    out = []
    for row, ln in zip(words.tolist(), lens.tolist(), strict=True):
        s = " ".join(vocab[i] for i in row[:ln])
        out.append(s[0].upper() + s[1:] + ".")
    return out


def _minute_weights(start_us: int, minutes: int) -> Any:
    """Traffic weight per minute: diurnal (peak ~14:00 UTC, trough ~02:00), quieter weekends."""
    import numpy as np

    t = start_us // 60_000_000 + np.arange(minutes)
    hour = (t % 1440) / 60.0
    weekday = ((t // 1440) + 3) % 7  # 1970-01-01 was a Thursday
    diurnal = 1.0 + 0.75 * np.cos((hour - 14.0) / 24.0 * 2 * np.pi)
    weekly = np.where(weekday >= 5, 0.45, 1.0)
    w = diurnal * weekly
    return w / w.sum()


def _hex_ids(n: int, nbytes: int) -> list[str]:
    raw = os.urandom(n * nbytes).hex()
    k = 2 * nbytes
    return [raw[i : i + k] for i in range(0, n * k, k)]


class World:
    """Vectorized generation of traces, turned into CallRecord/SpanRecord batches."""

    def __init__(self, seed: int, content: str) -> None:
        import numpy as np

        self.np = np
        self.rng = np.random.default_rng(seed)
        self.content = content
        w = np.array([m[8] for m in MODELS], dtype=float)
        self.model_p = w / w.sum()
        a = 1.0 / np.arange(1, len(APPS) + 1) ** 1.1
        self.app_p = a / a.sum()
        u = 1.0 / np.arange(1, N_USERS + 1) ** 0.8
        self.user_p = u / u.sum()
        self.err_p = np.array([e[1] for e in ERRORS]) / sum(e[1] for e in ERRORS)
        self.pool = _sentences(self.rng, 20_000)
        self.system_prompts = [
            f"You are the {app} of Acme Corp. " + " ".join(self.pool[i * 7 : i * 7 + 4])
            for i, app in enumerate(APPS)
        ]
        self.app_db = [VECTOR_DBS[i % len(VECTOR_DBS)] for i in range(len(APPS))]
        self.app_route = [ROUTES[i % len(ROUTES)] for i in range(len(APPS))]

    def traces(self, n_calls: int, end_us: int, days: int = 30) -> tuple[Any, Any]:
        """Sorted trace start times (epoch µs) and LLM calls per trace, ``n_calls`` in all."""
        np = self.np
        k = self.rng.choice([1, 2, 3], size=n_calls, p=[0.6, 0.25, 0.15])
        n_traces = int(np.searchsorted(np.cumsum(k), n_calls)) + 1
        k = k[:n_traces]
        k[-1] -= int(k.sum()) - n_calls
        minutes = days * 1440
        start_us = end_us - days * DAY_US
        mins = self.rng.choice(minutes, size=n_traces, p=_minute_weights(start_us, minutes))
        ts = start_us + mins.astype(np.int64) * 60_000_000
        ts += self.rng.integers(0, 60_000_000, n_traces)
        ts.sort()
        return ts, k

    def batch(self, t0: Any, k: Any) -> tuple[list[Any], list[Any]]:
        """Records for the traces starting at ``t0`` with ``k`` LLM calls each."""
        from gensight.model.records import CallRecord, SpanRecord

        np, rng = self.np, self.rng
        cum = np.cumsum(k)
        nt = used = len(t0)
        n = int(k.sum())
        # per trace
        app = rng.choice(len(APPS), size=nt, p=self.app_p)
        user = rng.choice(N_USERS, size=nt, p=self.user_p)
        has_user = rng.random(nt) < 0.9
        env = rng.choice(3, size=nt, p=[0.85, 0.1, 0.05])
        gateway = rng.random(nt) < 0.5
        producer = rng.integers(0, len(PRODUCERS), nt)
        has_ret = rng.random(nt) < 0.5
        ret_dur = np.where(has_ret, rng.lognormal(np.log(35), 0.6, nt), 0.0)
        # per call
        tix = np.repeat(np.arange(nt), k)
        model = rng.choice(len(MODELS), size=n, p=self.model_p)
        kind = np.array([MODELS[i][9] for i in range(len(MODELS))])[model]
        embed = kind == "embed"
        in_tok = np.clip(rng.lognormal(np.log(900), 1.0, n), 5, 120_000).astype(np.int64)
        in_tok = np.where(embed, np.clip(in_tok // 4, 3, 8000), in_tok)
        out_tok = np.clip(rng.lognormal(np.log(220), 0.9, n), 1, 8000).astype(np.int64)
        reasoning = np.where(kind == "reasoning", (out_tok * rng.uniform(0.5, 3, n)), 0)
        reasoning = reasoning.astype(np.int64)
        out_tok = np.where(embed, 0, out_tok + reasoning)
        cached = np.where(rng.random(n) < 0.3, (in_tok * rng.uniform(0.2, 0.9, n)), 0)
        cached = cached.astype(np.int64)
        stream = ~embed & (rng.random(n) < 0.6)
        ttft_med = np.array([m[6] for m in MODELS])[model]
        ms_tok = np.array([m[7] for m in MODELS])[model]
        ttft = ttft_med * rng.lognormal(0, 0.45, n)
        dur = np.where(
            embed,
            rng.lognormal(np.log(120), 0.5, n),
            ttft + out_tok * ms_tok * rng.lognormal(0, 0.25, n) + in_tok * 0.01,
        )
        err = rng.random(n) < ERROR_RATE
        ecls = rng.choice(len(ERRORS), size=n, p=self.err_p)
        lo = np.array([e[3][0] for e in ERRORS])[ecls]
        hi = np.array([e[3][1] for e in ERRORS])[ecls]
        dur = np.where(err, rng.uniform(lo, hi), dur)
        out_tok = np.where(err, 0, out_tok)
        reasoning = np.where(err, 0, reasoning)
        pin = np.array([m[4] if m[4] is not None else np.nan for m in MODELS])[model]
        pout = np.array([m[5] if m[5] is not None else 0.0 for m in MODELS])[model]
        cost = ((in_tok - cached) * pin + cached * pin * 0.5 + out_tok * pout) / 1e6
        finish = rng.choice(3, size=n, p=[0.92, 0.05, 0.03])
        temp = rng.choice(5, size=n, p=[0.4, 0.15, 0.15, 0.2, 0.1])
        maxtok = rng.choice(4, size=n, p=[0.5, 0.2, 0.2, 0.1])
        needle = rng.random(n) < NEEDLE_RATE
        text_ix = rng.integers(0, len(self.pool), (n, 5))
        nums = rng.integers(100, 999, n)
        # times: retrieval right after the root starts, LLM calls one after the other
        gap = rng.uniform(1, 20, n)
        step = dur + gap
        csum = np.cumsum(step)
        first = np.repeat(cum[:used] - k, k)  # index of each trace's first call
        before = csum - step - np.where(first > 0, csum[first - 1], 0.0)
        call_start = t0[tix] + ((2 + ret_dur[tix] + before) * 1000).astype(np.int64)
        trace_end = csum[cum[:used] - 1] - np.where(cum[:used] - k > 0, csum[cum[:used] - k - 1], 0)
        root_dur = 2 + ret_dur + trace_end + rng.uniform(2, 15, nt)
        last_err = err[cum[:used] - 1]

        trace_ids = _hex_ids(nt, 16)
        root_ids = _hex_ids(nt, 8)
        ret_ids = _hex_ids(nt, 8)
        call_ids = _hex_ids(n, 8)
        resp_ids = _hex_ids(n, 12)

        L = lambda a: a.tolist()  # noqa: E731
        t0_l, app_l, user_l, hu_l, env_l = L(t0), L(app), L(user), L(has_user), L(env)
        gw_l, prod_l, hr_l, rd_l = L(gateway), L(producer), L(has_ret), L(ret_dur)
        rootd_l, lerr_l = L(root_dur), L(last_err)
        ts_l = L(call_start)
        spans: list[SpanRecord] = []
        for i in range(nt):
            a = app_l[i]
            start = EPOCH + timedelta(microseconds=t0_l[i])
            failed = lerr_l[i]
            spans.append(
                SpanRecord(
                    trace_id=trace_ids[i],
                    span_id=root_ids[i],
                    name=f"POST {self.app_route[a]}",
                    ts=start,
                    duration_ms=rootd_l[i],
                    kind="server",
                    status="error" if failed else "ok",
                    app=APPS[a],
                    attributes={
                        "http.request.method": "POST",
                        "http.route": self.app_route[a],
                        "http.response.status_code": 502 if failed else 200,
                    },
                )
            )
            if hr_l[i]:
                db, host = self.app_db[a]
                spans.append(
                    SpanRecord(
                        trace_id=trace_ids[i],
                        span_id=ret_ids[i],
                        parent_span_id=root_ids[i],
                        name="vector_search",
                        ts=start + timedelta(milliseconds=1),
                        duration_ms=rd_l[i],
                        kind="client",
                        app=APPS[a],
                        attributes={"db.system": db, "server.address": host},
                    )
                )
        calls: list[CallRecord] = []
        cols = zip(
            L(tix), L(model), ts_l, L(dur), L(ttft), L(stream), L(in_tok), L(out_tok),
            L(cached), L(reasoning), L(cost), L(err), L(ecls), L(finish), L(temp), L(maxtok),
            L(needle), L(text_ix), L(nums), strict=True,
        )  # fmt: skip
        finishes = (["stop"], ["length"], ["tool_calls"])
        temps = (None, 0.0, 0.2, 0.7, 1.0)
        maxtoks = (None, 256, 1024, 4096)
        pool, content = self.pool, self.content
        for j, row in enumerate(cols):
            (ti, mi, ts, d, tt, st, it, ot, cr, rs, c, e, ec, fi, te, mt, nd, tx, nm) = row
            m = MODELS[mi]
            a = app_l[ti]
            gw = gw_l[ti]
            is_embed = m[9] == "embed"
            msgs_in = msgs_out = None
            if content == "all" or (content == "gateway" and gw):
                text = " ".join(pool[x] for x in tx[:3])
                if nd:
                    text += f" Where is my {NEEDLE} #{nm}?"
                if is_embed:
                    msgs_in = [{"role": "user", "content": text}]
                else:
                    msgs_in = [
                        {"role": "system", "content": self.system_prompts[a]},
                        {"role": "user", "content": text},
                    ]
                    if not e:
                        msgs_out = [
                            {
                                "role": "assistant",
                                "content": " ".join(pool[x] for x in tx[2:]),
                                "finish_reason": finishes[fi][0],
                            }
                        ]
            ecl = ERRORS[ec] if e else None
            priced = m[4] is not None
            cid = call_ids[j]
            calls.append(
                CallRecord(
                    id=cid,
                    trace_id=trace_ids[ti],
                    span_id=cid,
                    parent_span_id=root_ids[ti],
                    ts=EPOCH + timedelta(microseconds=ts),
                    duration_ms=d,
                    ttft_ms=tt if (st and not e) else None,
                    source="gateway" if gw else "otlp",
                    producer=None if gw else PRODUCERS[prod_l[ti]],
                    app=APPS[a],
                    environment=ENVIRONMENTS[env_l[ti]],
                    provider=m[2],
                    operation="embeddings" if is_embed else "chat",
                    request_model=m[0],
                    response_model=None if e else m[1],
                    response_id=None if e else f"chatcmpl-{resp_ids[j]}",
                    stream=st,
                    input_tokens=it,
                    output_tokens=None if is_embed else ot,
                    cache_read_tokens=cr or None,
                    reasoning_tokens=rs or None,
                    tokens_estimated=bool(e),
                    cost_usd=(0.0 if e else c) if priced else None,
                    cost_source="computed" if priced else "unknown",
                    status="error" if e else "ok",
                    error_class=ecl[0] if ecl else None,
                    http_status=(ecl[2] if ecl else 200),
                    error_message=ERROR_MESSAGES[ecl[0]].format(m=m[0], n=nm) if ecl else None,
                    finish_reasons=[] if (e or is_embed) else finishes[fi],
                    temperature=temps[te],
                    max_tokens=maxtoks[mt],
                    user=f"user-{user_l[ti]:04d}" if hu_l[ti] else None,
                    session=f"s-{trace_ids[ti][:6]}" if hu_l[ti] else None,
                    server_address=m[3],
                    input_messages=msgs_in,
                    output_messages=msgs_out,
                    attributes={
                        "server.port": 443,
                        "gen_ai.openai.response.service_tier": "default",
                    }
                    if m[2] == "openai"
                    else {},
                )
            )
            spans.append(
                SpanRecord(
                    trace_id=trace_ids[ti],
                    span_id=cid,
                    parent_span_id=root_ids[ti],
                    name=f"{'embeddings' if is_embed else 'chat'} {m[0]}",
                    ts=EPOCH + timedelta(microseconds=ts),
                    duration_ms=d,
                    kind="client",
                    status="error" if e else "ok",
                    status_message=ERROR_MESSAGES[ecl[0]][:40] if ecl else None,
                    app=APPS[a],
                    call_id=cid,
                )
            )
        return calls, spans


# -- child-process steps (each opens the store itself) ------------------------------


def store_url(store: str, path: Path) -> str:
    return f"duckdb://{path}" if store == "duckdb" else f"chdb://{path}"


def store_path(data: Path, store: str) -> Path:
    return data / ("gensight.duckdb" if store == "duckdb" else "chdb")


def generate(
    store: str, path: str, n_calls: int, batch: int, seed: int, content: str
) -> dict[str, Any]:
    """Build and write ``n_calls`` calls; returns timings and what the queries need."""
    import numpy as np

    from gensight.store import open_store

    world = World(seed, content)
    end_us = int(time.time() * 1_000_000)
    starts, per_trace = world.traces(n_calls, end_us)
    st = open_store(store_url(store, Path(path)))
    gen_s = write_s = 0.0
    calls_n = spans_n = traces_n = 0
    sample: list[str] = []
    rnd = random.Random(seed)
    pos = 0
    t_all = time.perf_counter()
    last_print = t_all
    while calls_n < n_calls and pos < len(starts):
        t = time.perf_counter()
        used = max(1, int(batch / 1.55))
        calls, spans = world.batch(starts[pos : pos + used], per_trace[pos : pos + used])
        pos += used
        t1 = time.perf_counter()
        st.write(calls, spans, [])
        t2 = time.perf_counter()
        gen_s += t1 - t
        write_s += t2 - t1
        # reservoir sample of trace ids (the trace queries pick from these)
        for c in calls[:: max(1, len(calls) // 4)]:
            traces_n += 1
            if len(sample) < 500:
                sample.append(c.trace_id)
            elif rnd.random() < 500 / traces_n:
                sample[rnd.randrange(500)] = c.trace_id
        calls_n += len(calls)
        spans_n += len(spans)
        if t2 - last_print > 10:
            last_print = t2
            print(
                f"  {calls_n:,} calls  gen {calls_n / gen_s:,.0f}/s"
                f"  write {calls_n / write_s:,.0f} calls/s",
                flush=True,
            )
    t = time.perf_counter()
    extra: dict[str, Any] = {}
    if store == "chdb":
        client = st.client  # type: ignore[attr-defined]
        extra["parts_before_optimize"] = _ch_parts(client)
        for table in ("calls", "spans"):
            client.command(f"OPTIMIZE TABLE {table} FINAL")
        extra["optimize_s"] = time.perf_counter() - t
        extra["parts_after_optimize"] = _ch_parts(client)
        extra["table_bytes"] = _ch_table_bytes(client)
        t = time.perf_counter()
    st.close()
    close_s = time.perf_counter() - t
    apps_by_calls = [APPS[i] for i in np.argsort(-world.app_p)]
    return {
        "store": store,
        "calls": calls_n,
        "spans": spans_n,
        "end": datetime.fromtimestamp(end_us / 1e6, UTC).isoformat(),
        "gen_s": gen_s,
        "write_s": write_s,
        "close_s": close_s,
        "total_s": time.perf_counter() - t_all,
        "batch": batch,
        "content": content,
        "trace_ids": sample,
        "app_mid": apps_by_calls[9],
        "model_top": MODELS[int(np.argmax(world.model_p))][0],
        **extra,
    }


def _ch_parts(client: Any) -> dict[str, int]:
    rows = client.query(
        "SELECT table, count() FROM system.parts WHERE active AND database = currentDatabase()"
        " GROUP BY table"
    ).result_rows
    return {r[0]: int(r[1]) for r in rows}


def _ch_table_bytes(client: Any) -> dict[str, int]:
    rows = client.query(
        "SELECT table, sum(bytes_on_disk) FROM system.parts WHERE active"
        " AND database = currentDatabase() GROUP BY table"
    ).result_rows
    return {r[0]: int(r[1]) for r in rows}


def _in_child(fn: Callable[..., Any], *args: Any) -> Any:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as ex:
        return ex.submit(fn, *args).result()


# -- bigger data sets by replication (minutes instead of an hour of generation) ----------

_NEW_TRACE = "substr(md5(trace_id || CAST(k AS VARCHAR)), 1, 32)"
_NEW_SPAN = "substr(md5({c} || CAST(k AS VARCHAR)), 1, 16)"
#: Each copy's trace moves by its own jitter (within ±10 min), all its spans together.
_JITTER = "to_microseconds(CAST(hash(trace_id, k) % 1200000000 AS BIGINT) - 600000000)"


def replicate_duckdb(src: str, dst: str, copies: int, index: bool = True) -> dict[str, Any]:
    """``copies`` copies of a generated DuckDB data set, with new trace/span/call ids and
    jittered times, inserted in time order (as live ingest would)."""
    import duckdb

    from gensight.store import open_store

    open_store(f"duckdb://{dst}").close()  # the schema, by the store's own migrations
    con = duckdb.connect(dst)
    con.execute("SET memory_limit = '6GB'")
    con.execute(f"ATTACH '{src}' AS src (READ_ONLY)")
    t = time.perf_counter()
    sp = _NEW_SPAN
    con.execute(
        f"INSERT INTO calls SELECT c.* REPLACE ({sp.format(c='id')} AS id,"
        f" {_NEW_TRACE} AS trace_id, {sp.format(c='span_id')} AS span_id,"
        f" {sp.format(c='parent_span_id')} AS parent_span_id, ts + {_JITTER} AS ts)"
        f" FROM src.calls c, range({copies}) r(k) ORDER BY ts"
    )
    con.execute(
        f"INSERT INTO spans SELECT s.* REPLACE ({_NEW_TRACE} AS trace_id,"
        f" {sp.format(c='span_id')} AS span_id, {sp.format(c='parent_span_id')} AS parent_span_id,"
        f" {sp.format(c='call_id')} AS call_id, ts + {_JITTER} AS ts)"
        f" FROM src.spans s, range({copies}) r(k) ORDER BY ts"
    )
    con.execute("DETACH src")
    con.execute("CHECKPOINT")
    con.close()
    out: dict[str, Any] = {"replicate_s": time.perf_counter() - t}
    # the rows went in beside the writer: build what it keeps as batches land, timed
    out.update(build_derived(dst, index))
    return out


def build_derived(path: str, index: bool = True) -> dict[str, Any]:
    """Rebuild a DuckDB data set's rollups and search index (``gensight rebuild``'s
    work), timed; with the rows and bytes they take."""
    from gensight.store import rollups
    from gensight.store.duckdb import DuckDBStore

    st = DuckDBStore(path, search_index=False)
    t = time.perf_counter()
    st.rebuild_rollups()
    out: dict[str, Any] = {"rollups_build_s": time.perf_counter() - t}
    out["rollup_rows"] = {
        name: st._con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        for name in rollups.TABLES
    }
    st.close()
    if not index:
        return out
    st = DuckDBStore(path)
    t = time.perf_counter()
    st.rebuild_search()
    out["search_build_s"] = time.perf_counter() - t
    st.close()
    out["search_bytes"] = dir_size(Path(path + ".search"))
    return out


def load_chdb_from_duckdb(src: str, dst: str) -> dict[str, Any]:
    """The same rows as a DuckDB data set, into chDB (via Parquet, in time order)."""
    import duckdb

    from gensight.store import open_store

    tmp = Path(dst).parent / "parquet"
    tmp.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(src, read_only=True)
    for table in ("calls", "spans"):
        con.execute(f"COPY (SELECT * FROM {table}) TO '{tmp}/{table}.parquet' (FORMAT parquet)")
    con.close()
    st = open_store(f"chdb://{dst}")
    client = st.client  # type: ignore[attr-defined]
    t = time.perf_counter()
    for table in ("calls", "spans"):
        client.command(f"INSERT INTO {table} SELECT * FROM file('{tmp}/{table}.parquet', Parquet)")
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    for table in ("calls", "spans"):
        client.command(f"OPTIMIZE TABLE {table} FINAL")
    out = {
        "load_s": load_s,
        "optimize_s": time.perf_counter() - t,
        "parts_after_optimize": _ch_parts(client),
        "table_bytes": _ch_table_bytes(client),
    }
    st.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


# -- variants: candidate fixes, applied to a scratch copy -----------------------------

#: name -> (store, statements). Applied with the store's own client to a copy of the data.
VARIANTS: dict[str, tuple[str, list[str]]] = {
    # ART indexes for the point lookups (trace, call by id)
    "art": (
        "duckdb",
        [
            "CREATE INDEX IF NOT EXISTS calls_trace ON calls (trace_id)",
            "CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id)",
            "CREATE INDEX IF NOT EXISTS calls_id ON calls (id)",
        ],
    ),
    # spans found by trace id through a bloom filter; calls' ORDER BY ts first
    "ch-spans-bloom": (
        "chdb",
        [
            "ALTER TABLE spans ADD INDEX IF NOT EXISTS idx_trace trace_id"
            " TYPE bloom_filter GRANULARITY 1",
            "ALTER TABLE spans MATERIALIZE INDEX idx_trace",
        ],
    ),
}


def apply_variant(store: str, path: str, name: str) -> dict[str, Any]:
    from gensight.store import open_store

    vstore, statements = VARIANTS[name]
    assert vstore == store, f"variant {name} is for {vstore}"
    st = open_store(store_url(store, Path(path)))
    if store == "duckdb":  # building an index needs more than the server's 256 MB
        st._con.execute("SET memory_limit = '4GB'")  # type: ignore[attr-defined]
    timings = []
    for s in statements:
        t = time.perf_counter()
        if store == "duckdb":
            st._con.execute(s)  # type: ignore[attr-defined]
        else:
            st.client.command(s, settings={"mutations_sync": 2})  # type: ignore[attr-defined]
        timings.append((s, time.perf_counter() - t))
    st.close()
    return {"variant": name, "statements": timings}


# -- EXPLAIN ANALYZE of the SQL behind each endpoint ------------------------------------


def explain(store: str, path: str, meta: dict[str, Any], out: str) -> None:
    """Run each endpoint's SQL in-process: time it and save EXPLAIN ANALYZE output."""
    from gensight.store import CallFilters, open_store, sql

    st = open_store(store_url(store, Path(path)))
    d = st.dialect  # type: ignore[attr-defined]
    end = datetime.fromisoformat(meta["end"])
    f24 = CallFilters(since=end - timedelta(hours=24), until=end)
    f30 = CallFilters(since=end - timedelta(days=30), until=end)
    trace = meta["trace_ids"][0]
    queries = {
        "overview_totals_24h": sql.overview_totals(d, f24),
        "overview_series_24h": sql.overview_series(d, f24, 1800, None),
        "overview_totals_30d": sql.overview_totals(d, f30),
        "overview_series_30d_model": sql.overview_series(d, f30, 43200, "model"),
        "overview_groups_30d_model": sql.overview_groups(d, f30, "model"),
        "calls_page": sql.list_calls(d, CallFilters(), 50, None),
        "calls_app": sql.list_calls(d, CallFilters(app=meta["app_mid"]), 50, None),
        "calls_model_error": sql.list_calls(
            d, CallFilters(model=meta["model_top"], status="error"), 50, None
        ),
        "calls_q": sql.list_calls(d, CallFilters(q=NEEDLE), 50, None),
        "trace_spans": sql.trace_spans(d, trace),
        "trace_calls": sql.list_calls(d, CallFilters(trace_id=trace), 10_000, None),
        "correlation_counts_24h": sql.correlation_counts(d, f24, "slow", 5000.0),
        "dependencies_spans_24h": sql.dependencies_spans(d, f24),
    }
    with open(out, "w") as fh:
        for name, q in queries.items():
            t = time.perf_counter()
            st._rows(q)  # type: ignore[attr-defined]
            ms = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            st._rows(q)  # type: ignore[attr-defined]
            ms2 = (time.perf_counter() - t) * 1000
            print(f"  {name:28s} {ms:9.1f} ms cold  {ms2:9.1f} ms warm", flush=True)
            fh.write(f"==== {name}  ({ms:.1f} ms, then {ms2:.1f} ms)\n{q.sql}\n{q.params}\n")
            if store == "duckdb":
                res = st._con.execute("EXPLAIN ANALYZE " + q.sql, q.params).fetchall()  # type: ignore[attr-defined]
                fh.write(res[0][1] + "\n")
            else:
                for kind in ("indexes = 1", "actions = 1"):
                    rows = st.client.query(  # type: ignore[attr-defined]
                        f"EXPLAIN {kind} " + q.sql, parameters=q.params
                    ).result_rows
                    fh.write("\n".join(r[0] for r in rows) + "\n")
            fh.write("\n")
    st.close()


# -- timing over HTTP ------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


TARGETS = {"overview": 300.0, "calls": 50.0, "trace": 20.0}


def query_plan(meta: dict[str, Any], reps: int, slow_reps: int) -> list[dict[str, Any]]:
    end = datetime.fromisoformat(meta["end"])
    r24 = {"since": (end - timedelta(hours=24)).isoformat(), "until": end.isoformat()}
    r30 = {"since": (end - timedelta(days=30)).isoformat(), "until": end.isoformat()}
    ov = "/api/stats/overview"
    plan = [
        ("overview 24h", ov, r24, "overview", reps),
        ("overview 24h by model", ov, {**r24, "group_by": "model"}, "overview", reps),
        ("overview 30d", ov, r30, "overview", reps),
        ("overview 30d by model", ov, {**r30, "group_by": "model"}, "overview", reps),
        ("calls first page", "/api/calls", {}, "calls", reps),
        ("calls app=", "/api/calls", {"app": meta["app_mid"]}, "calls", reps),
        (
            "calls model= status=error",
            "/api/calls",
            {"model": meta["model_top"], "status": "error"},
            "calls",
            reps,
        ),
        (f"calls q={NEEDLE}", "/api/calls", {"q": NEEDLE}, "calls", slow_reps),
        ("calls q=(no match)", "/api/calls", {"q": MISSING}, "calls", slow_reps),
        # the index filters, orders and counts itself: these ask it with other filters
        (
            f"calls q={NEEDLE} app=",
            "/api/calls",
            {"q": NEEDLE, "app": meta["app_mid"]},
            "calls",
            slow_reps,
        ),
        (f"calls q={NEEDLE} 30d", "/api/calls", {"q": NEEDLE, **r30}, "calls", slow_reps),
        (
            f"calls q={NEEDLE} model= status=error",
            "/api/calls",
            {"q": NEEDLE, "model": meta["model_top"], "status": "error"},
            "calls",
            slow_reps,
        ),
        (
            "calls q=(no match) 24h app=",
            "/api/calls",
            {"q": MISSING, "app": meta["app_mid"], **r24},
            "calls",
            slow_reps,
        ),
        ("calls q=refund pol (phrase)", "/api/calls", {"q": "refund pol"}, "calls", slow_reps),
        ("calls q=the (most calls)", "/api/calls", {"q": "the"}, "calls", slow_reps),
        ("trace", "/api/traces/{id}", {}, "trace", reps),
        (
            "correlations 24h",
            "/api/analysis/correlations",
            {**r24, "target": "slow"},
            None,
            reps,
        ),
        ("dependencies 24h", "/api/analysis/dependencies", r24, None, reps),
    ]
    if meta.get("search_index") is False:  # replicated with --no-index: an empty index
        plan = [item for item in plan if "q" not in item[2]]
    return [
        {"query": n, "path": p, "params": q, "target_kind": t, "reps": r} for n, p, q, t, r in plan
    ]


def time_queries(
    base: str,
    meta: dict[str, Any],
    reps: int,
    slow_reps: int,
    warmup: int,
    only: str | None,
    pid: int | None = None,
) -> list[dict[str, Any]]:
    rnd = random.Random(1)
    rows = []
    client = httpx.Client(base_url=base, timeout=600)
    try:
        for item in query_plan(meta, reps, slow_reps):
            if only and only not in item["query"]:
                continue
            load = load_average()
            times: list[float] = []
            size = 0
            n_items = None
            failed = ""
            skip = warmup if item["reps"] == reps else min(warmup, 1)
            for i in range(skip + item["reps"]):
                path = item["path"]
                if "{id}" in path:
                    path = path.replace("{id}", rnd.choice(meta["trace_ids"]))
                t = time.perf_counter()
                try:
                    r = client.get(path, params=item["params"])
                except httpx.HTTPError as e:
                    failed = f"{type(e).__name__} after {(time.perf_counter() - t) * 1000:.0f} ms"
                    print(f"  {item['query']}: {failed}: {e}", flush=True)
                    break
                ms = (time.perf_counter() - t) * 1000
                if r.status_code != 200:
                    failed = f"HTTP {r.status_code} after {ms:.0f} ms"
                    print(f"  {item['query']}: {failed}: {r.text[:200]}", flush=True)
                    break
                if i >= skip:
                    times.append(ms)
                size = len(r.content)
                body = r.json()
                n_items = len(body.get("items", body.get("spans", [])))
            target = TARGETS.get(item["target_kind"] or "")
            if failed:  # a fresh connection for the next query (the server may have reset it)
                client.close()
                client = httpx.Client(base_url=base, timeout=600)
                rows.append({"query": item["query"], "ok": failed, "target_ms": target})
                rows[-1].update(load=load, hwm_mb=(status_kb(pid, "VmHWM") or 0) / 1024)
                continue
            p50 = statistics.median(times)
            rows.append(
                {
                    "query": item["query"],
                    "p50_ms": p50,
                    "p95_ms": pct(times, 0.95),
                    "n": len(times),
                    "target_ms": target,
                    "ok": ("yes" if p50 <= target else "NO") if target else "",
                    "items": n_items,
                    "kb": size / 1024,
                    "load": load,
                    "hwm_mb": (status_kb(pid, "VmHWM") or 0) / 1024 if pid else None,
                }
            )
            r0 = rows[-1]
            print(
                f"  {r0['query']:28s} p50 {r0['p50_ms']:9.1f}  p95 {r0['p95_ms']:9.1f} ms"
                f"  (n={r0['n']}, load {load:.2f}, server VmHWM {r0['hwm_mb'] or 0:.0f} MB)",
                flush=True,
            )
    finally:
        client.close()
    return rows


def serve_and_time(
    store: str, path: Path, meta: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="gensight-qbench-"))
    url = store_url(store, path)
    cmd = [str(VENV_BIN / "gensight"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--data-dir", str(tmp), "--store", url, "--log-level", "warning"]
    server = Server("gensight", cmd, log_path=tmp / "server.log")
    mem = TreeMemory(server.pid).start()
    try:
        ready_s = server.wait_ready(f"http://127.0.0.1:{port}/api/health", 300)
        mem.sample()
        rss_start = mem.peak_mb
        # the server process alone (the tree's figure adds children that ran and ended:
        # genai-prices' data compiled on a fresh data dir)
        own_start = (status_kb(server.pid, "VmHWM") or 0) / 1024
        rows = time_queries(
            f"http://127.0.0.1:{port}",
            meta,
            args.reps,
            args.slow_reps,
            args.warmup,
            args.only,
            server.pid,
        )
        own_peak = (status_kb(server.pid, "VmHWM") or 0) / 1024
        # what the process holds at the end: its own memory apart from file pages (the
        # libraries' code and the search index's mapped segments, which the kernel can
        # drop and read again)
        anon_end = (status_kb(server.pid, "RssAnon") or 0) / 1024
        file_end = (status_kb(server.pid, "RssFile") or 0) / 1024
        mem.stop()
    finally:
        code = server.stop()
        shutil.copy2(tmp / "server.log", path.parent / "server.log")
        shutil.rmtree(tmp, ignore_errors=True)
    if code not in (0, -15, None):
        print(f"server exited with {code}; log in {path.parent / 'server.log'}")
    return {
        "ready_s": ready_s,
        "rss_start_mb": rss_start,
        "rss_peak_mb": mem.peak_mb,
        "server_hwm_start_mb": own_start,
        "server_hwm_peak_mb": own_peak,
        "server_rss_anon_end_mb": anon_end,
        "server_rss_file_end_mb": file_end,
        "queries": rows,
    }


def _index_cost(seed: int, content: str, batches: int, batch: int) -> dict[str, Any]:
    import _search

    return _search.batch_cost(World(seed, content), batches, batch)


def _rebuild_index(path: str) -> dict[str, Any]:
    import _search

    return _search.rebuild(path)


def index_report(args: argparse.Namespace, path: Path, meta: dict[str, Any], result: dict) -> None:
    """The search index's build cost (as measured when the data set was made, or now with
    ``--rebuild-index``), size, and the writer's per-batch maintenance cost."""
    if args.rebuild_index:
        print(f"rebuilding the search index (load {load_average():.2f})", flush=True)
        meta.update(_in_child(_rebuild_index, str(path)))
        meta["search_build_load"] = load_average()
    built = {k: meta[k] for k in ("search_build_s", "search_docs", "docs/s", "search_bytes",
                                  "search_build_load") if k in meta}  # fmt: skip
    built["search MB on disk"] = dir_size(Path(str(path) + ".search")) / 2**20
    result["search_index"] = built
    print(f"search index: {built}")
    if args.index_cost:
        load = load_average()
        cost = _in_child(_index_cost, args.seed, args.content, args.index_cost, args.batch)
        cost["load"] = load
        result["search_index"]["batch_cost"] = cost
        print(f"search index per batch (writer): {cost}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=["duckdb", "chdb"], default="duckdb")
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "gensight-qbench")
    ap.add_argument("--reuse", action="store_true", help="query data generated before")
    ap.add_argument("--batch", type=int, default=5000, help="calls per store.write()")
    ap.add_argument("--content", choices=["gateway", "all", "none"], default="gateway")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--slow-reps", type=int, default=3, help="repetitions of the q= searches")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--only", help="time only queries whose name contains this")
    ap.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE instead of HTTP")
    ap.add_argument("--variant", choices=sorted(VARIANTS), help="on a scratch copy of the data")
    ap.add_argument("--no-serve", action="store_true", help="generate only")
    ap.add_argument(
        "--replicate-from",
        type=int,
        metavar="N",
        help="build the data set from the generated duckdb-N one (copies with new ids and"
        " jittered times; chdb: the same rows as duckdb-CALLS) instead of generating it",
    )
    ap.add_argument(
        "--no-index",
        action="store_true",
        help="replicated data: build the rollups but not the search index (q= then scans)",
    )
    ap.add_argument(
        "--rebuild-index",
        action="store_true",
        help="DuckDB: rebuild the search index before serving (gensight rebuild search), timed",
    )
    ap.add_argument(
        "--index-cost",
        type=int,
        default=20,
        metavar="BATCHES",
        help="time the writer's index maintenance on this many batches (0: skip)",
    )
    ap.add_argument("--json", help="write results to this file")
    args = ap.parse_args()

    data = args.data / f"{args.store}-{args.calls}"
    path = store_path(data, args.store)
    meta_path = data / "meta.json"
    result: dict[str, Any] = {"store": args.store, "calls": args.calls}
    if args.replicate_from and not (args.reuse and meta_path.exists()):
        src_store = "duckdb"
        src = args.data / f"{src_store}-{args.replicate_from}"
        src_meta = json.loads((src / "meta.json").read_text())
        copies = args.calls // args.replicate_from
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(parents=True)
        print(f"replicating {src} x{copies} into {path} (load {load_average():.2f})")
        if args.store == "duckdb":
            extra = _in_child(
                replicate_duckdb,
                str(store_path(src, "duckdb")),
                str(path),
                copies,
                not args.no_index,
            )
        else:
            dsrc = args.data / f"duckdb-{args.calls}"
            extra = _in_child(load_chdb_from_duckdb, str(store_path(dsrc, "duckdb")), str(path))
        print(f"  {extra}")
        rnd = random.Random(args.seed)
        meta = {
            **{k: v for k, v in src_meta.items() if k not in ("gen_s", "write_s", "close_s")},
            **extra,
            "store": args.store,
            "calls": src_meta["calls"] * copies,
            "spans": src_meta["spans"] * copies,
            "replicated_from": f"{src_store}-{args.replicate_from} x{copies}",
            "search_index": not args.no_index,
            "trace_ids": [
                hashlib.md5(f"{t}{rnd.randrange(copies)}".encode()).hexdigest()
                for t in src_meta["trace_ids"]
            ],
            "disk_bytes": dir_size(path),
        }
        meta_path.write_text(json.dumps(meta, indent=1))
    if args.reuse and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        print(f"reusing {data} ({meta['calls']:,} calls, generated up to {meta['end']})")
    elif not args.replicate_from:
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(parents=True)
        print(f"generating {args.calls:,} calls into {path} (load {load_average():.2f})")
        load = load_average()
        meta = _in_child(
            generate, args.store, str(path), args.calls, args.batch, args.seed, args.content
        )
        meta["load"] = load
        meta["disk_bytes"] = dir_size(path)
        meta_path.write_text(json.dumps(meta, indent=1))
    result["meta"] = {k: v for k, v in meta.items() if k != "trace_ids"}
    # chDB: active parts only (merged-away parts linger on disk for minutes)
    stored = sum(meta.get("table_bytes", {}).values()) or meta["disk_bytes"]
    ingest: dict[str, Any] = {
        "spans/call": meta["spans"] / meta["calls"],
        "bytes/call": stored / meta["calls"],
        "disk MB": meta["disk_bytes"] / 2**20,
        "load": meta.get("load"),
    }
    if "write_s" in meta:
        ingest["gen calls/s"] = meta["calls"] / meta["gen_s"]
        ingest["write calls/s"] = meta["calls"] / meta["write_s"]
        ingest["write+close calls/s"] = meta["calls"] / (meta["write_s"] + meta["close_s"])
        opt = (
            f", OPTIMIZE FINAL {meta['optimize_s']:.1f}s not counted"
            if "optimize_s" in meta
            else ""
        )
        print(
            f"ingest ({meta['calls']:,} calls, {meta['spans']:,} spans,"
            f" batches of {meta['batch']}):"
            f" records built at {ingest['gen calls/s']:,.0f} calls/s;"
            f" store.write {ingest['write calls/s']:,.0f} calls/s"
            f" ({ingest['write+close calls/s']:,.0f} with the final close/checkpoint{opt});"
            f" load {ingest['load'] or 0:.2f}"
        )
    else:
        print(f"{meta['replicated_from']}: no ingest numbers of its own")
    print(
        f"on disk: {ingest['bytes/call']:,.0f} bytes/call (calls + spans),"
        f" {ingest['disk MB']:,.0f} MB under {path}"
    )
    result["ingest"] = ingest
    if args.store == "duckdb":
        index_report(args, path, meta, result)
    if args.no_serve:
        return 0
    target = path
    if args.variant:
        vdata = args.data / f"{args.store}-{args.calls}-{args.variant}"
        if vdata.exists():
            shutil.rmtree(vdata)
        vdata.mkdir(parents=True)
        target = store_path(vdata, args.store)
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            shutil.copy2(path, target)
        print(f"variant {args.variant} on a copy in {vdata}")
        v = _in_child(apply_variant, args.store, str(target), args.variant)
        for s, secs in v["statements"]:
            print(f"  {secs:7.1f}s  {s}")
        result["variant"] = v
        result["variant_disk_bytes"] = dir_size(target)
    if args.explain:
        out = str(target) + ".explain.txt"
        print(f"EXPLAIN ANALYZE -> {out}")
        _in_child(explain, args.store, str(target), meta, out)
        return 0
    served = serve_and_time(args.store, target, meta, args)
    result.update(served)
    print()
    print(
        f"{args.store}, {meta['calls']:,} calls"
        + (f", variant {args.variant}" if args.variant else "")
        + f": server ready in {served['ready_s']:.1f}s, RSS {served['rss_start_mb']:.0f} MB"
        f" at start, peak {served['rss_peak_mb']:.0f} MB (target 300; the process tree);"
        f" the server process alone {served['server_hwm_start_mb']:.0f} MB at start,"
        f" peak {served['server_hwm_peak_mb']:.0f} MB (at the end"
        f" {served['server_rss_anon_end_mb']:.0f} MB anonymous,"
        f" {served['server_rss_file_end_mb']:.0f} MB file pages)"
    )
    print_table(
        served["queries"],
        [
            ("query", "query", 0),
            ("p50_ms", "p50 ms", 1),
            ("p95_ms", "p95 ms", 1),
            ("target_ms", "target", 0),
            ("ok", "ok", 0),
            ("n", "n", 0),
            ("items", "items", 0),
            ("kb", "KB", 1),
            ("load", "load", 2),
            ("hwm_mb", "VmHWM MB", 0),
        ],
    )
    if args.json:
        text = json.dumps(result, indent=1, default=str)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
