"""`gensight demo`, `stats`, `export` and `import`, run as a user runs them."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import Server, free_port

GENSIGHT = [sys.executable, "-m", "gensight.cli"]


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # rich wraps at 80 columns without a terminal
    return subprocess.run(
        [*GENSIGHT, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data dir of one 15-second demo run."""
    data = tmp_path_factory.mktemp("demo")
    proc = _run("demo", "--duration", "15s", "--quiet", "--port", str(free_port()),
                "--data-dir", str(data), "--rate", "15/s")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r"stored (\d+) of (\d+) records it accepted \((\d+) dropped\)", proc.stdout)
    assert m, proc.stdout + proc.stderr[-3000:]
    assert m.group(1) == m.group(2) and m.group(3) == "0"
    return data


@pytest.fixture(scope="module")
def demo_server(demo_data: Path):
    srv = Server(demo_data)
    yield srv
    srv.stop()


def test_demo_fills_the_store_with_both_sources(demo_server: Server):
    calls = demo_server.client.get("/api/calls", params={"limit": 1000}).json()["items"]
    assert len(calls) >= 60
    sources = collections.Counter(c["source"] for c in calls)
    assert sources["gateway"] > 0 and sources["otlp"] > 0
    models = {c["request_model"] for c in calls if c["request_model"]}
    assert len(models) >= 3
    # the demo's first gateway calls show each failure whatever the machine's load
    classes = {c["error_class"] for c in calls if c["error_class"]}
    assert {"invalid_request", "auth", "rate_limit", "upstream_error", "timeout"} <= classes
    streamed = [c for c in calls if c["stream"] and c["status"] == "ok"]
    assert streamed and all(c["ttft_ms"] and c["ttft_ms"] > 0 for c in streamed)
    apps = {c["app"] for c in calls if c["source"] == "gateway"}
    assert len(apps) >= 3
    priced = [c for c in calls if c["cost_usd"]]
    assert priced and all(c["cost_source"] == "computed" for c in priced)

    # the SDK's RAG requests are traces of handler → retrieve → LLM → tool → LLM
    rag = next(c for c in calls if c["app"] == "rag-service" and c["operation"] == "chat")
    tree = demo_server.client.get(f"/api/traces/{rag['trace_id']}").json()
    names = [s["name"] for s in tree["spans"]]
    assert len(tree["spans"]) >= 4, names
    assert {"POST /ask", "retrieve", "execute_tool lookup_order"} <= set(names)
    assert len(tree["calls"]) >= 2

    # users' thumbs on gateway answers (#20), joined to their calls and ranked by model
    thumbs = demo_server.client.get("/api/scores", params={"name": "thumbs"}).json()["items"]
    assert thumbs and {s["source"] for s in thumbs} == {"user"}
    gateway = {c["id"] for c in calls if c["source"] == "gateway"}
    assert {s["target_id"] for s in thumbs} <= gateway
    assert {(s["value"], s["label"]) for s in thumbs} <= {(1.0, "up"), (0.0, "down")}
    ranked = demo_server.client.get(
        "/api/analysis/cost-per-good-answer",
        params={"since": "30d", "score": "thumbs", "threshold": 1},
    ).json()["items"]
    assert any(i["cost_per_good_answer_usd"] for i in ranked)


def test_stats_prints_a_table(demo_server: Server):
    proc = _run("stats", "--since", "1h", "--group-by", "app", "--url", demo_server.url)
    assert proc.returncode == 0, proc.stderr
    assert "support-bot" in proc.stdout and "rag-service" in proc.stdout
    assert "calls since" in proc.stdout


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_export_import_round_trip(demo_server: Server, tmp_path: Path, fmt: str):
    out = tmp_path / f"calls.{fmt}"
    proc = _run("export", "--format", fmt, "-o", str(out), "--url", demo_server.url)
    assert proc.returncode == 0, proc.stderr
    target = Server(tmp_path / "target")
    try:
        proc = _run("import", str(out), "--url", target.url)
        assert proc.returncode == 0, proc.stderr
        params = {"since": "30d"}
        want = demo_server.client.get("/api/stats/overview", params=params).json()["totals"]
        target.wait_calls(want["calls"], timeout=20)
        got = target.client.get("/api/stats/overview", params=params).json()["totals"]
        for key in ("calls", "errors", "input_tokens", "output_tokens"):
            assert got[key] == want[key], key
        assert got["cost_usd"] == pytest.approx(want["cost_usd"])
        assert got["latency_ms"] == pytest.approx(want["latency_ms"])
        one = demo_server.client.get("/api/calls", params={"limit": 1, "full": "true"}).json()
        copy = target.client.get(f"/api/calls/{one['items'][0]['id']}").json()
        assert copy["input_messages"] == one["items"][0]["input_messages"]
    finally:
        target.stop()


def test_import_rejects_what_is_not_a_call(demo_server: Server, tmp_path: Path):
    r = demo_server.client.post("/api/import", content=b'{"id": "x"}\n')
    assert r.status_code == 400 and "line 1" in r.json()["detail"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    proc = _run("import", str(bad), "--url", demo_server.url)
    assert proc.returncode == 1 and "line 1" in proc.stderr


def test_ctrl_c_mid_run_exits_0_and_stores_everything(tmp_path: Path):
    data = tmp_path / "d"
    port = free_port()
    proc = subprocess.Popen(
        [*GENSIGHT, "demo", "--quiet", "--port", str(port), "--data-dir", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # mid-run: once the demo's server has accepted traffic, and with calls in flight
    deadline = time.monotonic() + 60
    accepted = 0
    while time.monotonic() < deadline and accepted < 20:
        time.sleep(0.5)
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json()
            accepted = health["queue"]["accepted"]
        except (httpx.HTTPError, ValueError, KeyError):
            continue
    assert accepted >= 20, "the demo never got going"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    m = re.search(r"stored (\d+) of (\d+) records it accepted \((\d+) dropped\)", out)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) > 0 and m.group(3) == "0", out
    # a clean stop: no traceback, not even of the requests cut at exit
    assert "Traceback" not in err and "CancelledError" not in err, err[-3000:]
    # --quiet still says where the dashboard is; the summary counts requests and calls
    assert f"dashboard: http://127.0.0.1:{port}" in out, out
    summary = re.search(
        r"(\d+) requests sent \(gateway (\d+), SDK traces (\d+).*?(\d+) LLM calls", out
    )
    assert summary and int(summary.group(1)) > 0 and int(summary.group(4)) > 0, out
    srv = Server(data)
    try:
        assert srv.client.get("/api/health").json()["store"]["calls"] > 0
    finally:
        srv.stop()
