"""Prompt templates mined with drain3: prompts generated from known templates with
variables are recovered (≥95% of calls on their template's id), ids survive a restart
(the miner's state is in the store), and named prompts keep their names."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gensight.model.records import CallRecord
from gensight.model.settings import Settings
from gensight.store.clickhouse import ClickHouseStore
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from tests.support.stores import fresh_chdb_store

NOW = datetime.now(UTC).replace(microsecond=0)
NAMES = ["Alice", "Bob", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivan", "Julia"]
CITIES = ["Paris", "Lagos", "Osaka", "Lima", "Oslo", "Cairo", "Quito", "Hanoi", "Perth", "Turin"]
PRODUCTS = ["kettle", "blender", "toaster", "lamp", "router", "headset", "monitor", "drill"]

SUPPORT = "You are a polite support agent for an online shop. Answer in two sentences."
#: (system, user template); variables in braces
TEMPLATES = [
    (SUPPORT, "Customer {name} asks where order {order} is; it shipped on {date}."),
    (SUPPORT, "Customer {name} wants to return the {product} bought in {city}."),
    (None, "Translate to French: the {product} is delivered to {city} by {name}."),
    (None, "Summarise the review of the {product} written by {name} from {city} in {n} words."),
    ("You write SQL for analysts.", "Count orders of {product} in {city} since {date}."),
]


def fill(template: str, rng: random.Random) -> str:
    return template.format(
        name=rng.choice(NAMES),
        city=rng.choice(CITIES),
        product=rng.choice(PRODUCTS),
        order=f"A-{rng.randint(10000, 99999)}",
        date=f"2026-0{rng.randint(1, 9)}-{rng.randint(10, 28)}",
        n=rng.randint(20, 90),
    )


def generated(n_per: int, seed: int, start: int = 0) -> tuple[list[CallRecord], list[int]]:
    rng = random.Random(seed)
    calls, truth = [], []
    order = [k for k in range(len(TEMPLATES)) for _ in range(n_per)]
    rng.shuffle(order)
    for i, k in enumerate(order, start=start):
        system, user = TEMPLATES[k]
        calls.append(
            CallRecord(
                id=f"t{i:05d}", trace_id=f"{i:032x}", span_id=f"{i:016x}",
                ts=NOW - timedelta(minutes=50) + timedelta(seconds=i), duration_ms=100.0 + 50 * k,
                source="otlp", app="shop", provider="openai", operation="chat",
                request_model="gpt-4o-mini", input_tokens=100 * (k + 1), output_tokens=20,
                cost_usd=0.001 * (k + 1), cost_source="computed",
                status="error" if (k == 3 and i % 4 == 0) else "ok",
                system_instructions=[{"role": "system", "content": system}] if system else None,
                input_messages=[{"role": "user", "content": fill(user, rng)}],
            )
        )  # fmt: skip
        truth.append(k)
    return calls, truth


def assigned(calls: list[CallRecord], truth: list[int]) -> tuple[float, dict[int, str]]:
    """Share of calls on their template's majority id, and those ids (distinct)."""
    by_truth: dict[int, Counter] = {}
    for c, k in zip(calls, truth, strict=True):
        by_truth.setdefault(k, Counter())[c.template_id] += 1
    majority = {k: cnt.most_common(1)[0][0] for k, cnt in by_truth.items()}
    assert len(set(majority.values())) == len(TEMPLATES), majority
    right = sum(c.template_id == majority[k] for c, k in zip(calls, truth, strict=True))
    return right / len(calls), majority


@pytest.fixture(params=["duckdb", "chdb"])
def stores(request, tmp_path: Path, chdb_path: Path):
    """(the first store, a function opening it again after the server closed it)."""
    if request.param == "duckdb":
        return DuckDBStore(tmp_path / "t.duckdb"), lambda: DuckDBStore(tmp_path / "t.duckdb")
    first = fresh_chdb_store(chdb_path)
    first.client.command("TRUNCATE TABLE template_state")
    return first, lambda: ClickHouseStore.from_url(f"chdb://{chdb_path}")


def stored_ids(client: TestClient, calls: list[CallRecord]) -> None:
    """Read each call's stored ``template_id`` back onto it."""
    items = client.get("/api/calls", params={"limit": 1000, "since": "2h"}).json()["items"]
    by_id = {c["id"]: c["template_id"] for c in items}
    for c in calls:
        c.template_id = by_id[c.id]


def _serve(store, tmp_path: Path) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path / "data"), store=store))


def test_templates_are_recovered_and_survive_a_restart(stores, tmp_path: Path):
    calls, truth = generated(40, seed=7)
    store, reopen = stores
    with _serve(store, tmp_path) as client:
        pipeline = client.app.state.pipeline
        for i in range(0, len(calls), 25):  # incrementally, batch by batch
            assert pipeline.submit(calls[i : i + 25])
            assert pipeline.flush(30)
        stored_ids(client, calls)
        share, ids = assigned(calls, truth)
        assert share >= 0.95
        body = client.get("/api/analysis/templates", params={"since": "2h"}).json()
    counts = {t["template_id"]: t for t in body["items"]}
    assert body["untemplated_calls"] == 0
    for tid in ids.values():
        t = counts[tid]
        mine = [c for c, kk in zip(calls, truth, strict=True) if c.template_id == tid]
        assert t["calls"] == len(mine)
        assert t["cost_usd"] == pytest.approx(sum(c.cost_usd for c in mine))
        assert "<*>" in t["pattern"] or "<ID>" in t["pattern"]
    # the most costly template first; its error rate is the planted one
    assert body["items"][0]["template_id"] == ids[4]
    errors = counts[ids[3]]
    assert (
        errors["errors"] == sum(c.status == "error" for c in calls if c.template_id == ids[3])
        and errors["errors"] > 0
    )
    assert "return the" in counts[ids[1]]["pattern"]

    # a restart on the same store: new prompts of the same templates get the same ids
    store = reopen()
    more, more_truth = generated(10, seed=8, start=1000)
    with _serve(store, tmp_path) as client:
        assert client.app.state.pipeline.submit(more)
        assert client.app.state.pipeline.flush(30)
        stored_ids(client, more)
        share, again = assigned(more, more_truth)
        assert share >= 0.95 and again == ids
        one = client.get(f"/api/templates/{ids[0]}", params={"since": "2h"}).json()
        assert one["calls"] == sum(1 for c in [*calls, *more] if c.template_id == ids[0])
        assert len(one["samples"]) == 10 and all(s["template_id"] == ids[0] for s in one["samples"])
        listed = client.get("/api/calls", params={"template_id": ids[0], "limit": 1000}).json()
        assert len(listed["items"]) == one["calls"]
        grouped = client.get(
            "/api/stats/overview", params={"since": "2h", "group_by": "template"}
        ).json()
        assert {g["group"] for g in grouped["groups"]} == set(ids.values())
        assert client.get("/api/templates/nope", params={"since": "2h"}).status_code == 404


def test_named_prompts_keep_their_names(tmp_path: Path):
    store = DuckDBStore(tmp_path / "n.duckdb")
    c = CallRecord(
        id="n1", trace_id="1" * 32, span_id="1" * 16, ts=NOW - timedelta(minutes=1),
        duration_ms=5.0, source="otlp", operation="chat", request_model="gpt-4o-mini",
        input_messages=[{"role": "user", "content": "hello"}],
        attributes={"gen_ai.prompt.name": "greeting", "gen_ai.prompt.version": "3"},
    )  # fmt: skip
    bare = CallRecord(id="n2", trace_id="2" * 32, span_id="2" * 16, ts=NOW - timedelta(minutes=1),
                      duration_ms=5.0, source="otlp", operation="chat")  # fmt: skip
    with _serve(store, tmp_path) as client:
        assert client.app.state.pipeline.submit([c, bare])
        assert client.app.state.pipeline.flush(30)
        body = client.get("/api/analysis/templates", params={"since": "1h"}).json()
    assert [(t["template_id"], t["named"], t["calls"]) for t in body["items"]] == [
        ("greeting@3", True, 1)
    ]
    assert body["untemplated_calls"] == 1
