"""Repricing stored calls (#19 item 5) on both stores: after the prices file changes,
``POST /api/reprice`` (what ``gensight reprice`` calls) moves exactly the affected calls
to the new prices, leaves the others alone, reports what changed, and a second run
changes nothing; ``model=`` and ``since=`` narrow it; a broken prices file is a 400."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gensight.model.records import CallRecord
from gensight.model.settings import Settings
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from tests.support.stores import fresh_chdb_store

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = '[models."my-llama"]\ninput = 1.0\noutput = 2.0\n'
NEW = OLD.replace("input = 1.0", "input = 3.0") + '[models."mystery"]\ninput = 1.0\noutput = 1.0\n'


def calls() -> list[CallRecord]:
    out = []
    for i, model in enumerate(["my-llama"] * 6 + ["gpt-4o"] * 4 + ["mystery"] * 3):
        out.append(CallRecord(
            id=f"p{i:03d}", trace_id=f"{i:032x}", span_id=f"{i:016x}",
            ts=NOW - timedelta(hours=1 + i * 5), duration_ms=10.0, source="gateway",
            app="shop", provider="openai", operation="chat", request_model=model,
            input_tokens=1000 * (i + 1), output_tokens=100 * (i + 1),
        ))  # fmt: skip
    return out


@pytest.fixture(params=["duckdb", "chdb"])
def client(request, tmp_path: Path, chdb_path: Path):
    prices = tmp_path / "prices.toml"
    prices.write_text(OLD)
    store = (
        DuckDBStore(tmp_path / "r.duckdb")
        if request.param == "duckdb"
        else fresh_chdb_store(chdb_path)
    )
    settings = Settings(data_dir=tmp_path / "data", prices=prices)
    with TestClient(create_app(settings, store=store)) as c:
        assert c.app.state.pipeline.submit(calls())
        assert c.app.state.pipeline.flush(30)
        c.prices = prices  # type: ignore[attr-defined]
        yield c


def stored(client: TestClient) -> dict[str, dict]:
    items = client.get("/api/calls", params={"since": "3d", "limit": 100}).json()["items"]
    return {c["id"]: c for c in items}


def test_reprice_moves_exactly_the_affected_calls(client):
    before = stored(client)
    llama = {i for i, c in before.items() if c["request_model"] == "my-llama"}
    mystery = {i for i, c in before.items() if c["request_model"] == "mystery"}
    assert all(before[i]["cost_source"] == "override" for i in llama)
    assert all(
        before[i]["cost_usd"] is None and before[i]["cost_source"] == "unknown" for i in mystery
    )
    # nothing changed yet: a run changes nothing
    same = client.post("/api/reprice").json()
    assert same["examined"] == 13 and same["changed"] == 0 and same["models"] == []
    client.prices.write_text(NEW)
    r = client.post("/api/reprice")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (
        body["changed"] == len(llama) + len(mystery) and body["unchanged"] == 13 - body["changed"]
    )
    by_model = {m["model"]: m for m in body["models"]}
    assert set(by_model) == {"my-llama", "mystery"}
    assert (
        by_model["mystery"]["unpriced_before"] == 3 and by_model["mystery"]["unpriced_after"] == 0
    )
    assert body["sources"] == {"override->override": len(llama), "unknown->override": len(mystery)}
    after = stored(client)
    for i, c in after.items():
        if i in llama or i in mystery:
            price_in = 3.0 if i in llama else 1.0
            price_out = 2.0 if i in llama else 1.0
            want = (c["input_tokens"] * price_in + c["output_tokens"] * price_out) / 1e6
            assert c["cost_usd"] == pytest.approx(want) and c["cost_source"] == "override"
        else:  # gpt-4o: untouched, every other field too
            assert c == before[i]
    assert by_model["my-llama"]["after_usd"] == pytest.approx(
        sum(after[i]["cost_usd"] for i in llama)
    )
    assert by_model["my-llama"]["before_usd"] == pytest.approx(
        sum(before[i]["cost_usd"] for i in llama)
    )
    # the totals follow, each call counted once
    totals = client.get("/api/stats/overview", params={"since": "3d"}).json()["totals"]
    assert totals["calls"] == 13 and totals["unpriced_calls"] == 0
    assert totals["cost_usd"] == pytest.approx(sum(c["cost_usd"] for c in after.values()))
    store = client.app.state.store
    if store.dialect.name == "duckdb":  # the writer's rollups moved with the rewritten calls
        for table in ("rollup_calls_all", "rollup_calls_model"):
            (cost,) = store._cursor().execute(f"SELECT sum(cost_usd) FROM {table}").fetchone()
            assert float(cost) == pytest.approx(totals["cost_usd"]), table
    # idempotent
    again = client.post("/api/reprice").json()
    assert again["changed"] == 0 and again["examined"] == 13


def test_reprice_narrowed_by_model_and_since_and_a_bad_file(client):
    client.prices.write_text(NEW)
    only = client.post("/api/reprice", params={"model": "mystery"}).json()
    assert only["examined"] == 3 and only["changed"] == 3
    recent = client.post("/api/reprice", params={"since": "12h"}).json()
    # the last 12 hours hold calls 0-2 (1h, 6h, 11h ago), all my-llama
    assert recent["examined"] == 3 and recent["changed"] == 3
    rest = client.post("/api/reprice").json()  # the older llama calls
    assert rest["changed"] == 3 and {m["model"] for m in rest["models"]} == {"my-llama"}
    client.prices.write_text("[models.broken]\ninput = -1\n")
    bad = client.post("/api/reprice")
    assert bad.status_code == 400 and "prices" in bad.text
    # nothing was rewritten by the failed run: back to the same prices, nothing to change
    client.prices.write_text(NEW)
    assert client.post("/api/reprice").json()["changed"] == 0
