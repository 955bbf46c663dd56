"""anthropic (SDK spans, OpenLLMetry, both), openai-agents via OpenInference and the Vercel AI
SDK on Node → a running `gensight serve` → what a user checks in the API.

Each producer runs in its own environment (tests/producers/envs.py: a uv venv, or ``npm ci``
of tests/producers/node) against a fake upstream and exports OTLP/HTTP to Gensight. Set
GENSIGHT_SKIP_PRODUCERS=1 to skip on a machine without PyPI/npm access.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from tests.support.server import Server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "producers"))

from run_more import VARIANTS, MoreVariant, run_variant  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("GENSIGHT_SKIP_PRODUCERS") == "1", reason="GENSIGHT_SKIP_PRODUCERS=1"
)
_BY_NAME = {v.name: v for v in VARIANTS}


def _run(variant: MoreVariant, tmp_path: Path, n: int) -> tuple[Server, list[dict], object]:
    if variant.producer == "vercel-ai" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    srv = Server(tmp_path / "data")
    capture, proc = run_variant(variant, otlp=srv.url)
    assert proc.returncode == 0, proc.stderr[-4000:]
    calls = sorted(srv.wait_calls(n, timeout=20), key=lambda c: c["ts"])
    return srv, calls, capture.upstream_log


def _price(model: str, provider: str, **usage: int) -> float:
    return float(calc_price(Usage(**usage), model_ref=model, provider_id=provider).total_price)


@pytest.mark.parametrize("name", ["anthropic", "anthropic-openllmetry-content"])
def test_anthropic_through_gensight(name: str, tmp_path: Path) -> None:
    variant = _BY_NAME[name]
    srv, calls, log = _run(variant, tmp_path, 7)
    try:
        assert len(calls) == 7
        chat, stream, tool1, tool2, e429, e529, rag = calls
        sent = [e for e in log if e.status == 200]
        for call, ex in zip([chat, stream, tool1, tool2, rag], sent, strict=True):
            u = ex.usage
            cached = u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
            assert call["provider"] == "anthropic" and call["response_model"] == ex.body["model"]
            assert call["input_tokens"] == u["input_tokens"] + cached
            assert call["cache_read_tokens"] == u["cache_read_input_tokens"]
            assert call["cache_write_tokens"] == u["cache_creation_input_tokens"]
            assert call["response_id"] == ex.response["id"]
            if call is not stream or variant.sdk_spans:  # OpenLLMetry over-counts streams by 1
                assert call["output_tokens"] == u["output_tokens"]
                expected = _price(
                    ex.body["model"], "anthropic",
                    input_tokens=call["input_tokens"], output_tokens=u["output_tokens"],
                    cache_read_tokens=u["cache_read_input_tokens"],
                    cache_write_tokens=u["cache_creation_input_tokens"],
                )  # fmt: skip
                assert call["cost_usd"] == pytest.approx(expected)
                assert call["cost_source"] == "computed"
        assert chat["cache_read_tokens"] == 5 and chat["cache_write_tokens"] == 3
        assert [c["stream"] for c in calls] == [False, True, False, False, False, False, False]
        if variant.sdk_spans:
            assert stream["ttft_ms"] is not None and stream["ttft_ms"] > 0
            assert tool1["finish_reasons"] == ["tool_use"]
        assert [(c["status"], c["error_class"]) for c in (e429, e529)] == [
            ("error", "rate_limit"),
            ("error", "upstream_error"),
        ]
        one = srv.client.get(f"/api/calls/{chat['id']}").json()
        if variant.content:
            assert [m["content"] for m in one["input_messages"]] == [
                "Say hello to the observability team."
            ]
            assert one["output_messages"][0]["content"]
        else:
            assert one["input_messages"] is None and one["output_messages"] is None
        tree = srv.client.get(f"/api/traces/{rag['trace_id']}").json()
        assert {s["name"] for s in tree["spans"]} >= {"rag-request", "retrieve"}
        assert [c["id"] for c in tree["calls"]] == [rag["id"]]
    finally:
        srv.stop()


def test_anthropic_sdk_and_openllmetry_both_on_count_each_call_once(tmp_path: Path) -> None:
    srv, calls, log = _run(_BY_NAME["anthropic-both-content"], tmp_path, 7)
    try:
        time.sleep(2)  # every span of both producers is in
        calls = srv.client.get("/api/calls", params={"limit": 1000}).json()["items"]
        assert len(calls) == 7, [(c["producer"], c["response_id"]) for c in calls]
        ok = sorted((c for c in calls if c["status"] == "ok"), key=lambda c: c["ts"])
        sent = [e for e in log if e.status == 200]
        assert [c["response_id"] for c in ok] == [e.response["id"] for e in sent]
        for call, ex in zip(ok, sent, strict=True):  # the SDK's counts win over OpenLLMetry's
            assert call["output_tokens"] == ex.usage["output_tokens"]
        overview = srv.client.get("/api/stats/overview", params={"since": "1h"}).json()
        assert overview["totals"]["calls"] == 7
        assert overview["totals"]["input_tokens"] == sum(c["input_tokens"] or 0 for c in calls)
    finally:
        srv.stop()


@pytest.mark.parametrize("name", ["openai-agents", "openai-agents-content"])
def test_openai_agents_through_gensight(name: str, tmp_path: Path) -> None:
    variant = _BY_NAME[name]
    srv, calls, log = _run(variant, tmp_path, 5)
    try:
        assert len(calls) == 5  # agents, turns and tools are spans, not calls
        chat, stream, tool1, tool2, e429 = calls
        sent = [e for e in log if e.status == 200 and e.usage]
        for call, ex in zip([chat, stream, tool1, tool2], sent, strict=True):
            u = ex.usage
            assert (call["input_tokens"], call["output_tokens"]) == (
                u["prompt_tokens"],
                u["completion_tokens"],
            )
            assert call["provider"] == "openai" and call["request_model"] == "gpt-4o-mini"
            expected = _price("gpt-4o-mini", "openai", input_tokens=u["prompt_tokens"],
                              output_tokens=u["completion_tokens"])  # fmt: skip
            assert call["cost_usd"] == pytest.approx(expected)
        assert (e429["status"], e429["error_class"]) == ("error", "rate_limit")
        if variant.content:  # the stream shows only in the Response list of output.value
            assert [c["stream"] for c in calls] == [False, True, False, False, False]
            assert stream["response_id"] == sent[1].events()[0]["id"]
        tree = srv.client.get(f"/api/traces/{tool1['trace_id']}").json()
        assert {s["name"] for s in tree["spans"]} >= {"Agent workflow", "weather", "get_weather"}
        assert sorted(c["id"] for c in tree["calls"]) == sorted([tool1["id"], tool2["id"]])
    finally:
        srv.stop()


@pytest.mark.parametrize("name", ["vercel-ai", "vercel-ai-content"])
def test_vercel_ai_through_gensight(name: str, tmp_path: Path) -> None:
    variant = _BY_NAME[name]
    srv, calls, log = _run(variant, tmp_path, 7)
    try:
        assert len(calls) == 7  # only the do* spans: ai.generateText etc. are spans
        chat, stream, emb, tool1, tool2, e429, rag = calls
        sent = [e for e in log if e.status == 200]
        for call, ex in zip([chat, stream, emb, tool1, tool2, rag], sent, strict=True):
            u = ex.usage
            assert call["producer"] == "vercel-ai" and call["provider"] == "openai"
            assert call["input_tokens"] == u["prompt_tokens"]
            assert call["output_tokens"] == u.get("completion_tokens", 0)
            assert call["cost_source"] == "computed" and call["cost_usd"] > 0
            if call is not emb:
                rid = ex.events()[0]["id"] if ex.stream else ex.response["id"]
                assert call["response_id"] == rid
        tokens = {"input_tokens": chat["input_tokens"], "output_tokens": chat["output_tokens"]}
        expected = _price("gpt-4o-mini-2024-07-18", "openai", **tokens)
        assert chat["cost_usd"] == pytest.approx(expected)
        assert [c["stream"] for c in calls] == [False, True, False, False, False, False, False]
        assert stream["ttft_ms"] is not None and stream["ttft_ms"] > 0
        assert emb["operation"] == "embeddings" and emb["input_tokens"] == 3
        assert e429["status"] == "error"
        if variant.content:
            assert e429["error_class"] == "rate_limit"
        overview = srv.client.get("/api/stats/overview", params={"since": "1h"}).json()
        assert overview["totals"]["calls"] == 7
        assert overview["totals"]["input_tokens"] == sum(c["input_tokens"] or 0 for c in calls)
        tree = srv.client.get(f"/api/traces/{rag['trace_id']}").json()
        assert {s["name"] for s in tree["spans"]} >= {"rag-request", "retrieve", "ai.generateText"}
        assert [c["id"] for c in tree["calls"]] == [rag["id"]]
    finally:
        srv.stop()
