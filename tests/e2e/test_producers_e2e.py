"""Every real OTel GenAI producer → a running `gensight serve` → what a user checks in the API.

Each producer runs in its own virtualenv (tests/producers/envs.py builds them with uv,
cached under .cache/producer-envs), drives the real `openai` client against the faithful
fake upstream, and exports OTLP/HTTP to Gensight. Set GENSIGHT_SKIP_PRODUCERS=1 to skip
on a machine without PyPI access (CI has it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price

from tests.support.server import Server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "producers"))

from run import EXTENDED, VARIANTS, Variant, run_variant  # noqa: E402

pytestmark = pytest.mark.skipif(
    os.environ.get("GENSIGHT_SKIP_PRODUCERS") == "1", reason="GENSIGHT_SKIP_PRODUCERS=1"
)

#: Producers that say whether a call was streamed (openai-v2 does not, in either mode).
REPORTS_STREAM = {"openlit", "traceloop", "traceloop-legacy", "openinference"}


@pytest.mark.parametrize(
    "variant", [v for v in VARIANTS if v.producer not in EXTENDED], ids=lambda v: v.name
)
def test_producer_through_gensight(variant: Variant, tmp_path: Path) -> None:
    srv = Server(tmp_path / "data")
    try:
        capture, proc = run_variant(variant, otlp=srv.url)
        assert proc.returncode == 0, proc.stderr[-4000:]
        calls = srv.wait_calls(6, timeout=15)
        check_calls(srv, variant, calls, capture.upstream_log)
    finally:
        srv.stop()


def check_calls(srv: Server, variant: Variant, calls: list[dict], upstream_log) -> None:
    producer = variant.producer
    env = variant.env or producer
    assert len(calls) == 6, [c["request_model"] for c in calls]
    for c in calls:
        assert c["source"] == "otlp" and c["producer"] == producer
        assert c["provider"] == "openai"
        assert c["app"] == f"producer-{producer}"

    chats = sorted((c for c in calls if c["operation"] == "chat"), key=lambda c: c["ts"])
    (emb,) = [c for c in calls if c["operation"] == "embeddings"]
    ok = [c for c in chats if c["status"] == "ok"]
    failed = [c for c in chats if c["status"] == "error"]
    assert len(ok) == 3

    # tokens are what the upstream sent, in the order it sent them
    sent = [e for e in upstream_log if e.usage and e.usage_sent and e.status == 200]
    chat_usage = [e.usage for e in sent if e.path.endswith("chat/completions")]
    for call, usage in zip(ok, chat_usage, strict=True):
        if env == "traceloop-legacy" and call is ok[1]:  # it reports no usage for streams
            if not variant.content:  # nothing to count: no tokens, no price, not $0
                assert call["input_tokens"] is None and call["output_tokens"] is None
                assert call["cost_usd"] is None and call["cost_source"] == "unknown"
                continue
            # counted from the messages it recorded, marked estimated, and priced
            assert call["tokens_estimated"] is True
            assert call["input_tokens"] == pytest.approx(usage["prompt_tokens"], abs=8)
            assert call["output_tokens"] == pytest.approx(usage["completion_tokens"], abs=4)
            assert call["cost_source"] == "computed" and call["cost_usd"] > 0
            continue
        assert not call["tokens_estimated"]
        assert (call["input_tokens"], call["output_tokens"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        assert call["request_model"] == "gpt-4o-mini"
        assert call["response_model"] == "gpt-4o-mini-2024-07-18"
        expected = calc_price(
            Usage(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]),
            model_ref="gpt-4o-mini-2024-07-18",
            provider_id="openai",
        ).total_price
        assert call["cost_usd"] == pytest.approx(float(expected))
        assert call["cost_source"] == "computed"
    assert emb["input_tokens"] == 3 and emb["request_model"] == "text-embedding-3-small"
    assert emb["cost_usd"] is not None and emb["cost_usd"] > 0

    # streaming, where the producer tells
    if env in REPORTS_STREAM:
        assert [c["stream"] for c in ok] == [False, True, False]

    # failures and their classes
    assert [(c["error_class"], c["status"]) for c in failed] == [
        ("rate_limit", "error"),
        ("upstream_error", "error"),
    ]
    assert [c["id"] for c in srv.wait_calls(1, error_class="rate_limit")] == [failed[0]["id"]]

    # messages only when capture was on
    first = srv.client.get(f"/api/calls/{ok[0]['id']}").json()
    if variant.content:
        texts = [m["content"] for m in first["input_messages"]]
        assert "Say hello to the observability team." in texts
        assert first["output_messages"] and first["output_messages"][0]["content"]
        assert [c["id"] for c in srv.wait_calls(1, q="observability team")] == [ok[0]["id"]]
    else:
        assert first["input_messages"] is None and first["output_messages"] is None
        assert srv.client.get("/api/calls", params={"q": "hello"}).json()["items"] == []

    # the traced workflow is one tree: rag-request → retrieve, and → … → the LLM call
    rag_call = ok[-1]
    tree = srv.client.get(f"/api/traces/{rag_call['trace_id']}").json()
    spans = {s["span_id"]: s for s in tree["spans"]}
    by_name = {s["name"]: s for s in tree["spans"]}
    root = by_name["rag-request"]
    assert root["parent_span_id"] is None
    assert by_name["retrieve"]["parent_span_id"] == root["span_id"]
    node, chain = spans[rag_call["span_id"]], []
    while node["parent_span_id"]:
        chain.append(node["parent_span_id"])
        node = spans[node["parent_span_id"]]
    assert chain[-1] == root["span_id"]
    assert [c["id"] for c in tree["calls"]] == [rag_call["id"]]


#: what each extended producer sends about streams: (stream flag, time to first token)
SENDS_TTFT = {"mlflow"}


@pytest.mark.parametrize(
    "variant", [v for v in VARIANTS if v.producer in EXTENDED], ids=lambda v: v.name
)
def test_extended_producer_through_gensight(variant: Variant, tmp_path: Path) -> None:
    """MLflow, logfire, litellm: chat, stream, embedding, 429, 500, RAG chat, tool round trip."""
    srv = Server(tmp_path / "data")
    try:
        capture, proc = run_variant(variant, otlp=srv.url)
        assert proc.returncode == 0, proc.stderr[-4000:]
        calls = srv.wait_calls(8, timeout=15)
        check_extended(srv, variant, calls, capture.upstream_log)
    finally:
        srv.stop()


def check_extended(srv: Server, variant: Variant, calls: list[dict], upstream_log) -> None:
    producer = variant.producer
    assert len(calls) == 8, [(c["operation"], c["request_model"]) for c in calls]
    for c in calls:
        assert (c["source"], c["producer"], c["provider"]) == ("otlp", producer, "openai")
        assert c["app"] == f"producer-{producer}" and c["environment"] == "test"
    calls = sorted(calls, key=lambda c: c["ts"])
    (emb,) = [c for c in calls if c["operation"] == "embeddings"]
    chats = [c for c in calls if c["operation"] == "chat"]
    ok = [c for c in chats if c["status"] == "ok"]
    failed = [c for c in chats if c["status"] == "error"]
    assert len(ok) == 5 and len(chats) == 7

    # tokens and ids are what the upstream sent, in its order; cost is genai-prices'
    answered = [e for e in upstream_log if e.status == 200 and e.path.endswith("chat/completions")]
    assert len(answered) == 5
    for call, ex in zip(ok, answered, strict=True):
        assert (call["input_tokens"], call["output_tokens"]) == (
            ex.usage["prompt_tokens"],
            ex.usage["completion_tokens"],
        )
        upstream_id = ex.events()[0]["id"] if ex.stream else ex.response["id"]
        assert call["response_id"] == upstream_id
        assert call["request_model"] == "gpt-4o-mini"
        assert call["response_model"] in ("gpt-4o-mini-2024-07-18", "gpt-4o-mini")
        expected = calc_price(
            Usage(
                input_tokens=ex.usage["prompt_tokens"], output_tokens=ex.usage["completion_tokens"]
            ),
            model_ref=call["response_model"],
            provider_id="openai",
        ).total_price
        assert call["cost_usd"] == pytest.approx(float(expected))
        assert call["cost_source"] == "computed"
    assert (emb["input_tokens"], emb["request_model"]) == (3, "text-embedding-3-small")
    assert emb["cost_usd"] is not None and emb["cost_usd"] > 0

    # every one of them says which call streamed; one record for it
    assert [c["stream"] for c in ok] == [False, True, False, False, False]
    streamed = ok[1]
    if producer in SENDS_TTFT:
        assert 0 < streamed["ttft_ms"] <= streamed["duration_ms"]
    else:
        assert all(c["ttft_ms"] is None for c in calls)
    if producer == "logfire":
        # its two spans (request, "streaming response") are one call lasting from the
        # request's start to the last chunk, longer than the log span's own `duration`
        detail = srv.client.get(f"/api/calls/{streamed['id']}").json()
        assert detail["attributes"]["logfire.request_span_id"]
        assert streamed["duration_ms"] > detail["attributes"]["duration"] * 1000

    assert [(c["error_class"], c["http_status"]) for c in failed] == [
        ("rate_limit", 429),
        ("upstream_error", 500),
    ]
    assert [c["id"] for c in srv.wait_calls(1, error_class="rate_limit")] == [failed[0]["id"]]

    # messages when the producer sends them, tool calls included
    first = srv.client.get(f"/api/calls/{ok[0]['id']}").json()
    tool_call = srv.client.get(f"/api/calls/{ok[3]['id']}").json()
    if variant.content:
        assert "Say hello to the observability team." in [
            m["content"] for m in first["input_messages"]
        ]
        assert first["output_messages"][0]["content"]
        (tc,) = tool_call["output_messages"][0]["tool_calls"]
        assert (tc["name"], tc["arguments"]) == ("get_weather", '{"city":"Paris"}')
        assert tool_call["finish_reasons"] == ["tool_calls"]
    else:
        assert first["input_messages"] is None and first["output_messages"] is None

    # the dashboard's totals are the sum of these calls
    totals = srv.client.get("/api/stats/overview", params={"since": "1h"}).json()["totals"]
    assert totals["calls"] == 8 and totals["errors"] == 2
    assert totals["input_tokens"] == sum(c["input_tokens"] or 0 for c in calls)
    assert totals["cost_usd"] == pytest.approx(sum(c["cost_usd"] or 0 for c in calls))

    # the traced workflow is one tree: rag-request → retrieve, and → the LLM call
    rag_call = ok[2]
    tree = srv.client.get(f"/api/traces/{rag_call['trace_id']}").json()
    by_name = {s["name"]: s for s in tree["spans"]}
    root = by_name["rag-request"]
    assert root["parent_span_id"] is None
    assert by_name["retrieve"]["parent_span_id"] == root["span_id"]
    assert rag_call["parent_span_id"] == root["span_id"]
    assert [c["id"] for c in tree["calls"]] == [rag_call["id"]]
