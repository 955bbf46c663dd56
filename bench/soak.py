"""Soak: mixed traffic for minutes through a real ``gensight serve``, with a store outage
and two restarts (SIGTERM, then SIGKILL), then a count of what was acknowledged against
what was stored.

Processes (all on 127.0.0.1): the fake OpenAI upstream (``gensight.demo``), ``gensight
serve --upstream openai=FAKE`` on the embedded DuckDB store, and this load generator
(asyncio + httpx):

* gateway calls through ``/openai/v1/chat/completions``, half streamed, each tagged with
  its own ``X-Gensight-Session`` so it can be found in the store;
* OTLP/HTTP protobuf batches of GenAI spans (each an LLM call with its own span id), retried
  with backoff on connection errors, 429 and 503 as OTLP exporters do;
* a few calls straight to the upstream, the baseline for "added latency".

Timeline (fractions of ``--minutes``): SIGTERM restart at 25 %; the store unavailable from
40 % for ``--outage`` seconds (the test-only hook ``GENSIGHT_FAULT_STORE_DOWN_FILE`` in
``gensight.pipeline.writer``: while the file exists every store write fails); SIGKILL restart at
75 %. The generator keeps going throughout. A client error while the server is being
restarted (signal sent, not yet answering) is counted as "server down"; any other non-2xx
or broken call is a failure caused by Gensight.

At the end: traffic stops, the server drains its queue and journal and is stopped, and the
DuckDB file is read directly: every acknowledged gateway session and OTLP span id must be
there. Reports failures, acknowledged vs stored, peak RSS and its growth, p50/p99 latency
added by the gateway before / during the outage / after.

Usage::

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 200] [--outage 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from _common import Server, free_port

KEY = "sk-soak-not-a-real-key"
UPSTREAM = """
import sys, uvicorn
from gensight.demo import ModelProfile, UpstreamConfig, create_app
profiles = {
    "gpt-4o-mini": ModelProfile(ttft_ms=20),
    "gpt-4o": ModelProfile(ttft_ms=20, ms_per_token=2.0),
}
app = create_app(UpstreamConfig(profiles=profiles, log_limit=100))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


# -- bookkeeping ---------------------------------------------------------------------------


@dataclass
class Window:
    """A time span [start, end) on the monotonic clock."""

    name: str
    start: float
    end: float = float("inf")

    def overlaps(self, a: float, b: float) -> bool:
        return a < self.end and b > self.start


@dataclass
class Stats:
    t0: float = field(default_factory=time.monotonic)
    down: list[Window] = field(default_factory=list)  # server restarting
    outage: Window | None = None
    gw_sent: int = 0
    gw_acked: set[str] = field(default_factory=set)
    gw_fail: list[str] = field(default_factory=list)  # caused by Gensight
    gw_down: int = 0  # failed while the server was being restarted
    otlp_batches: int = 0
    otlp_acked: set[str] = field(default_factory=set)
    otlp_acked_batches: int = 0
    otlp_retries: int = 0
    otlp_retry_reasons: dict[str, int] = field(default_factory=dict)
    otlp_fail: list[str] = field(default_factory=list)
    otlp_unacked: int = 0  # spans still not acknowledged at the end (gave up)
    skipped: int = 0  # calls not started: the generator's in-flight cap was reached
    # (phase, kind) -> latencies in ms; kind: gw / direct for non-streamed, *_ttft streamed
    lat: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    rss: list[tuple[float, float, int]] = field(default_factory=list)  # (t, MB, incarnation)
    samples: list[tuple[float, str, float]] = field(default_factory=list)  # (t, kind, ms)
    lag: list[tuple[float, float]] = field(default_factory=list)  # generator behind schedule
    load: list[float] = field(default_factory=list)  # 1-minute load average, each second
    events: list[tuple[float, str]] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def in_down(self, a: float, b: float) -> bool:
        return any(w.overlaps(a, b) for w in self.down)

    def phase(self, t: float) -> str | None:
        if self.in_down(t, t + 1e-9):
            return None
        if self.outage is not None and self.outage.overlaps(t, t + 1e-9):
            return "outage"
        first_down = self.down[0].start if self.down else float("inf")
        if t < first_down:
            return "before"
        if self.outage is not None and t >= self.outage.end:
            return "after-kill" if len(self.down) > 1 and t >= self.down[1].end else "after"
        return None  # between the first restart and the outage: not reported

    def event(self, what: str) -> None:
        self.events.append((self.now(), what))
        print(f"[{self.now():7.1f}s] {what}", flush=True)


# -- traffic ----------------------------------------------------------------------------


def chat_body(i: int, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "gpt-4o" if stream else "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"Soak question number {i}, answer briefly."}],
        "max_tokens": 24,
    }
    if stream:
        body["stream"] = True
    return body


async def gateway_call(
    st: Stats, client: httpx.AsyncClient, url: str, i: int, stream: bool, direct: bool
) -> None:
    session = f"soak-{i}"
    headers = {"authorization": f"Bearer {KEY}"}
    if not direct:
        headers["x-gensight-session"] = session
        headers["x-gensight-app"] = "soak-gateway"
        st.gw_sent += 1
    a = st.now()
    ttft = None
    ok = False
    why = ""
    try:
        if stream:
            async with client.stream("POST", url, json=chat_body(i, True), headers=headers) as resp:
                if resp.status_code != 200:
                    why = f"HTTP {resp.status_code}: {(await resp.aread())[:200]!r}"
                else:
                    done = False
                    async for line in resp.aiter_lines():
                        if ttft is None and line.startswith("data:"):
                            ttft = (st.now() - a) * 1000
                        if line.strip() == "data: [DONE]":
                            done = True
                    ok = done
                    why = "" if done else "stream ended without [DONE]"
        else:
            resp = await client.post(url, json=chat_body(i, False), headers=headers)
            if resp.status_code == 200 and resp.json().get("choices"):
                ok = True
            else:
                why = f"HTTP {resp.status_code}: {resp.text[:200]}"
    except httpx.HTTPError as e:
        why = f"{type(e).__name__}: {e}"
    b = st.now()
    kind = ("direct" if direct else "gw") + ("_ttft" if stream else "")
    value = (ttft if stream else (b - a) * 1000) or 0.0
    if ok:
        st.samples.append((a, kind, value))
    phase = st.phase(a)
    if direct:
        if ok and phase:
            st.lat.setdefault((phase, kind), []).append(value)
        return
    if ok:
        st.gw_acked.add(session)
        if phase and st.phase(b) == phase:
            st.lat.setdefault((phase, kind), []).append(value)
    elif st.in_down(a, b + 0.5):
        st.gw_down += 1
    else:
        st.gw_fail.append(f"t={a:.1f}s stream={stream}: {why}")


def otlp_batch(batch_no: int, n: int) -> tuple[bytes, list[str]]:
    """An ExportTraceServiceRequest of ``n`` GenAI chat spans (one trace)."""
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(
        key="service.name", value=common_pb2.AnyValue(string_value="soak-otlp")
    )
    ss = rs.scope_spans.add()
    ss.scope.name = "opentelemetry.instrumentation.openai_v2"
    trace_id = random.randbytes(16)
    now = time.time_ns()
    ids = []
    for k in range(n):
        span_id = random.randbytes(8)
        ids.append(span_id.hex())
        span = ss.spans.add(
            trace_id=trace_id,
            span_id=span_id,
            name="chat gpt-4o-mini",
            kind=3,
            start_time_unix_nano=now - 400_000_000,
            end_time_unix_nano=now,
        )
        for key, value in (
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.provider.name", "openai"),
            ("gen_ai.request.model", "gpt-4o-mini"),
            ("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
        ):
            span.attributes.add(key=key, value=common_pb2.AnyValue(string_value=value))
        for key, value in (
            ("gen_ai.usage.input_tokens", 100 + k),
            ("gen_ai.usage.output_tokens", 20 + batch_no % 50),
        ):
            span.attributes.add(key=key, value=common_pb2.AnyValue(int_value=value))
    return req.SerializeToString(), ids


async def otlp_send(
    st: Stats, client: httpx.AsyncClient, url: str, batch_no: int, n: int, deadline: float
) -> None:
    body, ids = otlp_batch(batch_no, n)
    st.otlp_batches += 1
    delay = 0.5
    while True:
        reason = None
        try:
            resp = await client.post(
                url, content=body, headers={"content-type": "application/x-protobuf"}
            )
            if resp.status_code == 200:
                st.otlp_acked.update(ids)
                st.otlp_acked_batches += 1
                return
            if resp.status_code in (429, 502, 503, 504):  # retryable per the OTLP spec
                reason = f"HTTP {resp.status_code}"
                t = st.now()
                if not st.in_down(t - 1, t + 1):
                    st.otlp_fail.append(f"t={t:.1f}s retryable {reason} while the server was up")
            else:
                st.otlp_fail.append(f"t={st.now():.1f}s HTTP {resp.status_code}: {resp.text[:200]}")
                return
        except httpx.HTTPError as e:
            reason = type(e).__name__
            t = st.now()
            if not st.in_down(t - 5, t + 1):
                st.otlp_fail.append(f"t={t:.1f}s {reason}: {e} while the server was up")
        st.otlp_retries += 1
        st.otlp_retry_reasons[reason] = st.otlp_retry_reasons.get(reason, 0) + 1
        if st.now() > deadline:
            st.otlp_unacked += len(ids)
            return
        await asyncio.sleep(delay * random.uniform(0.8, 1.2))
        delay = min(delay * 2, 5.0)


async def generate(
    st: Stats, base: str, up_url: str, args: argparse.Namespace, stop_at: float
) -> None:
    """Open-loop load until ``stop_at``: calls are started on schedule, not after the
    previous one, so a slow server shows as latency and in-flight calls, not a lower rate."""
    limits = httpx.Limits(max_connections=400, max_keepalive_connections=100)
    timeout = httpx.Timeout(30.0, connect=5.0)
    gw_rate = args.rate * args.gateway_share
    otlp_rate = args.rate * (1 - args.gateway_share) / args.batch  # batches/s
    direct_rate = args.direct_rate
    tasks: set[asyncio.Task] = set()
    async with (
        httpx.AsyncClient(limits=limits, timeout=timeout) as gw,
        httpx.AsyncClient(limits=limits, timeout=timeout) as ingest,
        httpx.AsyncClient(limits=limits, timeout=timeout) as direct,
    ):
        schedule = [
            ("gw", 1 / gw_rate, st.now()),
            ("otlp", 1 / otlp_rate, st.now()),
            ("direct", 1 / direct_rate, st.now()),
        ]
        counters = {"gw": 0, "otlp": 0, "direct": 0}
        while st.now() < stop_at:
            kind, interval, due = min(schedule, key=lambda s: s[2])
            wait = due - st.now()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.05:
                st.lag.append((due, -wait))
            schedule = [(k, iv, d + iv if k == kind else d) for k, iv, d in schedule]
            i = counters[kind] = counters[kind] + 1
            if len(tasks) >= args.max_inflight:
                st.skipped += 1
                continue
            if kind == "gw":
                coro = gateway_call(
                    st, gw, f"{base}/openai/v1/chat/completions", i, i % 2 == 0, False
                )
            elif kind == "direct":
                coro = gateway_call(st, direct, f"{up_url}/chat/completions", i, i % 2 == 0, True)
            else:
                coro = otlp_send(st, ingest, f"{base}/v1/traces", i, args.batch, stop_at + 60)
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=120)


# -- the server and its faults --------------------------------------------------------------


class Gensight:
    """``gensight serve`` restarted in place (same port, data dir and journal)."""

    def __init__(self, port: int, data: Path, up_url: str, fault_file: Path, logs: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.data = data
        self.up_url = up_url
        self.fault_file = fault_file
        self.logs = logs
        self.incarnation = 0
        self.server: Server | None = None

    def start(self) -> float:
        self.incarnation += 1
        cmd = [sys.executable, "-m", "gensight.cli", "serve", "--port", str(self.port)]
        cmd += ["--data-dir", str(self.data), "--upstream", f"openai={self.up_url}"]
        cmd += ["--log-level", "warning", "--alert-interval", "1h"]
        env = {"GENSIGHT_FAULT_STORE_DOWN_FILE": str(self.fault_file)}
        self.server = Server(
            f"gensight#{self.incarnation}",
            cmd,
            env=env,
            log_path=self.logs / f"gensight-{self.incarnation}.log",
        )
        return self.server.wait_ready(f"{self.url}/api/health", 120)

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server else None

    def stop(self, sig: int, timeout: float = 60.0) -> int | None:
        assert self.server is not None
        proc = self.server.proc
        with contextlib.suppress(ProcessLookupError):
            if sig == signal.SIGKILL:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        self.server._log.close()
        return proc.returncode


def rss_kb(pid: int) -> int | None:
    """Resident set of one process (Linux /proc), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


async def sample_rss(st: Stats, gs: Gensight, stop: asyncio.Event) -> None:
    while not stop.is_set():
        pid = gs.pid
        if pid is not None:
            kb = rss_kb(pid)
            if kb:
                st.rss.append((st.now(), kb / 1024, gs.incarnation))
        st.load.append(os.getloadavg()[0])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def health(gs: Gensight) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as c:
        return (await c.get(f"{gs.url}/api/health")).json()


async def restart(st: Stats, gs: Gensight, sig: int) -> None:
    name = "SIGTERM" if sig == signal.SIGTERM else "SIGKILL"
    with contextlib.suppress(Exception):
        q = (await health(gs))["queue"]
        st.event(f"before {name}: queue depth {q['depth']}, spilled {q['spilled_batches']}")
    w = Window(name, st.now())
    st.down.append(w)
    st.event(f"{name} to the server")
    code = await asyncio.to_thread(gs.stop, sig)
    st.event(f"server exited ({code}); starting it again")
    took = await asyncio.to_thread(gs.start)
    w.end = st.now()
    q = (await health(gs))["queue"]
    st.event(
        f"server answering again after {w.end - w.start:.1f}s (start {took:.1f}s);"
        f" replayed {q['replayed_batches']} journal batches"
    )


async def outage(st: Stats, gs: Gensight, seconds: float) -> None:
    st.outage = Window("outage", st.now())
    gs.fault_file.touch()
    st.event(f"store unavailable for {seconds:.0f}s")
    await asyncio.sleep(seconds)
    q = (await health(gs))["queue"]
    gs.fault_file.unlink()
    st.outage.end = st.now()
    st.event(
        f"store back: during the outage {q['spilled_batches']} batches spilled"
        f" ({q['spill_bytes'] / 1e6:.1f} MB journal), {q['write_errors']} failed writes retried"
    )


async def drain(gs: Gensight, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    h: dict[str, Any] = {}
    while time.monotonic() < deadline:
        h = await health(gs)
        q = h["queue"]
        if q["depth"] == 0 and q["spilled_batches"] == 0:
            await asyncio.sleep(2)  # the last batch in flight
            return await health(gs)
        await asyncio.sleep(1)
    return h


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    duration = args.minutes * 60
    st = Stats()
    up_port = free_port()
    up = Server(
        "upstream",
        [sys.executable, "-c", UPSTREAM, str(up_port)],
        log_path=tmp / "upstream.log",
    )
    up_url = f"http://127.0.0.1:{up_port}/v1"
    gs = Gensight(free_port(), tmp / "data", up_url, tmp / "store-down", tmp)
    try:
        up.wait_ready(f"{up_url}/models", 60)
        gs.start()
        st = Stats()  # the clock starts with traffic
        st.event(
            f"traffic: {args.rate:.0f} calls/s ({args.gateway_share:.0%} gateway, half streamed;"
            f" the rest OTLP batches of {args.batch}) + {args.direct_rate:.0f}/s direct"
            f" for {duration:.0f}s"
        )
        stop_rss = asyncio.Event()
        rss_task = asyncio.create_task(sample_rss(st, gs, stop_rss))
        load = asyncio.create_task(generate(st, gs.url, up_url, args, duration))

        async def at(frac: float) -> None:
            await asyncio.sleep(max(0.0, frac * duration - st.now()))

        await at(0.25)
        await restart(st, gs, signal.SIGTERM)
        await at(0.40)
        await outage(st, gs, min(args.outage, 0.3 * duration))
        await at(0.75)
        await restart(st, gs, signal.SIGKILL)
        await load
        st.event("traffic stopped; draining")
        final = await drain(gs)
        stop_rss.set()
        await rss_task
        st.event(f"drained: queue {final['queue']}")
        gs.stop(signal.SIGTERM)
        return report(st, gs, final, duration)
    finally:
        if gs.server and gs.server.proc.poll() is None:
            gs.stop(signal.SIGTERM)
        up.stop()
        with contextlib.suppress(FileNotFoundError):
            gs.fault_file.unlink()


def stored(data: Path) -> tuple[dict[str, int], set[str], set[str]]:
    import duckdb

    con = duckdb.connect(str(data / "gensight.duckdb"), read_only=True)
    try:
        rows = dict(con.execute("SELECT source, count(*) FROM calls GROUP BY source").fetchall())
        gw = {
            r[0]
            for r in con.execute(
                "SELECT session FROM calls WHERE source = 'gateway' AND app = 'soak-gateway'"
            ).fetchall()
        }
        otlp = {
            r[0]
            for r in con.execute(
                "SELECT id FROM calls WHERE source = 'otlp' AND app = 'soak-otlp'"
            ).fetchall()
        }
        return rows, gw, otlp
    finally:
        con.close()


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def report(st: Stats, gs: Gensight, final: dict[str, Any], duration: float) -> dict[str, Any]:
    rows, gw_stored, otlp_stored = stored(gs.data)
    gw_missing = st.gw_acked - gw_stored
    otlp_missing = st.otlp_acked - otlp_stored
    latency: dict[str, dict[str, Any]] = {}
    for phase in ("before", "outage", "after", "after-kill"):
        row: dict[str, Any] = {}
        for kind in ("gw", "direct", "gw_ttft", "direct_ttft"):
            v = st.lat.get((phase, kind), [])
            row[kind] = {"n": len(v), "p50": pct(v, 50), "p99": pct(v, 99)}
        for a, b, name in (("gw", "direct", "added"), ("gw_ttft", "direct_ttft", "added_ttft")):
            if row[a]["p99"] is not None and row[b]["p99"] is not None:
                row[name] = {
                    "p50": row[a]["p50"] - row[b]["p50"],
                    "p99": row[a]["p99"] - row[b]["p99"],
                }
        latency[phase] = row
    by_inc: dict[int, list[tuple[float, float]]] = {}
    for t, mb, inc in st.rss:
        by_inc.setdefault(inc, []).append((t, mb))
    rss = {
        str(inc): {
            "start_mb": s[min(len(s) - 1, 10)][1],  # ~10 s in: past start-up
            "end_mb": s[-1][1],
            "peak_mb": max(mb for _, mb in s),
            "seconds": s[-1][0] - s[0][0],
        }
        for inc, s in by_inc.items()
    }
    otlp_spans_sent = len(st.otlp_acked) + st.otlp_unacked
    return {
        "duration_s": duration,
        "rate_target": None,
        "calls_per_s": (st.gw_sent + otlp_spans_sent) / duration,
        "gateway": {
            "sent": st.gw_sent,
            "acknowledged": len(st.gw_acked),
            "stored": len(gw_stored),
            "acknowledged_not_stored": len(gw_missing),
            "stored_not_acknowledged": len(gw_stored - st.gw_acked),
            "failures_caused_by_gensight": len(st.gw_fail),
            "failed_while_server_down": st.gw_down,
            "failure_samples": st.gw_fail[:10],
        },
        "otlp": {
            "batches": st.otlp_batches,
            "acknowledged_batches": st.otlp_acked_batches,
            "acknowledged_spans": len(st.otlp_acked),
            "stored": len(otlp_stored),
            "acknowledged_not_stored": len(otlp_missing),
            "never_acknowledged_spans": st.otlp_unacked,
            "retries": st.otlp_retries,
            "retry_reasons": st.otlp_retry_reasons,
            "failures_caused_by_gensight": len(st.otlp_fail),
            "failure_samples": st.otlp_fail[:10],
        },
        "store_rows_by_source": rows,
        "skipped_by_generator": st.skipped,
        "calls_sent": st.gw_sent + otlp_spans_sent,
        "latency_ms": latency,
        "rss_mb_by_incarnation": rss,
        "peak_rss_mb": max((mb for _, mb, _ in st.rss), default=None),
        "final_queue": final.get("queue"),
        "final_dropped": final.get("dropped"),
        "events": [f"{t:.1f}s {e}" for t, e in st.events],
        "timeline": timeline(st),
        "cpus": os.cpu_count(),
        "load_avg_mean": statistics.fmean(st.load) if st.load else None,
        "load_avg_max": max(st.load, default=None),
    }


def timeline(st: Stats, width: float = 10.0) -> list[dict[str, Any]]:
    """Per ``width`` seconds: calls, p50/p99 of non-streamed gateway and direct calls,
    and how far the generator fell behind its schedule (its own saturation)."""
    buckets: dict[int, dict[str, list[float]]] = {}
    for t, kind, ms in st.samples:
        buckets.setdefault(int(t // width), {}).setdefault(kind, []).append(ms)
    for t, lag in st.lag:
        buckets.setdefault(int(t // width), {}).setdefault("lag", []).append(lag * 1000)
    out = []
    for b in sorted(buckets):
        v = buckets[b]
        out.append(
            {
                "t": b * width,
                "gw_n": len(v.get("gw", [])) + len(v.get("gw_ttft", [])),
                "gw_p50": pct(v.get("gw", []), 50),
                "gw_p99": pct(v.get("gw", []), 99),
                "direct_p99": pct(v.get("direct", []), 99),
                "lag_max_ms": max(v.get("lag", [0.0])),
            }
        )
    return out


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


def print_report(r: dict[str, Any]) -> None:
    g, o = r["gateway"], r["otlp"]
    print()
    print(f"== soak: {r['duration_s'] / 60:.1f} min, {r['calls_per_s']:.0f} calls/s offered")
    print(
        f"failures caused by Gensight: gateway {g['failures_caused_by_gensight']},"
        f" OTLP {o['failures_caused_by_gensight']}"
        f"   (gateway calls failed while the server was restarting:"
        f" {g['failed_while_server_down']})"
    )
    print(
        f"gateway: sent {g['sent']}, acknowledged {g['acknowledged']}, stored {g['stored']},"
        f" acknowledged but not stored {g['acknowledged_not_stored']},"
        f" stored but not acknowledged {g['stored_not_acknowledged']}"
    )
    print(
        f"OTLP:    {o['batches']} batches, acknowledged spans {o['acknowledged_spans']},"
        f" stored {o['stored']}, acknowledged but not stored {o['acknowledged_not_stored']},"
        f" never acknowledged {o['never_acknowledged_spans']}, retries {o['retries']}"
        f" {o['retry_reasons']}"
    )
    print(f"skipped by the generator (in-flight cap): {r['skipped_by_generator']}")
    print(
        f"machine: {r['cpus']} CPUs, 1-min load average mean {_f(r['load_avg_mean'])},"
        f" max {_f(r['load_avg_max'])} (everything on it, not only this run)"
    )
    print(f"final queue: {r['final_queue']}")
    print(f"peak RSS {_f(r['peak_rss_mb'])} MB; per server incarnation:")
    for inc, v in r["rss_mb_by_incarnation"].items():
        print(
            f"  #{inc}: {v['start_mb']:.0f} MB at ~10 s -> {v['end_mb']:.0f} MB after"
            f" {v['seconds']:.0f} s (peak {v['peak_mb']:.0f} MB)"
        )
    print("latency (ms)           gw p50   gw p99  direct p99  added p50  added p99   n")
    for phase, row in r["latency_ms"].items():
        for kind, label in (("", "non-streamed"), ("_ttft", "stream TTFT ")):
            gwk, dk, ak = f"gw{kind}", f"direct{kind}", f"added{kind}"
            added = row.get(ak, {})
            print(
                f"  {phase:7s} {label}  {_f(row[gwk]['p50']):>7} {_f(row[gwk]['p99']):>8}"
                f" {_f(row[dk]['p99']):>11} {_f(added.get('p50')):>10}"
                f" {_f(added.get('p99')):>10} {row[gwk]['n']:>5}"
            )
    print("timeline (non-streamed calls, ms)   t   gw n   gw p50   gw p99  direct p99  lag max")
    for row in r["timeline"]:
        print(
            f"  {row['t']:>34.0f} {row['gw_n']:>6} {_f(row['gw_p50']):>8} {_f(row['gw_p99']):>8}"
            f" {_f(row['direct_p99']):>11} {row['lag_max_ms']:>8.0f}"
        )
    for s in g["failure_samples"] + o["failure_samples"]:
        print("  failure:", s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=200.0, help="calls per second (all kinds)")
    ap.add_argument("--gateway-share", type=float, default=0.3, help="share through the gateway")
    ap.add_argument("--batch", type=int, default=20, help="calls (spans) per OTLP batch")
    ap.add_argument("--direct-rate", type=float, default=10.0, help="baseline calls/s")
    ap.add_argument("--outage", type=float, default=60.0, help="seconds the store is down")
    ap.add_argument("--max-inflight", type=int, default=1000)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the data dir and logs")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gensight-soak-"))
    print(f"data and logs under {tmp}")
    result = asyncio.run(run(args, tmp))
    result["rate_target"] = args.rate
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
