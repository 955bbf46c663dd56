"""OTLP/HTTP ingest benchmark: Gensight vs Arize Phoenix, same payloads, same run.

Builds realistic LLM spans once (what opentelemetry-instrumentation-openai-v2 emits, plus
a non-LLM parent span per few calls), encodes them into OTLP protobuf
``ExportTraceServiceRequest`` batches of 512 spans with fresh trace/span ids per batch,
then for each target and each sender count starts a fresh server and measures:

* accepted spans/s: spans sent / (last 200 answer - first send);
* queryable spans/s: spans sent / (moment all of them are countable through the target's
  API - first send): Gensight ``/api/health`` ``store.calls``/``store.spans`` (the tables
  ``/api/calls`` reads), Phoenix ``GET /v1/projects/default/spans`` (paged);
* peak RSS of the server's process tree (``VmHWM``).
* server CPU: seconds of CPU the server's process tree used from the first send until
  everything was queryable, and cores used (that / seconds until queryable; 2.0 = both).

Each batch's spans get fresh trace/span ids and fresh ``gen_ai.response.id`` values: a
response id repeated across batches is the same call reported again, which the writer
merges into one record (so the calls table would never reach the LLM span count).

Run by hand (see bench/README.md)::

    .venv/bin/python bench/ingest.py --spans 200000 --senders 1,4,8
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from _common import (  # noqa: E402
    BENCH_ENVS,
    VENV_BIN,
    PySpy,
    Server,
    TreeMemory,
    free_port,
    print_table,
)

PROTOBUF = "application/x-protobuf"

# -- realistic spans ----------------------------------------------------------------

# (request model, response model, provider, server.address, operation, weight)
MODELS: list[tuple[str, str, str, str, str, int]] = [
    ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", "openai", "api.openai.com", "chat", 20),
    ("gpt-4o", "gpt-4o-2024-08-06", "openai", "api.openai.com", "chat", 10),
    ("gpt-4.1", "gpt-4.1-2025-04-14", "openai", "api.openai.com", "chat", 6),
    ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "openai", "api.openai.com", "chat", 8),
    ("gpt-4.1-nano", "gpt-4.1-nano-2025-04-14", "openai", "api.openai.com", "chat", 4),
    ("gpt-5", "gpt-5-2025-08-07", "openai", "api.openai.com", "chat", 3),
    ("gpt-5-mini", "gpt-5-mini-2025-08-07", "openai", "api.openai.com", "chat", 5),
    ("o3-mini", "o3-mini-2025-01-31", "openai", "api.openai.com", "chat", 2),
    ("o4-mini", "o4-mini-2025-04-16", "openai", "api.openai.com", "chat", 2),
    ("gpt-3.5-turbo", "gpt-3.5-turbo-0125", "openai", "api.openai.com", "chat", 2),
    (
        "text-embedding-3-small",
        "text-embedding-3-small",
        "openai",
        "api.openai.com",
        "embeddings",
        10,
    ),
    (
        "text-embedding-3-large",
        "text-embedding-3-large",
        "openai",
        "api.openai.com",
        "embeddings",
        2,
    ),
    ("gpt-4o", "gpt-4o-2024-11-20", "azure.ai.openai", "acme-eu.openai.azure.com", "chat", 5),
    ("deepseek-chat", "deepseek-chat", "deepseek", "api.deepseek.com", "chat", 5),
    ("deepseek-reasoner", "deepseek-reasoner", "deepseek", "api.deepseek.com", "chat", 2),
    ("kimi-k2-0905-preview", "kimi-k2-0905-preview", "moonshot_ai", "api.moonshot.ai", "chat", 3),
    ("moonshot-v1-8k", "moonshot-v1-8k", "moonshot_ai", "api.moonshot.ai", "chat", 1),
    ("mistral-large-latest", "mistral-large-2411", "mistral_ai", "api.mistral.ai", "chat", 2),
    ("grok-3-mini", "grok-3-mini", "x_ai", "api.x.ai", "chat", 1),
    ("llama3.1:8b", "llama3.1:8b", "ollama", "localhost", "chat", 3),
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "vllm", "gpu-01.internal", "chat", 2),
]
_WEIGHTS = [m[5] for m in MODELS]

APPS = [
    ("support-bot", "prod"),
    ("rag-search", "prod"),
    ("doc-summarizer", "prod"),
    ("agent-runner", "staging"),
    ("eval-harness", "dev"),
]

# openai-v2 sets error.type to the exception's class name; (type, message, http status)
ERRORS = [
    ("RateLimitError", "Error code: 429 - {'error': {'message': 'Rate limit reached'}}", 429),
    ("InternalServerError", "Error code: 500 - {'error': {'message': 'server error'}}", 500),
    ("APITimeoutError", "Request timed out.", None),
    ("APIConnectionError", "Connection error.", None),
    ("BadRequestError", "Error code: 400 - {'error': {'message': 'max_tokens too large'}}", 400),
]

ROUTES = [
    ("POST /v1/answer", "/v1/answer"),
    ("POST /chat", "/chat"),
    ("POST /summarize", "/summarize"),
    ("POST /agent/run", "/agent/run"),
]

_STACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/.venv/lib/python3.12/site-packages/opentelemetry/trace/__init__.py",'
    " line 589, in use_span\n    yield span\n"
    '  File "/app/.venv/lib/python3.12/site-packages/openai/_base_client.py", line 1047,'
    " in request\n    raise self._make_status_error_from_response(err.response) from None\n"
)


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, list):
        arr = AnyValue()
        arr.array_value.values.extend(AnyValue(string_value=str(v)) for v in value)
        return KeyValue(key=key, value=arr)
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _rand_id(rng: random.Random, prefix: str, n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))


def llm_span_attrs(rng: random.Random, content: bool) -> tuple[str, dict[str, Any], Any, float]:
    """(span name, attributes, error tuple or None, duration s) of one LLM client call."""
    req_model, resp_model, provider, address, op, _ = rng.choices(MODELS, _WEIGHTS)[0]
    attrs: dict[str, Any] = {"gen_ai.operation.name": op}
    # Half the producers are on the deprecated gen_ai.system, half on gen_ai.provider.name.
    attrs["gen_ai.system" if rng.random() < 0.5 else "gen_ai.provider.name"] = provider
    attrs["gen_ai.request.model"] = req_model
    attrs["server.address"] = address
    attrs["server.port"] = 11434 if provider == "ollama" else 443
    error = rng.choice(ERRORS) if rng.random() < 0.04 else None
    streamed = op == "chat" and rng.random() < 0.3
    if op == "chat":
        if rng.random() < 0.7:
            attrs["gen_ai.request.temperature"] = rng.choice([0.0, 0.2, 0.7, 1.0])
        if rng.random() < 0.4:
            attrs["gen_ai.request.max_tokens"] = rng.choice([256, 512, 1024, 4096])
        if rng.random() < 0.2:
            attrs["gen_ai.request.top_p"] = rng.choice([0.9, 0.95, 1.0])
        if rng.random() < 0.1:
            attrs["gen_ai.request.seed"] = rng.randrange(1, 10_000)
        if provider == "openai" and rng.random() < 0.3:
            attrs["gen_ai.openai.request.service_tier"] = "auto"
    else:
        attrs["gen_ai.request.encoding_formats"] = ["float"]
    if content and op == "chat":
        attrs["gen_ai.input.messages"] = json.dumps(
            [
                {
                    "role": "system",
                    "parts": [{"type": "text", "content": "You are a helpful support agent."}],
                },
                {
                    "role": "user",
                    "parts": [{"type": "text", "content": "How do I reset my password? " * 6}],
                },
            ]
        )
    if op == "chat":
        input_tokens = int(rng.lognormvariate(6.5, 1.0)) + 20
        output_tokens = int(rng.lognormvariate(5.0, 0.9)) + 1
        duration = 0.25 + output_tokens * rng.uniform(0.008, 0.03)
    else:
        input_tokens = int(rng.lognormvariate(5.5, 1.0)) + 5
        output_tokens = 0
        duration = rng.uniform(0.05, 0.4)
    if error is not None:
        attrs["error.type"] = error[0]
        return f"{op} {req_model}", attrs, error, min(duration, rng.uniform(0.1, 30.0))
    attrs["gen_ai.response.model"] = resp_model
    prefix = "chatcmpl-" if op == "chat" else "emb-"
    if op == "chat":
        attrs["gen_ai.response.id"] = _rand_id(rng, prefix, 29)
        finish = rng.choices(["stop", "length", "tool_calls"], [88, 4, 8])[0]
        attrs["gen_ai.response.finish_reasons"] = [finish]
        if provider == "openai":
            attrs["gen_ai.openai.response.service_tier"] = "default"
            attrs["gen_ai.openai.response.system_fingerprint"] = _rand_id(rng, "fp_", 10)
    attrs["gen_ai.usage.input_tokens"] = input_tokens
    if op == "chat":
        attrs["gen_ai.usage.output_tokens"] = output_tokens
        if rng.random() < 0.25:
            attrs["gen_ai.usage.cache_read.input_tokens"] = (input_tokens // 128) * 64
        if req_model.startswith(("o3", "o4", "gpt-5", "deepseek-reasoner")):
            attrs["gen_ai.usage.reasoning.output_tokens"] = output_tokens // 2
        if streamed:
            attrs["gen_ai.response.time_to_first_chunk"] = round(rng.uniform(0.15, 1.5), 3)
        if content:
            attrs["gen_ai.output.messages"] = json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": "Open Settings > Security. " * 5}],
                        "finish_reason": finish,
                    }
                ]
            )
    return f"{op} {req_model}", attrs, None, duration


@dataclass
class SpanMeta:
    """Where one span of a template batch sits, to rewrite its ids per batch."""

    trace: int  # trace index within the batch
    span: int  # span index within the batch
    parent: int  # parent's span index, -1 for a root


@dataclass
class Template:
    request: ExportTraceServiceRequest
    meta: list[SpanMeta]
    llm_spans: int


def build_template(rng: random.Random, batch: int, content: bool) -> Template:
    """One batch of ``batch`` spans: traces of a server span and 1-6 LLM calls under it,
    spread over a few services (one ResourceSpans each, two scopes)."""
    req = ExportTraceServiceRequest()
    groups: dict[str, tuple[Any, Any, Any]] = {}
    # Meta of each scope's spans, in the order they are appended (= traversal order).
    scope_meta: dict[str, tuple[list[SpanMeta], list[SpanMeta]]] = {}
    llm = 0
    n = 0
    trace = 0
    while n < batch:
        app, env = rng.choice(APPS)
        if app not in groups:
            rs = req.resource_spans.add()
            for k, v in {
                "service.name": app,
                "service.version": f"1.{rng.randrange(20)}.{rng.randrange(10)}",
                "deployment.environment": env,
                "host.name": f"{app}-{rng.randrange(1, 9)}",
                "process.pid": rng.randrange(1000, 60000),
                "process.runtime.name": "cpython",
                "process.runtime.version": "3.12.7",
                "telemetry.sdk.language": "python",
                "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.version": "1.38.0",
            }.items():
                rs.resource.attributes.append(_kv(k, v))
            web = rs.scope_spans.add()
            web.scope.name = "opentelemetry.instrumentation.fastapi"
            web.scope.version = "0.59b0"
            gen = rs.scope_spans.add()
            gen.scope.name = "opentelemetry.instrumentation.openai_v2"
            gen.scope.version = "2.2b0"
            groups[app] = (rs, web, gen)
            scope_meta[app] = ([], [])
        _, web, gen = groups[app]
        web_meta, gen_meta = scope_meta[app]
        k = min(rng.randint(1, 6), batch - n - 1)  # LLM calls in this trace
        root_index = n
        t = 0  # ns offset inside the batch
        children_ns = 0
        root_meta = SpanMeta(trace, root_index, -1)
        n += 1
        child_spans: list[tuple[Any, SpanMeta]] = []
        for _ in range(k):
            name, attrs, error, duration = llm_span_attrs(rng, content)
            sp = Span(name=name, kind=Span.SPAN_KIND_CLIENT)
            start = t + children_ns + int(rng.uniform(1e6, 30e6))
            end = start + int(duration * 1e9)
            children_ns = end - t
            sp.start_time_unix_nano = start
            sp.end_time_unix_nano = end
            for key, value in attrs.items():
                sp.attributes.append(_kv(key, value))
            if error is not None:
                sp.status.code = Status.STATUS_CODE_ERROR
                sp.status.message = error[1]
                ev = sp.events.add()
                ev.name = "exception"
                ev.time_unix_nano = end
                for key, value in {
                    "exception.type": f"openai.{error[0]}",
                    "exception.message": error[1],
                    "exception.stacktrace": _STACK + f"openai.{error[0]}: {error[1]}\n",
                    "exception.escaped": "False",
                }.items():
                    ev.attributes.append(_kv(key, value))
            child_spans.append((sp, SpanMeta(trace, n, root_index)))
            n += 1
            llm += 1
        # Children end before the parent, so a BatchSpanProcessor exports them first.
        for sp, m in child_spans:
            gen.spans.append(sp)
            gen_meta.append(m)
        name, route = rng.choice(ROUTES)
        root = Span(name=name, kind=Span.SPAN_KIND_SERVER)
        root.start_time_unix_nano = 0
        root.end_time_unix_nano = children_ns + int(rng.uniform(2e6, 40e6))
        failed = rng.random() < 0.02
        for key, value in {
            "http.request.method": "POST",
            "http.route": route,
            "url.path": route,
            "url.scheme": "https",
            "server.address": f"{app}.example.internal",
            "user_agent.original": "python-httpx/0.28.1",
            "client.address": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
            "http.response.status_code": 500 if failed else 200,
        }.items():
            root.attributes.append(_kv(key, value))
        if failed:
            root.status.code = Status.STATUS_CODE_ERROR
        web.spans.append(root)
        web_meta.append(root_meta)
        trace += 1
    # Meta in the request's traversal order (resource → scope → span).
    meta = [m for web_meta, gen_meta in scope_meta.values() for m in web_meta + gen_meta]
    assert len(meta) == batch, (len(meta), batch)
    return Template(req, meta, llm)


@dataclass
class Payloads:
    bodies: list[bytes]
    spans: list[int]  # spans per body
    llm: list[int]  # LLM spans per body
    build_s: float = 0.0

    def head(self, n_spans: int) -> Payloads:
        """The first bodies holding about ``n_spans`` spans (at least one body)."""
        k, total = 0, 0
        while k < len(self.bodies) and (k == 0 or total < n_spans):
            total += self.spans[k]
            k += 1
        return Payloads(self.bodies[:k], self.spans[:k], self.llm[:k])

    @property
    def total_spans(self) -> int:
        return sum(self.spans)

    @property
    def total_llm(self) -> int:
        return sum(self.llm)


def build_payloads(total: int, batch: int, content: bool, seed: int, templates: int) -> Payloads:
    """Encode ``ceil(total / batch)`` distinct batches: templates cycled, ids and times fresh."""
    t0 = time.perf_counter()
    rng = random.Random(seed)
    tmpls = [build_template(rng, batch, content) for _ in range(templates)]
    salt = os.urandom(8)  # new ids every run: nothing collides with an earlier run's data
    salt2 = salt[:2] if any(salt[:2]) else b"\x01\x01"
    tag = salt.hex()[:8]
    n_batches = -(-total // batch)
    # Recent timestamps: the batches cover the last few minutes, one ms apart.
    base = time.time_ns() - 300 * 1_000_000_000
    bodies: list[bytes] = []
    spans: list[int] = []
    llm: list[int] = []
    pack_trace = struct.Struct(">8sII").pack
    pack_span = struct.Struct(">2sIH").pack
    for b in range(n_batches):
        tmpl = tmpls[b % len(tmpls)]
        req = ExportTraceServiceRequest()
        req.CopyFrom(tmpl.request)
        shift = base + b * 1_000_000
        meta = tmpl.meta
        i = 0
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    m = meta[i]
                    i += 1
                    sp.trace_id = pack_trace(salt, b, m.trace)
                    sp.span_id = pack_span(salt2, b, m.span)
                    if m.parent >= 0:
                        sp.parent_span_id = pack_span(salt2, b, m.parent)
                    sp.start_time_unix_nano += shift
                    sp.end_time_unix_nano += shift
                    for kv in sp.attributes:
                        # a provider's response id is per call: a template's repeated
                        # in every batch would be one call reported again (merged)
                        if kv.key == "gen_ai.response.id":
                            kv.value.string_value += f"-{tag}{b:x}"
                    for ev in sp.events:
                        ev.time_unix_nano += shift
        bodies.append(req.SerializeToString())
        spans.append(batch)
        llm.append(tmpl.llm_spans)
    return Payloads(bodies, spans, llm, time.perf_counter() - t0)


# -- sending and counting ---------------------------------------------------------------


@dataclass
class SendResult:
    t0: float = 0.0
    last_ok: float = 0.0
    ok: int = 0
    retries: int = 0
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    first_error: str = ""


def send_all(url: str, payloads: Payloads, senders: int, t0_event: threading.Event) -> SendResult:
    """POST every body once (retrying 429/503 like an OTLP exporter), ``senders`` at a time."""
    res = SendResult()
    lock = threading.Lock()
    next_index = itertools.count()
    n = len(payloads.bodies)
    headers = {"Content-Type": PROTOBUF}

    def worker() -> None:
        with httpx.Client(timeout=120.0, headers=headers) as client:
            t0_event.wait()
            while True:
                i = next(next_index)
                if i >= n:
                    return
                body = payloads.bodies[i]
                backoff = 0.05
                while True:
                    try:
                        r = client.post(url, content=body)
                        status = str(r.status_code)
                    except httpx.HTTPError as e:
                        status = type(e).__name__
                        r = None
                    with lock:
                        res.statuses[status] = res.statuses.get(status, 0) + 1
                    if r is not None and r.status_code == 200:
                        now = time.perf_counter()
                        with lock:
                            res.ok += 1
                            res.last_ok = max(res.last_ok, now)
                        break
                    if status in ("429", "502", "503", "504"):
                        with lock:
                            res.retries += 1
                        time.sleep(backoff)
                        backoff = min(backoff * 2, 1.0)
                        continue
                    with lock:
                        res.failed += 1
                        if not res.first_error:
                            text = r.text[:300] if r is not None else status
                            res.first_error = f"{status}: {text}"
                    break

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(senders)]
    for t in threads:
        t.start()
    time.sleep(0.05)  # let every client be ready at the gate
    res.t0 = time.perf_counter()
    t0_event.set()
    for t in threads:
        t.join()
    return res


class GensightCounter:
    """Calls and spans in the store, as ``/api/health`` reports them (same tables as
    ``/api/calls``)."""

    interval = 0.1

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.client = httpx.Client(timeout=30.0)
        self.max_queue_depth = 0

    def counts(self) -> tuple[int, int]:
        health = self.client.get(f"{self.base}/api/health").json()
        depth = (health.get("queue") or {}).get("depth") or 0
        self.max_queue_depth = max(self.max_queue_depth, int(depth))
        store = health["store"]
        return int(store["calls"]), int(store["spans"])

    def health(self) -> dict[str, Any]:
        return self.client.get(f"{self.base}/api/health").json()

    def newest_call_visible(self) -> bool:
        r = self.client.get(f"{self.base}/api/calls", params={"limit": 1})
        return r.status_code == 200 and bool(r.json().get("items"))

    def close(self) -> None:
        self.client.close()


class PhoenixCounter:
    """Spans in Phoenix's project ``default`` through ``GET /v1/projects/default/spans``,
    paged in insertion order; pages already full are not fetched again."""

    interval = 0.5
    page = 1000

    def __init__(self, base_url: str, project: str = "default") -> None:
        self.url = f"{base_url.rstrip('/')}/v1/projects/{project}/spans"
        self.client = httpx.Client(timeout=60.0)
        self._cursor: str | None = None
        self._before = 0

    def count(self) -> int:
        cursor, total = self._cursor, self._before
        while True:
            params: dict[str, Any] = {"limit": self.page, "sort": "id", "order": "asc"}
            if cursor:
                params["cursor"] = cursor
            r = self.client.get(self.url, params=params)
            if r.status_code == 404:  # project not created until the first span lands
                return 0
            r.raise_for_status()
            body = r.json()
            total += len(body["data"])
            nxt = body.get("next_cursor")
            if not nxt:
                return total
            cursor = nxt
            self._cursor, self._before = nxt, total

    def close(self) -> None:
        self.client.close()


# -- one run ---------------------------------------------------------------------------


@dataclass
class RunResult:
    target: str
    senders: int
    spans: int
    llm_spans: int
    batches: int
    accepted_s: float | None = None
    queryable_s: float | None = None
    accepted_sps: float | None = None
    queryable_sps: float | None = None
    queryable_llm_sps: float | None = None
    visible: int = 0
    complete: bool = False
    peak_rss_mb: float | None = None
    server_cpu_s: float | None = None  # CPU seconds of the server's process tree
    cores_used: float | None = None  # server CPU seconds / seconds until queryable
    retries: int = 0
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    startup_s: float | None = None
    max_queue_depth: int | None = None  # Gensight: records waiting for the writer, at most
    load_before: float | None = None  # 1-minute load average: other work on the machine
    note: str = ""


def _wait_visible(
    count: Any, target: int, t0: float, timeout: float, interval: float
) -> tuple[int, float | None]:
    """Poll ``count()`` until it reaches ``target``; (last count, perf_counter when reached)."""
    deadline = t0 + timeout
    last = 0
    while True:
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            last = count()
        now = time.perf_counter()
        if last >= target:
            return last, now
        if now > deadline:
            return last, None
        time.sleep(interval)


def run_once(
    target: str,
    url: str,
    payloads: Payloads,
    senders: int,
    counter: Any,
    base: tuple[int, int],
    timeout: float,
) -> RunResult:
    """Send, then measure until everything is countable (the counter polls meanwhile)."""
    n_spans, n_llm = payloads.total_spans, payloads.total_llm
    out = RunResult(target, senders, n_spans, n_llm, len(payloads.bodies))
    out.load_before = os.getloadavg()[0]
    gate = threading.Event()
    box: dict[str, Any] = {}

    def sender() -> None:
        box["send"] = send_all(url, payloads, senders, gate)

    st = threading.Thread(target=sender, daemon=True)
    st.start()
    gate.wait()
    t0 = time.perf_counter()
    if isinstance(counter, GensightCounter):

        def count() -> int:
            calls, spans = counter.counts()
            # Progress in spans; complete only once every LLM call is in the calls table too.
            visible = spans - base[1]
            return visible if calls - base[0] >= n_llm else min(visible, n_spans - 1)

    else:

        def count() -> int:
            return counter.count() - base[1]

    visible, t_done = _wait_visible(count, n_spans, t0, timeout, counter.interval)
    st.join()
    send: SendResult = box["send"]
    t0 = send.t0
    out.retries, out.failed, out.statuses = send.retries, send.failed, send.statuses
    if send.first_error:
        out.note = send.first_error
    if send.ok:
        out.accepted_s = send.last_ok - t0
        out.accepted_sps = sum(payloads.spans[: send.ok]) / out.accepted_s
    out.visible = visible
    if t_done is not None:
        out.complete = True
        out.queryable_s = t_done - t0
        out.queryable_sps = n_spans / out.queryable_s
        out.queryable_llm_sps = n_llm / out.queryable_s
    else:  # timed out: the rate so far, marked incomplete
        elapsed = time.perf_counter() - t0
        out.queryable_s = elapsed
        out.queryable_sps = visible / elapsed
        out.queryable_llm_sps = out.queryable_sps * n_llm / n_spans
        out.note = (out.note + "; " if out.note else "") + (
            f"timeout: {visible:,}/{n_spans:,} spans queryable after {elapsed:.0f}s"
        )
    return out


# -- targets -------------------------------------------------------------------------


def run_gensight(args: argparse.Namespace, payloads: Payloads, senders: int) -> RunResult:
    server: Server | None = None
    spy: PySpy | None = None
    mem: TreeMemory | None = None
    data_dir = Path(tempfile.mkdtemp(prefix="gensight-bench-"))
    try:
        startup = None
        if args.url:
            base_url = args.url.rstrip("/")
        else:
            port = free_port()
            base_url = f"http://127.0.0.1:{port}"
            exe = Path(args.gensight) if args.gensight else VENV_BIN / "gensight"
            cmd = [str(exe), "serve", "--port", str(port), "--data-dir", str(data_dir / "data")]
            cmd += ["--log-level", "warning"]
            server = Server("gensight", cmd, log_path=data_dir / "server.log")
            mem = TreeMemory(server.pid).start()
            startup = server.wait_ready(f"{base_url}/api/health", 60)
        if args.pid:
            mem = TreeMemory(args.pid).start()
        counter = GensightCounter(base_url)
        base = counter.counts()
        if mem is not None:
            mem.sample()
        cpu0 = mem.cpu_total_s if mem is not None else 0.0
        if args.py_spy and server is not None:
            Path(args.py_spy).mkdir(parents=True, exist_ok=True)
            ext = {"flamegraph": "svg", "speedscope": "json", "raw": "txt"}[args.py_spy_format]
            out = Path(args.py_spy) / f"gensight-senders{senders}.{ext}"
            spy = PySpy(server.pid, out, args.py_spy_format)
            time.sleep(0.5)
        res = run_once(
            "gensight", f"{base_url}/v1/traces", payloads, senders, counter, base, args.timeout
        )
        res.startup_s = startup
        res.max_queue_depth = counter.max_queue_depth
        if not counter.newest_call_visible():
            res.note = (res.note + "; " if res.note else "") + "/api/calls returned no items"
        health = counter.health()
        dropped = health.get("dropped")
        if dropped:
            res.note = (res.note + "; " if res.note else "") + f"server dropped {dropped}"
        counter.close()
        if spy is not None:
            msg = spy.stop()
            spy = None
            print(f"  py-spy: {msg.splitlines()[-1] if msg else ''} -> {out}", file=sys.stderr)
        if mem is not None:
            mem.stop()
            res.peak_rss_mb = mem.peak_mb
            res.server_cpu_s = mem.cpu_total_s - cpu0
            if res.queryable_s:
                res.cores_used = res.server_cpu_s / res.queryable_s
        return res
    finally:
        if spy is not None:
            spy.stop()
        if mem is not None:
            mem.stop()
        if server is not None:
            server.stop()
        if args.keep_data:
            print(f"  gensight data kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def phoenix_exe(args: argparse.Namespace) -> Path:
    venv = Path(args.phoenix_venv)
    exe = venv / "bin" / "phoenix"
    if exe.exists():
        return exe
    uv = VENV_BIN / "uv"
    print(f"installing arize-phoenix into {venv} (once) …", file=sys.stderr)
    subprocess.run([str(uv), "venv", "--python", "3.11", str(venv)], check=True)
    subprocess.run(
        [str(uv), "pip", "install", "--python", str(venv / "bin" / "python"), "arize-phoenix"],
        check=True,
    )
    return exe


def run_phoenix(args: argparse.Namespace, payloads: Payloads, senders: int) -> RunResult:
    server: Server | None = None
    mem: TreeMemory | None = None
    work = Path(tempfile.mkdtemp(prefix="phoenix-bench-"))
    try:
        startup = None
        if args.phoenix_url:
            base_url = args.phoenix_url.rstrip("/")
        else:
            exe = phoenix_exe(args)
            port, grpc_port = free_port(), free_port()
            base_url = f"http://127.0.0.1:{port}"
            env = {
                "PHOENIX_WORKING_DIR": str(work),
                "PHOENIX_HOST": "127.0.0.1",
                "PHOENIX_PORT": str(port),
                "PHOENIX_GRPC_PORT": str(grpc_port),
                # No phoning home: no telemetry pixels, no public-internet fetches.
                "PHOENIX_TELEMETRY_ENABLED": "false",
                "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
                "PHOENIX_LOG_MIGRATIONS": "false",
                "PHOENIX_LOGGING_LEVEL": "warning",
                "PHOENIX_DB_LOGGING_LEVEL": "warning",
            }
            # python + script, so the pid we hold is the server itself
            py = exe.parent / "python"
            server = Server(
                "phoenix", [str(py), str(exe), "serve"], env=env, log_path=work / "server.log"
            )
            mem = TreeMemory(server.pid).start()
            startup = server.wait_ready(f"{base_url}/healthz", args.phoenix_start_timeout)
        counter = PhoenixCounter(base_url)
        base = (0, counter.count())
        res = run_once(
            "phoenix",
            f"{base_url}/v1/traces",
            payloads,
            senders,
            counter,
            base,
            args.phoenix_timeout,
        )
        res.startup_s = startup
        counter.close()
        if mem is not None:
            mem.stop()
            res.peak_rss_mb = mem.peak_mb
        return res
    finally:
        if mem is not None:
            mem.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


# -- main ----------------------------------------------------------------------------------

COLUMNS = [
    ("target", "target", 0),
    ("senders", "senders", 0),
    ("spans", "spans", 0),
    ("accepted_sps", "accepted spans/s", 0),
    ("queryable_sps", "queryable spans/s", 0),
    ("queryable_llm_sps", "queryable LLM spans/s", 0),
    ("queryable_s", "until queryable s", 2),
    ("peak_rss_mb", "peak RSS MB", 0),
    ("server_cpu_s", "server CPU s", 1),
    ("cores_used", "cores used", 2),
    ("max_queue_depth", "max queue", 0),
    ("retries", "retries", 0),
    ("load_before", "load", 1),
    ("done", "complete", 0),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--spans", type=int, default=50_000, help="spans sent to Gensight per run")
    p.add_argument("--senders", default="1,4,8", help="comma list of concurrent senders")
    p.add_argument("--batch", type=int, default=512, help="spans per OTLP request")
    p.add_argument("--targets", default="gensight,phoenix", help="gensight,phoenix or one")
    p.add_argument("--content", action="store_true", help="include message content attributes")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--templates", type=int, default=16, help="distinct batch shapes to cycle")
    p.add_argument("--timeout", type=float, default=300, help="Gensight queryable timeout, s")
    p.add_argument("--url", help="use this running Gensight instead of starting one")
    p.add_argument("--pid", type=int, help="with --url: the server pid, for peak RSS")
    p.add_argument("--gensight", help="gensight executable (default .venv/bin/gensight)")
    p.add_argument("--keep-data", action="store_true", help="keep Gensight's temp data dirs")
    p.add_argument("--phoenix-spans", type=int, default=5000, help="spans sent to Phoenix per run")
    p.add_argument("--phoenix-timeout", type=float, default=240, help="Phoenix queryable s")
    p.add_argument("--phoenix-start-timeout", type=float, default=180)
    p.add_argument("--phoenix-url", help="use this running Phoenix instead of starting one")
    p.add_argument(
        "--phoenix-venv",
        default=str(BENCH_ENVS / "phoenix"),
        help="venv with arize-phoenix (created with uv when missing)",
    )
    p.add_argument("--py-spy", metavar="DIR", help="record py-spy profiles of Gensight here")
    p.add_argument(
        "--py-spy-format", default="flamegraph", choices=["flamegraph", "speedscope", "raw"]
    )
    p.add_argument("--json", metavar="FILE", help="also write results as JSON ('-': stdout)")
    args = p.parse_args(argv)

    sender_counts = [int(s) for s in args.senders.split(",") if s.strip()]
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    for t in targets:
        if t not in ("gensight", "phoenix"):
            p.error(f"unknown target {t!r}")
    need = max(args.spans if "gensight" in targets else 0, args.phoenix_spans)
    print(f"building {need:,} spans in batches of {args.batch} …", file=sys.stderr)
    payloads = build_payloads(need, args.batch, args.content, args.seed, args.templates)
    mb = sum(map(len, payloads.bodies)) / 2**20
    print(
        f"  {len(payloads.bodies)} bodies, {mb:.1f} MiB, "
        f"{payloads.total_llm / payloads.total_spans:.0%} LLM spans, "
        f"{mb * 2**20 / payloads.total_spans:.0f} B/span, built in {payloads.build_s:.1f}s",
        file=sys.stderr,
    )

    results: list[RunResult] = []
    for n in sender_counts:
        for target in targets:
            sub = payloads.head(args.spans if target == "gensight" else args.phoenix_spans)
            print(
                f"{target}: {sub.total_spans:,} spans, {n} sender(s) …", file=sys.stderr, flush=True
            )
            run = run_gensight if target == "gensight" else run_phoenix
            try:
                r = run(args, sub, n)
            except Exception as e:  # one target failing must not lose the other's numbers
                r = RunResult(target, n, sub.total_spans, sub.total_llm, len(sub.bodies))
                r.note = f"failed: {type(e).__name__}: {e}"
            results.append(r)
            print(
                f"  accepted {r.accepted_sps or 0:,.0f}/s, queryable {r.queryable_sps or 0:,.0f}/s"
                f", peak RSS {r.peak_rss_mb or 0:.0f} MB {r.note}",
                file=sys.stderr,
                flush=True,
            )

    rows = []
    for r in results:
        row = asdict(r)
        row["done"] = "yes" if r.complete else "NO"
        rows.append(row)
    print()
    print_table(rows, COLUMNS)
    ratios = []
    for n in sender_counts:
        g = next((r for r in results if r.target == "gensight" and r.senders == n), None)
        ph = next((r for r in results if r.target == "phoenix" and r.senders == n), None)
        if g and ph and g.queryable_sps and ph.queryable_sps:
            ratios.append(
                {
                    "senders": n,
                    "accepted": (g.accepted_sps or 0) / (ph.accepted_sps or float("nan")),
                    "queryable": g.queryable_sps / ph.queryable_sps,
                    "rss": (g.peak_rss_mb or 0) / (ph.peak_rss_mb or float("nan")),
                }
            )
    if ratios:
        print("\nGensight / Phoenix")
        print_table(
            ratios,
            [
                ("senders", "senders", 0),
                ("accepted", "accepted ×", 1),
                ("queryable", "queryable ×", 1),
                ("rss", "peak RSS ×", 2),
            ],
        )
    notes = [r for r in results if r.note]
    if notes:
        print()
        for r in notes:
            print(f"note {r.target} senders={r.senders}: {r.note}")
    g_runs = [r for r in results if r.target == "gensight" and r.complete]
    if g_runs:
        best = max(r.queryable_sps or 0 for r in g_runs)
        peak = max(r.peak_rss_mb or 0 for r in g_runs)
        print(
            f"\ntargets: queryable >= 20,000 spans/s: best {best:,.0f} "
            f"({'met' if best >= 20_000 else 'NOT met'}); peak RSS <= 300 MB: max {peak:.0f} MB "
            f"({'met' if peak <= 300 else 'NOT met'})"
        )
    if args.json:
        doc = {
            "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
            "config": {k: v for k, v in vars(args).items() if k not in ("json",) and v is not None},
            "payload": {
                "bodies": len(payloads.bodies),
                "bytes": sum(map(len, payloads.bodies)),
                "llm_fraction": payloads.total_llm / payloads.total_spans,
            },
            "results": [asdict(r) for r in results],
            "ratios": ratios,
        }
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0 if all(r.complete for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
