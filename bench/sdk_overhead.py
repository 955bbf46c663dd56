"""CPU added per OpenAI call by the Gensight SDK, opentelemetry-instrumentation-openai-v2
and OpenLIT, each exporting over OTLP/HTTP as its users would run it.

    .venv/bin/python bench/sdk_overhead.py                       # everything, ~5 min
    .venv/bin/python bench/sdk_overhead.py --variants gensight --modes plain
    .venv/bin/python bench/sdk_overhead.py --rounds 60 --calls 50 --json out.json
    .venv/bin/python bench/sdk_overhead.py --startup             # import time and size only

Set-up: one fake OpenAI upstream (``gensight.demo.upstream``) and one OTLP sink (a
threaded HTTP server answering 200 to every POST) run in their own processes, so their
CPU is not counted. Each (variant, mode) runs in a worker process of its own, with its
own venv (openai-v2 and openlit from ``tests/producers/envs.py``; Gensight from the dev
venv), the real ``openai`` client (``max_retries=0``) and the instrumentation's normal
OTLP/HTTP export (batch span processor, periodic metric reader, default settings; OpenLIT
with a local pricing file, since it would otherwise fetch one from the internet).

Paired measurement: the worker snapshots ``Completions.create`` before and after the
instrumentation is set up and swaps the two in and out, so the same process, client and
connection alternate blocks of ``--calls`` plain and instrumented calls (ABBA order) for
``--rounds`` rounds; a block's cost is ``time.process_time()`` (every thread of the
process). Added CPU per call = (instrumented − plain) / calls for each round; the table
shows the median over rounds and the interquartile range. This machine's speed drifts
by ±25–50 %; short paired blocks and the median cancel most of it.

Export is counted, not left to chance: the batch span and log processors are told
(``OTEL_BSP_*``/``OTEL_BLRP_*``) never to export on their own, and the worker flushes
them after every ``FLUSH_EVERY`` instrumented calls (a batch the size of the default
``max_export_batch_size``), timing the flush; its CPU per call (the "export" column,
encoding and HTTP) is added to every round's difference. Metrics keep their normal 60 s
period (one or two exports per run).
Modes: ``plain`` (non-streamed chat completion) and ``stream`` (streamed, every chunk read).
Content capture is each tool's default (off for Gensight and openai-v2, on for OpenLIT).

``--startup``: median wall time of ``import gensight; gensight.init()`` in a fresh
process (with ``openai`` already imported, and without), the modules it loads, and the
installed size of the SDK's dependency closure versus that of ``pyproject.toml``'s
dependencies, from the dev venv's installed files (extras followed).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROMPT = "Summarize the benefits of observability for LLM applications in one sentence."
VARIANTS = ("gensight", "openai-v2", "openlit")
#: Spans (and log records) are exported in batches of about this many calls.
FLUSH_EVERY = 500
#: The batch processors export only when the worker flushes them (see the docstring).
BATCH_ENV = {
    "OTEL_BSP_SCHEDULE_DELAY": "3600000",
    "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100000",
    "OTEL_BLRP_SCHEDULE_DELAY": "3600000",
    "OTEL_BLRP_MAX_QUEUE_SIZE": "100000",
    "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "100000",
}
MODES = ("plain", "stream")

# -- worker (runs inside the variant's venv: stdlib + openai + the instrumentation) -----


def _flush_providers() -> None:
    from opentelemetry import _logs, trace

    for provider in (trace.get_tracer_provider(), _logs.get_logger_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()


def _setup_gensight(sink: str) -> None:
    import gensight

    gensight.init(endpoint=sink, app="bench")


def _setup_openai_v2(sink: str) -> None:
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": "bench"})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{sink}/v1/traces")))
    trace.set_tracer_provider(tp)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{sink}/v1/metrics"))
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    lp = LoggerProvider(resource=resource)
    lp.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{sink}/v1/logs"))
    )
    _logs.set_logger_provider(lp)
    try:  # the Events API some versions still emit through
        from opentelemetry._events import set_event_logger_provider
        from opentelemetry.sdk._events import EventLoggerProvider

        set_event_logger_provider(EventLoggerProvider(lp))
    except ImportError:
        pass
    OpenAIInstrumentor().instrument()


def _setup_openlit(sink: str) -> None:
    import openlit

    pricing = {
        "chat": {
            m: {"promptPrice": 0.00015, "completionPrice": 0.0006}
            for m in ("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
        }
    }
    fd, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(pricing, fh)
    openlit.init(
        otlp_endpoint=sink,
        application_name="bench",
        pricing_json=path,
        collect_gpu_stats=False,
        collect_system_metrics=False,
    )


def _wait_for_prices(timeout: float = 60.0) -> None:
    """Gensight loads its price data in the background: measure with it loaded."""
    from gensight.sdk import setup

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inst = setup._state.instrumentor
        if inst is not None and inst.telemetry.pricer is not None:
            return
        time.sleep(0.1)


def worker(variant: str, mode: str, upstream: str, sink: str, rounds: int, calls: int) -> dict:
    import openai

    client = openai.OpenAI(base_url=upstream, api_key="bench", max_retries=0)
    cls = type(client.chat.completions)
    plain_create = cls.__dict__["create"]
    {"gensight": _setup_gensight, "openai-v2": _setup_openai_v2, "openlit": _setup_openlit}[
        variant
    ](sink)
    traced_create = cls.__dict__["create"]
    if os.environ.get("BENCH_AA"):  # A/A check: both arms plain, the difference is the noise
        traced_create = plain_create
    elif traced_create is plain_create:
        raise SystemExit(f"{variant} did not wrap {cls.__qualname__}.create")
    messages = [{"role": "user", "content": PROMPT}]
    stream = mode == "stream"

    def one() -> None:
        if stream:
            for _ in client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, stream=True
            ):
                pass
        else:
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)

    def block(traced: bool) -> tuple[float, float, float]:
        cls.create = traced_create if traced else plain_create
        c0, t0, w0 = time.process_time(), time.thread_time(), time.perf_counter()
        for _ in range(calls):
            one()
        return (
            time.process_time() - c0,
            time.thread_time() - t0,
            time.perf_counter() - w0,
        )

    def flush() -> float:
        c0 = time.process_time()
        _flush_providers()
        return time.process_time() - c0

    for traced in (True, False) * 3:  # warm up both paths (connections, caches)
        block(traced)
    if variant == "gensight":
        one()
        _wait_for_prices()
        block(True)
    flush()

    added, added_thread, added_wall, plain = [], [], [], []
    flush_cpu, flushed_calls, pending = 0.0, 0, 0
    gc.collect()
    for r in range(rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        got = {traced: block(traced) for traced in order}
        (pc, pt, pw), (ic, it, iw) = got[False], got[True]
        added.append((ic - pc) / calls * 1e6)
        added_thread.append((it - pt) / calls * 1e6)
        added_wall.append((iw - pw) / calls * 1e6)
        plain.append(pc / calls * 1e6)
        pending += calls
        if pending >= FLUSH_EVERY or r == rounds - 1:
            flush_cpu += flush()
            flushed_calls += pending
            pending = 0
    cls.create = traced_create
    export_us = flush_cpu / max(flushed_calls, 1) * 1e6
    return {
        "variant": variant,
        "mode": mode,
        "rounds": rounds,
        "calls": calls,
        "added_cpu_us": [v + export_us for v in added],
        "added_thread_cpu_us": added_thread,
        "added_wall_us": added_wall,
        "export_cpu_us": export_us,
        "plain_cpu_us": plain,
    }


# -- orchestration ---------------------------------------------------------------------

_SINK = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(f"http://127.0.0.1:{server.server_port}", flush=True)
server.serve_forever()
"""

_UPSTREAM = r"""
import time
from gensight.demo.upstream import create_app, serve
with serve(create_app()) as url:
    print(url, flush=True)
    while True:
        time.sleep(3600)
"""


def _start(code: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url:
        proc.kill()
        raise RuntimeError("a helper server did not start")
    return proc, url


def _python_for(variant: str) -> str:
    if variant == "gensight":
        return sys.executable
    sys.path.insert(0, str(REPO / "tests" / "producers"))
    from envs import ensure_env

    return str(ensure_env(variant))


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], statistics.median(values), q[2]


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def run(variants: list[str], modes: list[str], rounds: int, calls: int) -> list[dict]:
    """Every (variant, mode) in its own worker process; results in the order run."""
    sink_proc, sink = _start(_SINK)
    up_proc, upstream = _start(_UPSTREAM)
    results = []
    try:
        for mode in modes:
            for variant in variants:
                python = _python_for(variant)
                env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
                env.update(BATCH_ENV)
                env["PYTHONPATH"] = str(REPO / "src") if variant == "gensight" else ""
                load = _load()
                cmd = [python, __file__, "--worker", variant, "--mode", mode]
                cmd += ["--upstream", upstream, "--sink", sink]
                cmd += ["--rounds", str(rounds), "--calls", str(calls)]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
                if proc.returncode != 0:
                    print(f"{variant}/{mode} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                    continue
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                result["load"] = load
                results.append(result)
                _print_row(result)
    finally:
        for p in (sink_proc, up_proc):
            p.terminate()
            p.wait(10)
    return results


_HEADER = (
    f"{'variant':<10} {'mode':<7} {'plain CPU':>10} {'added CPU µs/call':>24} {'export':>7} "
    f"{'app thread':>11} {'wall':>8} {'load':>5}"
)


def _print_row(r: dict) -> None:
    if not getattr(_print_row, "printed", False):
        print(_HEADER)
        _print_row.printed = True  # type: ignore[attr-defined]
    q1, med, q3 = _quartiles(r["added_cpu_us"])
    print(
        f"{r['variant']:<10} {r['mode']:<7} {statistics.median(r['plain_cpu_us']):>10.0f} "
        f"{med:>8.0f}  (IQR {q1:>5.0f}–{q3:<5.0f}) {r['export_cpu_us']:>7.0f} "
        f"{statistics.median(r['added_thread_cpu_us']):>11.0f} "
        f"{statistics.median(r['added_wall_us']):>8.0f} {r['load']:>5.1f}",
        flush=True,
    )


# -- start-up cost and installed size ---------------------------------------------------

_IMPORT = r"""
import sys, time
if sys.argv[1] == "1":
    import openai
t = time.perf_counter()
import gensight
gensight.init(endpoint="http://127.0.0.1:9")
dt = time.perf_counter() - t
heavy = sorted({m.split(".")[0] for m in sys.modules}
               & {"duckdb", "fastapi", "uvicorn", "pyarrow", "starlette", "genai_prices"})
print(dt, ",".join(heavy))
import os; os._exit(0)
"""

#: what the SDK needs at run time (plus openai, which the app brings)
SDK_DISTS = ("opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http", "genai-prices")


def _closure(names: list[str]) -> dict[str, int]:
    """Installed size (bytes, from RECORD) of distributions and everything they require,
    extras included (``uvicorn[standard]`` brings uvloop, httptools, watchfiles…)."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    sizes: dict[str, int] = {}
    todo = [Requirement(n) for n in names]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        if name not in sizes:
            total = 0
            for f in dist.files or ():
                with contextlib.suppress(OSError):
                    total += dist.locate_file(f).stat().st_size
            sizes[name] = total
        for raw in dist.requires or ():
            sub = Requirement(raw)
            if sub.marker is None or any(
                sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})
            ):
                todo.append(sub)
    return sizes


def startup(runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    for preload in ("1", "0"):
        times, heavy = [], ""
        for _ in range(runs):
            proc = subprocess.run(
                [sys.executable, "-c", _IMPORT, preload],
                capture_output=True, text=True, env=env, cwd=REPO,
            )  # fmt: skip
            dt, heavy = proc.stdout.split(" ", 1)
            times.append(float(dt))
        key = "init_ms_openai_preloaded" if preload == "1" else "init_ms_with_openai_import"
        out[key] = statistics.median(times) * 1000
        out["server_modules_loaded"] = heavy.strip()
    import tomllib

    full = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    sdk = _closure(list(SDK_DISTS))
    whole = _closure(full)
    openai_closure = _closure(["openai"])
    out["sdk_closure_mb"] = sum(sdk.values()) / 1e6
    out["sdk_closure_beyond_openai_mb"] = (
        sum(v for k, v in sdk.items() if k not in openai_closure) / 1e6
    )
    out["gensight_closure_mb"] = sum(whole.values()) / 1e6
    out["server_only_mb"] = sum(v for k, v in whole.items() if k not in sdk) / 1e6
    out["server_only_biggest"] = sorted(
        ((k, round(v / 1e6, 1)) for k, v in whole.items() if k not in sdk),
        key=lambda kv: -kv[1],
    )[:8]
    out["load"] = _load()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--rounds", type=int, default=150)
    p.add_argument("--calls", type=int, default=20, help="calls per block")
    p.add_argument("--startup", action="store_true", help="import time and size only")
    p.add_argument("--startup-runs", type=int, default=7)
    p.add_argument("--json", help="write the results to this file")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--upstream", help=argparse.SUPPRESS)
    p.add_argument("--sink", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        result = worker(args.worker, args.mode, args.upstream, args.sink, args.rounds, args.calls)
        print(json.dumps(result))
        os._exit(0)  # the numbers are out; skip the instrumentations' exit-time exports

    report: dict[str, Any] = {"startup": startup(args.startup_runs)}
    for key, value in report["startup"].items():
        print(f"{key}: {value if not isinstance(value, float) else round(value, 1)}")
    if not args.startup:
        print()
        report["overhead"] = run(
            args.variants.split(","), args.modes.split(","), args.rounds, args.calls
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
