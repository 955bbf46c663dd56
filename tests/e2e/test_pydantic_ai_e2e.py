"""pydantic-ai agents (``Agent.instrument_all``, its own venv) → a running `gensight
serve` over OTLP: exactly one record per model request, with the upstream's tokens.

The driver (tests/producers/drive_pydantic_ai.py) runs a plain question, a tool round
trip (two model requests and an ``execute_tool`` span), a streamed run, an embedding and
a run failing with 429: six model requests under four ``invoke_agent`` spans that carry
the runs' aggregated usage, which must not be counted again. Set
GENSIGHT_SKIP_PRODUCERS=1 to skip on a machine without PyPI access.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from tests.support.server import STORES, Server, store_args

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "producers"))

from run import AGENT_VARIANTS, Variant, run_variant  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("GENSIGHT_SKIP_PRODUCERS") == "1", reason="GENSIGHT_SKIP_PRODUCERS=1"
)

PYDANTIC_AI = [v for v in AGENT_VARIANTS if v.producer == "pydantic-ai"]


@pytest.mark.parametrize("store", STORES)
@pytest.mark.parametrize("variant", PYDANTIC_AI, ids=lambda v: v.name)
def test_pydantic_ai_one_record_per_model_request(
    variant: Variant, store: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    srv = Server(data, *store_args(store, data))
    try:
        capture, proc = run_variant(variant, otlp=srv.url)
        assert proc.returncode == 0, proc.stderr[-4000:]
        log = capture.upstream_log
        requests = [e for e in log if e.path.endswith(("chat/completions", "embeddings"))]
        assert len(requests) == 6
        calls = srv.wait_calls(len(requests), timeout=15)
        time.sleep(0.5)  # anything more (an agent span taken for a call) would show now
        calls = srv.client.get("/api/calls", params={"limit": 100}).json()["items"]
        assert len(calls) == len(requests), [(c["operation"], c["request_model"]) for c in calls]
        for c in calls:
            assert c["producer"] == "pydantic-ai" and c["provider"] == "openai"
            assert c["app"] == "producer-pydantic-ai"

        # tokens: what the upstream sent, call by call, in order
        ok = sorted((c for c in calls if c["status"] == "ok"), key=lambda c: c["ts"])
        sent = [e for e in requests if e.status == 200]
        assert len(ok) == len(sent) == 5
        for call, exchange in zip(ok, sent, strict=True):
            usage = exchange.usage
            assert call["input_tokens"] == usage["prompt_tokens"]
            if call["operation"] == "embeddings":
                assert call["output_tokens"] == 0
                continue
            assert call["output_tokens"] == usage["completion_tokens"]
            assert call["stream"] is exchange.stream
            expected = calc_price(
                Usage(input_tokens=usage["prompt_tokens"],
                      output_tokens=usage["completion_tokens"]),
                model_ref=call["response_model"],
                provider_id="openai",
            ).total_price  # fmt: skip
            assert call["cost_source"] == "computed"
            assert call["cost_usd"] == pytest.approx(float(expected))
        assert [c["operation"] for c in ok].count("embeddings") == 1

        # the streamed run: TTFT from pydantic-ai's time_to_first_chunk, within the call
        (streamed,) = [c for c in calls if c["stream"]]
        assert streamed["ttft_ms"] is not None
        assert 0 < streamed["ttft_ms"] <= streamed["duration_ms"]
        assert all(c["ttft_ms"] is None for c in calls if not c["stream"])

        # the 429: one failed call, classified
        (failed,) = [c for c in calls if c["status"] == "error"]
        assert failed["error_class"] == "rate_limit"

        # totals count each call once (the agents' aggregated usage is not added)
        totals = srv.client.get("/api/stats/overview").json()["totals"]
        assert totals["calls"] == 6
        assert totals["input_tokens"] == sum(e.usage["prompt_tokens"] for e in sent)
        assert totals["cost_usd"] == pytest.approx(sum(c["cost_usd"] or 0 for c in calls))

        # the tool round trip is one trace: agent → chat, tool, chat; the tool is a span
        tool_traces = [c["trace_id"] for c in calls if c["finish_reasons"] == ["tool_call"]]
        (trace_id,) = tool_traces
        tree = srv.client.get(f"/api/traces/{trace_id}").json()
        kinds = sorted(s["name"].split(" ")[0] for s in tree["spans"])
        assert kinds == ["chat", "chat", "execute_tool", "invoke_agent"]
        assert len(tree["calls"]) == 2
        agent = next(s for s in tree["spans"] if s["name"].startswith("invoke_agent"))
        assert agent.get("call_id") is None
        agg = agent["attributes"]["gen_ai.aggregated_usage.input_tokens"]
        assert agg == sum(c["input_tokens"] for c in tree["calls"])
    finally:
        srv.stop()
