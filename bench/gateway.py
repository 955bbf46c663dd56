"""Gateway overhead: direct to the upstream vs through Gensight vs through the LiteLLM proxy.

One fake OpenAI upstream (``gensight.demo``, in its own process), then, in one run
and side by side, the same requests sent

* directly to the upstream,
* through ``gensight serve --upstream openai=…`` (``/openai/v1``),
* through the LiteLLM proxy (``litellm --config``, one model entry per benchmark model
  pointing at the fake upstream, ``LITELLM_LOCAL_MODEL_COST_MAP=True``, a master key).

Measured per target: latency p50/p99 of non-streamed chat completions at concurrency 1
and 64; streamed chat completions (upstream emits a token every 2 ms): time to first
chunk p50/p99 and the per-chunk delay added to the body; requests/s at concurrency 64
(saturation on this machine); peak RSS of the server's process tree. "Added" columns
are the target's figure minus the direct figure.

Also measured, to justify the gateway's HTTP client: a bare ``httpx.AsyncClient`` vs a
bare ``aiohttp.ClientSession`` against the same upstream, sequentially.

LiteLLM is run from ``.cache/litellm-venv`` (made with ``uv`` when missing, unless
``--no-install``; ``--litellm PATH`` names another ``litellm`` executable); if it cannot
be installed or started, its rows are skipped. ``--baseline-src DIR`` adds a second
Gensight, run from another checkout's ``src`` (e.g. main's), so a change is compared with
what it changes in the same run. The 1-minute load average is printed before and after.

The summary gives the ratios the gateway's issue asks for: added p50 at c=1, req/s at
c=64 and server CPU per request, Gensight against direct, LiteLLM and the baseline.

Usage::

    .venv/bin/python bench/gateway.py [--quick] [--json results.json] [--no-litellm]
        [--litellm PATH] [--baseline-src ../main/src]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx

REPO = Path(__file__).resolve().parent.parent
LITELLM_VENV = REPO / ".cache" / "litellm-venv"
UV = REPO / ".venv" / "bin" / "uv"
KEY = "sk-bench-not-a-real-key"
LITELLM_MASTER = "sk-litellm-bench-master"

NON_STREAM = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello to the benchmark, briefly."}],
}
STREAM = {
    "model": "gpt-4o",
    "stream": True,
    "messages": [{"role": "user", "content": "Stream a short answer for the benchmark."}],
}

UPSTREAM = """
import sys, uvicorn
from gensight.demo import ModelProfile, UpstreamConfig, create_app
profiles = {"gpt-4o": ModelProfile(ms_per_token=2.0), "gpt-4o-mini": ModelProfile()}
app = create_app(UpstreamConfig(profiles=profiles, log_limit=100))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""

LITELLM_CONFIG = """
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{base}", api_key: "{key}"}}
  - model_name: gpt-4o
    litellm_params: {{model: openai/gpt-4o, api_base: "{base}", api_key: "{key}"}}
litellm_settings:
  telemetry: false
general_settings:
  master_key: {master}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    stack += [
                        int(c) for c in Path(f"/proc/{p}/task/{tid}/children").read_text().split()
                    ]
    return out


def peak_rss_mb(pid: int) -> float | None:
    """Sum of the peak resident sets (VmHWM) of a process tree, in MiB."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total / 1024 if total else None


class Proc:
    """A server in its own process group, logging to a file."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log = log
        self._f = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    def wait_ready(self, url: str, timeout: float, headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited before it was ready:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready at {url} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._f.close()


def ensure_litellm(install: bool) -> Path | None:
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    if not install:
        return None
    print("installing litellm[proxy] into", LITELLM_VENV, "…", flush=True)
    try:
        subprocess.run([str(UV), "venv", "--python", "3.11", str(LITELLM_VENV)], check=True)
        subprocess.run(
            [str(UV), "pip", "install", "--python", str(LITELLM_VENV / "bin" / "python")]
            + ["litellm[proxy]<1.110"],  # later [proxy] extras need litellm-proxy, not on PyPI here
            check=True,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"LiteLLM unavailable ({e}); its rows are skipped", flush=True)
        return None
    return exe if exe.exists() else None


# -- load ------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process tree so far (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def phase(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    n: int,
    concurrency: int,
    acc: dict[str, Any],
    pid: int | None,
) -> None:
    """``n`` requests, ``concurrency`` at a time, added to the samples in ``acc`` (ms)."""
    data = json.dumps(body).encode()
    stream = bool(body.get("stream"))
    todo = iter(range(n))

    async def worker() -> None:
        for _ in todo:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=data, headers=headers) as r:
                    if not stream:
                        await r.read()
                    else:
                        first = last = None
                        events = 0
                        async for chunk in r.content.iter_any():
                            last = time.perf_counter()
                            first = first or last
                            events += chunk.count(b"data:")
                        if first is not None:
                            acc["ttft"].append((first - t0) * 1000)
                            if events > 1:
                                acc["gap"].append((last - first) * 1000 / (events - 1))
                    if r.status != 200:
                        acc["errors"] += 1
                        kinds = acc.setdefault("kinds", {})
                        kinds[f"status {r.status}"] = kinds.get(f"status {r.status}", 0) + 1
            except aiohttp.ClientError as e:
                acc["errors"] += 1
                kinds = acc.setdefault("kinds", {})
                kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
            acc["lat"].append((time.perf_counter() - t0) * 1000)

    cpu0 = cpu_seconds(pid) if pid else 0.0
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    acc["elapsed"] += time.perf_counter() - start
    acc["n"] += n
    if pid:
        acc["cpu"] += cpu_seconds(pid) - cpu0


PHASES = (
    ("ns_c1", NON_STREAM, 1),
    ("ns_c64", NON_STREAM, 64),
    ("st_c1", STREAM, 1),
    ("st_c64", STREAM, 64),
)


async def measure(
    targets: dict[str, tuple[str, dict[str, str], int | None]],
    sizes: dict[str, int],
    rounds: int,
) -> dict[str, dict[str, Any]]:
    """Every phase for every target, interleaved in ``rounds`` so that load from
    elsewhere on the machine falls on all targets alike."""
    out: dict[str, dict[str, Any]] = {name: {} for name in targets}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as s:
        for url, headers, _ in targets.values():  # warm-up: pools, caches, lazy loads
            junk = {"lat": [], "ttft": [], "gap": [], "errors": 0, "elapsed": 0.0, "n": 0}
            junk["cpu"] = 0.0
            await phase(
                s, url + "/chat/completions", headers, NON_STREAM, sizes["warm"], 8, junk, None
            )
            await phase(
                s, url + "/chat/completions", headers, STREAM, sizes["warm"] // 4, 8, junk, None
            )
        for key, body, c in PHASES:
            accs = {
                name: {
                    "lat": [],
                    "ttft": [],
                    "gap": [],
                    "errors": 0,
                    "elapsed": 0.0,
                    "n": 0,
                    "cpu": 0.0,
                }
                for name in targets
            }
            per_round = max(c, sizes[key] // rounds)
            for r in range(rounds):
                order = list(targets.items())
                for name, (url, headers, pid) in order if r % 2 == 0 else reversed(order):
                    await phase(
                        s, url + "/chat/completions", headers, body, per_round, c, accs[name], pid
                    )
            for name, acc in accs.items():
                out[name][key] = {
                    "n": acc["n"],
                    "c": c,
                    "p50": pct(acc["lat"], 50),
                    "p99": pct(acc["lat"], 99),
                    "ttft_p50": pct(acc["ttft"], 50),
                    "ttft_p99": pct(acc["ttft"], 99),
                    "chunk_gap": statistics.median(acc["gap"]) if acc["gap"] else None,
                    "rps": acc["n"] / acc["elapsed"],
                    "cpu_us": acc["cpu"] / acc["n"] * 1e6 if targets[name][2] else None,
                    "errors": acc["errors"],
                    "error_kinds": acc.get("kinds", {}),  # status N or the client's exception
                }
    return out


async def compare_clients(url: str, n: int) -> dict[str, float]:
    """Sequential p50 (ms) of bare httpx and aiohttp clients, the gateway's candidates."""
    data = json.dumps(NON_STREAM).encode()
    hdrs = {"content-type": "application/json", "authorization": f"Bearer {KEY}"}
    out: dict[str, float] = {}
    async with httpx.AsyncClient() as hc:
        lat = []
        for i in range(n + 20):
            t0 = time.perf_counter()
            r = await hc.post(url, content=data, headers=hdrs)
            assert r.content
            if i >= 20:
                lat.append((time.perf_counter() - t0) * 1000)
        out["httpx"] = statistics.median(lat)
    async with aiohttp.ClientSession() as ac:
        lat = []
        for i in range(n + 20):
            t0 = time.perf_counter()
            async with ac.post(url, data=data, headers=hdrs) as r:
                await r.read()
            if i >= 20:
                lat.append((time.perf_counter() - t0) * 1000)
        out["aiohttp"] = statistics.median(lat)
    return out


# -- report ----------------------------------------------------------------------------


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def report(results: dict[str, dict[str, Any]]) -> str:
    direct = results["direct"]
    rows = [
        "| target | phase | p50 ms | p99 ms | added p50 | added p99 | TTFT p50 | TTFT p99 "
        "| added TTFT p50 | chunk gap ms | added/chunk | req/s | server CPU µs/req | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        for ph in ("ns_c1", "ns_c64", "st_c1", "st_c64"):
            r, d = res[ph], direct[ph]
            stream = ph.startswith("st")

            def add(key: str, r: dict = r, d: dict = d, base: bool = name == "direct") -> Any:
                if base or r.get(key) is None or d.get(key) is None:
                    return None
                return r[key] - d[key]

            rows.append(
                f"| {name} | {'stream' if stream else 'plain'} c={r['c']} | {_f(r['p50'])} "
                f"| {_f(r['p99'])} | {_f(add('p50'))} | {_f(add('p99'))} "
                f"| {_f(r['ttft_p50']) if stream else '-'} "
                f"| {_f(r['ttft_p99']) if stream else '-'} "
                f"| {_f(add('ttft_p50')) if stream else '-'} | {_f(r['chunk_gap'], 3)} "
                f"| {_f(add('chunk_gap'), 3)} | {_f(r['rps'], 0)} | {_f(r['cpu_us'], 0)} "
                f"| {r['errors']}{' ' + str(r['error_kinds']) if r.get('error_kinds') else ''} |"
            )
    rows.append("")
    rows.append("| target | peak RSS MiB (server tree) |")
    rows.append("|---|---|")
    for name, res in results.items():
        rows.append(f"| {name} | {_f(res.get('rss_mb'), 0)} |")
    return "\n".join(rows)


def summary(results: dict[str, dict[str, Any]]) -> str:
    """Per target: added p50 at c=1, req/s at c=64 (and its share of direct's), server CPU
    µs per request; then Gensight's ratios to every other proxy measured."""
    d = results["direct"]
    rows = ["| target | added p50 c=1 ms | req/s c=64 | of direct | CPU µs/req |",
            "|---|---|---|---|---|"]  # fmt: skip
    figures: dict[str, tuple[float, float, float | None]] = {}
    for name, r in results.items():
        if name == "direct":
            continue
        added = r["ns_c1"]["p50"] - d["ns_c1"]["p50"]
        rps = r["ns_c64"]["rps"]
        cpu = r["ns_c64"]["cpu_us"]
        figures[name] = (added, rps, cpu)
        rows.append(
            f"| {name} | {added:.2f} | {rps:.0f} | {rps / d['ns_c64']['rps']:.2f} | {_f(cpu, 0)} |"
        )
    g = figures.get("gensight")
    for other, (added, rps, cpu) in figures.items():
        if g is None or other == "gensight":
            continue
        ratio_cpu = f"{g[2] / cpu:.2f}" if g[2] and cpu else "-"
        ratio_added = f"{g[0] / added:.2f}" if added > 0 else "-"
        rows.append(
            f"\nGensight / {other}: added p50 c=1 {ratio_added}, req/s c=64 {g[1] / rps:.2f}, "
            f"CPU per request {ratio_cpu}"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    ap.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM proxy")
    ap.add_argument("--no-install", action="store_true", help="don't install LiteLLM if missing")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds per phase")
    ap.add_argument("--litellm", type=Path, help="the litellm executable to run")
    ap.add_argument("--baseline-src", type=Path, help="also run Gensight from this src dir")
    args = ap.parse_args()
    sizes = (
        {"warm": 40, "ns_c1": 100, "ns_c64": 640, "st_c1": 40, "st_c64": 320}
        if args.quick
        else {"warm": 200, "ns_c1": 600, "ns_c64": 4000, "st_c1": 200, "st_c64": 1280}
    )
    tmp = Path(tempfile.mkdtemp(prefix="gensight-bench-"))
    procs: list[Proc] = []
    results: dict[str, dict[str, Any]] = {}
    try:
        up_port = free_port()
        up = Proc("upstream", [sys.executable, "-c", UPSTREAM, str(up_port)], tmp / "up.log")
        procs.append(up)
        up_url = f"http://127.0.0.1:{up_port}/v1"
        up.wait_ready(up_url + "/models", 30)

        gs_port = free_port()
        gs = Proc(
            "gensight",
            [sys.executable, "-m", "gensight.cli", "serve", "--port", str(gs_port)]
            + ["--data-dir", str(tmp / "data"), "--upstream", f"openai={up_url}"]
            + ["--log-level", "warning"],
            tmp / "gensight.log",
        )
        procs.append(gs)
        gs.wait_ready(f"http://127.0.0.1:{gs_port}/api/health", 60)

        baseline: Proc | None = None
        if args.baseline_src is not None:
            bl_port = free_port()
            baseline = Proc(
                "gensight-baseline",
                [sys.executable, "-m", "gensight.cli", "serve", "--port", str(bl_port)]
                + ["--data-dir", str(tmp / "data-baseline"), "--upstream", f"openai={up_url}"]
                + ["--log-level", "warning"],
                tmp / "baseline.log",
                env={"PYTHONPATH": str(args.baseline_src.resolve())},
            )
            procs.append(baseline)
            baseline.wait_ready(f"http://127.0.0.1:{bl_port}/api/health", 60)

        targets: dict[str, tuple[str, dict[str, str], Proc | None]] = {
            "direct": (up_url, {"authorization": f"Bearer {KEY}"}, None),
            "gensight": (
                f"http://127.0.0.1:{gs_port}/openai/v1",
                {"authorization": f"Bearer {KEY}"},
                gs,
            ),
        }
        if baseline is not None:
            targets["baseline"] = (
                f"http://127.0.0.1:{bl_port}/openai/v1",
                {"authorization": f"Bearer {KEY}"},
                baseline,
            )
        exe = args.litellm or (None if args.no_litellm else ensure_litellm(not args.no_install))
        if exe is not None:
            ll_port = free_port()
            cfg = tmp / "litellm.yaml"
            cfg.write_text(LITELLM_CONFIG.format(base=up_url, key=KEY, master=LITELLM_MASTER))
            ll = Proc(
                "litellm",
                [str(exe), "--config", str(cfg), "--port", str(ll_port), "--host", "127.0.0.1"],
                tmp / "litellm.log",
                env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"},
            )
            procs.append(ll)
            try:
                ll.wait_ready(f"http://127.0.0.1:{ll_port}/health/liveliness", 180)
                targets["litellm"] = (
                    f"http://127.0.0.1:{ll_port}/v1",
                    {"authorization": f"Bearer {LITELLM_MASTER}"},
                    ll,
                )
            except (RuntimeError, TimeoutError) as e:
                print(f"LiteLLM did not start; skipped. {e}", flush=True)

        load_before = Path("/proc/loadavg").read_text().strip()
        print("load before:", load_before, flush=True)
        clients = asyncio.run(compare_clients(up_url + "/chat/completions", sizes["ns_c1"]))
        print("measuring", ", ".join(targets), f"in {args.rounds} interleaved rounds …", flush=True)
        plan = {
            name: (
                url,
                {**headers, "content-type": "application/json"},
                proc.proc.pid if proc else None,
            )
            for name, (url, headers, proc) in targets.items()
        }
        results = asyncio.run(measure(plan, sizes, args.rounds))
        for name, (_, _, proc) in targets.items():
            results[name]["rss_mb"] = peak_rss_mb(proc.proc.pid) if proc else None
        load_after = Path("/proc/loadavg").read_text().strip()
        print()
        print(report(results))
        print()
        print(summary(results))
        print(f"load before: {load_before}; after: {load_after}")
        print()
        print(
            "bare clients, sequential p50 to the upstream: "
            + ", ".join(f"{k} {v:.3f} ms" for k, v in clients.items())
        )
        if args.json:
            doc = {"results": results, "clients": clients, "load": [load_before, load_after]}
            args.json.write_text(json.dumps(doc, indent=2))
    finally:
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    main()
