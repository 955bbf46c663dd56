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
