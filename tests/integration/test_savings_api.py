"""Where the money goes (issue #19) on seeded stores with known answers, both stores:
what-if prices checked against genai-prices' own ``calc_price``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from genai_prices import Usage, calc_price

from gensight.model.records import CallRecord
from gensight.model.settings import Settings
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from tests.support.stores import fresh_chdb_store

NOW = datetime.now(UTC).replace(microsecond=0)


def call(i: int, **kw) -> CallRecord:
    base = dict(
        id=f"c{i:05d}",
        trace_id=f"{i:032x}",
        span_id=f"{i:016x}",
        ts=NOW - timedelta(minutes=30) + timedelta(seconds=i),
        duration_ms=100.0,
        source="otlp",
        app="search",
        provider="openai",
        operation="chat",
        request_model="gpt-4o",
        input_tokens=1000,
        output_tokens=100,
        cost_usd=0.0035,
        cost_source="computed",
    )
    base.update(kw)
    return CallRecord(**base)


def usage_mix() -> list[CallRecord]:
    """search: 40 gpt-4o calls with varied usage, cache reads and reasoning; chat: 10
    claude calls; 3 unpriced calls of a self-hosted model."""
    calls = []
    for k in range(40):
        calls.append(
            call(
                k,
                input_tokens=500 + 37 * k,
                output_tokens=50 + 11 * k,
                cache_read_tokens=(100 + 5 * k) if k % 3 == 0 else None,
                reasoning_tokens=(20 + k) if k % 4 == 0 else None,
                cost_usd=0.001 * (k + 1),
            )
        )
    for k in range(10):
        calls.append(
            call(
                100 + k,
                app="chat",
                provider="anthropic",
                request_model="claude-3-5-haiku-latest",
                input_tokens=2000 + k,
                output_tokens=300,
                cache_write_tokens=1024 if k == 0 else None,
                cache_read_tokens=1024 if k else None,
                cost_usd=0.002,
            )
        )
    for k in range(3):
        calls.append(
            call(
                200 + k,
                app="local",
                provider="ollama",
                request_model="llama3",
                cost_usd=None,
                cost_source="unknown",
            )  # fmt: skip
        )
    return calls


@pytest.fixture(params=["duckdb", "chdb"])
def store(request, tmp_path: Path, chdb_path: Path):
    s = (
        DuckDBStore(tmp_path / "seed.duckdb")
        if request.param == "duckdb"
        else fresh_chdb_store(chdb_path)
    )
    yield s
    s.close()


@pytest.fixture
def client(store, tmp_path: Path):
    app = create_app(Settings(data_dir=tmp_path / "data"), store=store)
    with TestClient(app) as c:
        yield c


def expected(calls: list[CallRecord], model: str) -> float:
    """The target's cost of the calls, from genai-prices itself, call by call."""
    total = 0.0
    for c in calls:
        usage = Usage(
            input_tokens=c.input_tokens,
            output_tokens=c.output_tokens,
            cache_read_tokens=c.cache_read_tokens,
            cache_write_tokens=c.cache_write_tokens,
            output_reasoning_tokens=c.reasoning_tokens,
        )
        total += float(calc_price(usage, model, genai_request_timestamp=c.ts).total_price)
    return total


def test_what_if_matches_genai_prices_call_by_call(store, client):
    calls = usage_mix()
    store.write(calls, [], [])
    r = client.get(
        "/api/analysis/what-if", params={"as": "gpt-4o-mini,claude-3-5-haiku-latest", "since": "2h"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    t = body["totals"]
    assert t["calls"] == 53
    assert t["unpriced_calls"] == 3
    assert t["cost_usd"] == pytest.approx(sum(c.cost_usd or 0 for c in calls))
    mini, haiku = t["targets"]
    assert mini["model"] == "gpt-4o-mini"
    assert mini["cost_usd"] == pytest.approx(expected(calls, "gpt-4o-mini"), rel=1e-9)
    assert haiku["cost_usd"] == pytest.approx(expected(calls, "claude-3-5-haiku-latest"), rel=1e-9)
    assert mini["saving_usd"] is None  # unpriced calls: their real cost is unknown
    groups = {g["group"]: g for g in body["groups"]}
    g = groups["gpt-4o"]
    gpt4o = [c for c in calls if c.request_model == "gpt-4o" and c.app == "search"]
    assert g["calls"] == 40
    assert g["targets"][0]["cost_usd"] == pytest.approx(expected(gpt4o, "gpt-4o-mini"), rel=1e-9)
    assert g["targets"][0]["saving_usd"] == pytest.approx(
        g["cost_usd"] - g["targets"][0]["cost_usd"]
    )
    # same family: no tokenizer caveat; another vendor's model: an estimate
    assert g["targets"][0]["estimate"] is False and g["targets"][1]["estimate"] is True
    assert body["note"] == "estimate: token counts differ between tokenizers"


def test_what_if_filters_by_app_and_groups_by_app(store, client):
    calls = usage_mix()
    store.write(calls, [], [])
    r = client.get(
        "/api/analysis/what-if",
        params={"as": "gpt-4o-mini", "app": "chat", "group_by": "app", "since": "2h"},
    )
    body = r.json()
    assert [g["group"] for g in body["groups"]] == ["chat"]
    chat = [c for c in calls if c.app == "chat"]
    assert body["totals"]["targets"][0]["cost_usd"] == pytest.approx(
        expected(chat, "gpt-4o-mini"), rel=1e-9
    )


def test_what_if_refuses_unpriced_and_missing_targets(client):
    r = client.get("/api/analysis/what-if", params={"as": "my-own-llama"})
    assert r.status_code == 400
    assert r.json()["param"] == "as" and "my-own-llama" in r.json()["detail"]
    r = client.get("/api/analysis/what-if")
    assert r.status_code == 400 and r.json()["param"] == "as"
    r = client.get("/api/analysis/what-if", params={"as": "gpt-4o-mini", "group_by": "colour"})
    assert r.status_code == 400 and r.json()["param"] == "group_by"


def test_analysis_page_shows_what_if(store, client):
    store.write(usage_mix(), [], [])
    page = client.get("/analysis", params={"since": "2h", "as": "gpt-4o-mini"})
    assert page.status_code == 200
    api = client.get("/api/analysis/what-if", params={"since": "2h", "as": "gpt-4o-mini"}).json()
    mini = api["totals"]["targets"][0]["cost_usd"]
    assert (
        f"on gpt-4o-mini: ${mini:.4f}" in page.text or f"on gpt-4o-mini: ${mini:.6f}" in page.text
    )
    bad = client.get("/analysis", params={"since": "2h", "as": "nope-model"})
    assert bad.status_code == 200 and "no price for &#39;nope-model&#39;" in bad.text


# -- cache opportunities ------------------------------------------------------------------

SYSTEM = " ".join(f"rule{i} applies to every order." for i in range(400))  # ~2,000 tokens


def chat(i: int, minutes: float, app: str, question: str, **kw) -> CallRecord:
    system = kw.pop("system", None)
    c = call(
        i,
        ts=NOW - timedelta(hours=3) + timedelta(minutes=minutes),
        app=app,
        input_messages=[{"role": "user", "content": question}],
        system_instructions=[{"role": "system", "content": system}] if system else None,
        output_messages=[{"role": "assistant", "content": "ok"}],
        **kw,
    )
    return c


def planted() -> list[CallRecord]:
    calls: list[CallRecord] = []
    n = 0
    # faq: 5 questions each asked 4 times within 10 minutes → 15 response-cache hits
    for q in range(5):
        for k in range(4):
            calls.append(chat(n, q * 20 + k * 3, "faq", f"what is the refund policy {q}?",
                              request_model="gpt-4o-mini", cost_usd=0.002))  # fmt: skip
            n += 1
    # the same question two hours later: the entry expired (window 1h), no hit
    calls.append(chat(n, 170, "faq", "what is the refund policy 0?",
                      request_model="gpt-4o-mini", cost_usd=0.002))  # fmt: skip
    n += 1
    # same messages, another temperature: another request
    calls.append(chat(n, 1, "faq", "what is the refund policy 0?", temperature=0.9,
                      request_model="gpt-4o-mini", cost_usd=0.002))  # fmt: skip
    n += 1
    # support: a long system prompt, 10 calls a minute apart, never cached → 9 would hit
    for k in range(10):
        calls.append(chat(n, 30 + k, "support", f"order {k} is late", system=SYSTEM,
                          input_tokens=3000, output_tokens=50))  # fmt: skip
        n += 1
    # writer: the same prompt on Anthropic (cache writes cost extra), 4 calls → 3 hits
    for k in range(4):
        calls.append(chat(n, 60 + k, "writer", f"draft {k}", system=SYSTEM, provider="anthropic",
                          request_model="claude-3-5-haiku-latest", input_tokens=3000,
                          output_tokens=50))  # fmt: skip
        n += 1
    # cached: calls that did read the cache (realised)
    for k in range(3):
        calls.append(chat(n, 90 + k, "cached", f"again {k}", system=SYSTEM,
                          input_tokens=3000, output_tokens=50, cache_read_tokens=1024))  # fmt: skip
        n += 1
    # short: a short shared prefix (below 1,024 tokens) is no prompt-caching candidate
    for k in range(5):
        calls.append(chat(n, 120 + k, "short", f"hi {k}", system="Be brief."))
        n += 1
    return calls


def write_through_pipeline(client: TestClient, calls: list[CallRecord]) -> None:
    pipeline = client.app.state.pipeline
    assert pipeline.submit(calls)
    assert pipeline.flush(30)


def test_cache_opportunities_find_planted_duplicates_and_prefixes(client):
    write_through_pipeline(client, planted())
    r = client.get("/api/analysis/cache", params={"since": "6h"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["calls"] == body["fingerprinted_calls"] == 44
    rc = body["response_cache"]
    assert rc["hits"] == 15
    assert rc["saving_usd"] == pytest.approx(15 * 0.002)
    assert [(p["app"], p["model"], p["hits"]) for p in rc["by_app_model"]] == [
        ("faq", "gpt-4o-mini", 15)
    ]
    assert len(rc["top_requests"]) == 5
    pc = body["prompt_cache"]
    by = {p["app"]: p for p in pc["prefixes"]}
    assert set(by) == {"support", "writer"}  # short prefixes and cached calls are not listed
    support = by["support"]
    tokens = support["prefix_tokens"]
    assert 2000 < tokens < 3000  # estimated offline
    assert support["would_hit"] == 9 and support["uncached_calls"] == 10
    # gpt-4o: input $2.50, cache reads $1.25 per million
    assert support["net_saving_usd"] == pytest.approx(9 * tokens * 1.25e-6, rel=1e-9)
    writer = by["writer"]
    assert writer["would_hit"] == 3
    # claude-3-5-haiku: input $0.80, cache reads $0.08, cache writes $1.00 per million
    assert writer["write_premium_usd"] == pytest.approx(tokens * 0.2e-6, rel=1e-9)
    assert writer["net_saving_usd"] == pytest.approx(
        3 * tokens * 0.72e-6 - tokens * 0.2e-6, rel=1e-9
    )
    assert "cache_control" in writer["mechanism"]
    assert pc["realised"] == [
        {"app": "cached", "calls": 3, "cache_read_tokens": 3072,
         "saving_usd": pytest.approx(3 * 1024 * 1.25e-6)}
    ]  # fmt: skip
    r = client.get("/api/analysis/cache", params={"since": "6h", "window": "nonsense"})
    assert r.status_code == 400 and r.json()["param"] == "window"


def test_gateway_fingerprints_requests_even_with_metadata_only_capture(tmp_path: Path, upstream):
    """Through a real server and the real openai client: equal requests share a hash, no
    text is stored, and the response cache counts the repeats."""
    import openai

    from tests.support.server import Server

    srv = Server(tmp_path / "data", "--upstream", f"openai={upstream.state.url}",
                 "--flush-interval", "0.05", "--capture", "metadata")  # fmt: skip
    try:
        client = openai.OpenAI(base_url=f"{srv.url}/openai/v1", api_key="sk-test", max_retries=0,
                               default_headers={"X-Gensight-App": "meta"})  # fmt: skip
        ask = [{"role": "system", "content": "You answer in French."},
               {"role": "user", "content": "Where is my parcel 42?"}]  # fmt: skip
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o-mini", messages=ask, temperature=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=ask, temperature=1)
        calls = srv.wait_calls(4, app="meta")
        full = [srv.client.get(f"/api/calls/{c['id']}").json() for c in calls]
        assert all(c["input_messages"] is None and c["system_instructions"] is None for c in full)
        hashes = [c["request_hash"] for c in sorted(full, key=lambda c: c["ts"])]
        assert hashes[0] == hashes[1] == hashes[2] != hashes[3]
        assert all(len(h) == 32 for h in hashes)
        assert all(c["prefix_hash"] == full[0]["prefix_hash"] for c in full)  # one system prompt
        body = srv.client.get("/api/analysis/cache", params={"app": "meta"}).json()
        assert body["response_cache"]["hits"] == 2
        in_order = sorted(full, key=lambda c: c["ts"])[:3]  # the first fills the cache
        saved = sum(c["cost_usd"] for c in in_order[1:])
        assert body["response_cache"]["saving_usd"] == pytest.approx(saved, rel=1e-9)
    finally:
        srv.stop()


def test_analysis_page_shows_cache_savings(client):
    write_through_pipeline(client, planted())
    page = client.get("/analysis", params={"since": "6h"})
    api = client.get("/api/analysis/cache", params={"since": "6h"}).json()
    assert page.status_code == 200
    assert 'id="response-cache-table"' in page.text
    assert f"{api['response_cache']['hits']} repeated requests" in page.text
    assert "support" in page.text and "cache_control" in page.text
