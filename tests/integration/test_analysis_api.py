"""Stats and analysis API on a seeded DuckDB file with known values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gensight.model.records import CallRecord, SpanRecord
from gensight.model.settings import Settings
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from tests.support.stores import fresh_chdb_store

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # an hour boundary


def _call(i: int, **kw) -> CallRecord:
    base = dict(
        id=f"c{i:04d}",
        trace_id=f"{i:032x}",
        span_id=f"{i:016x}",
        ts=T0 + timedelta(minutes=i),
        duration_ms=100.0,
        source="otlp",
        app="shop",
        provider="openai",
        operation="chat",
        request_model="gpt-4o-mini",
        input_tokens=100,
        output_tokens=10,
        cost_usd=0.001,
        cost_source="computed",
    )
    base.update(kw)
    return CallRecord(**base)


@pytest.fixture(params=["duckdb", "chdb"])
def client(request, tmp_path: Path, chdb_path: Path):
    """The API over each store, seeded with the same records: answers must be identical."""
    if request.param == "duckdb":
        store = DuckDBStore(tmp_path / "seed.duckdb")
    else:
        store = fresh_chdb_store(chdb_path)
    calls = []
    # 20 calls of gpt-4o-mini in the first 20 minutes: latency 100..1950 ms = 100 + 100*k,
    # output tokens 10*k → exactly 10 ms per output token (1 s per 100 tokens)
    for k in range(20):
        calls.append(_call(k, duration_ms=100.0 + 100.0 * k, output_tokens=10 * (k + 1) - 10 or 1))
    # 10 calls of another model and app, 4 failing with rate limits, in minutes 60..69
    for k in range(10):
        calls.append(
            _call(
                100 + k,
                ts=T0 + timedelta(minutes=60 + k),
                app="search",
                request_model="gpt-4o",
                duration_ms=50.0,
                output_tokens=5,
                cost_usd=0.01,
                ttft_ms=20.0 + k,
                stream=True,
                status="error" if k < 4 else "ok",
                error_class="rate_limit" if k < 4 else None,
            )
        )
    # a trace: root 1000 ms, retrieval 300 ms (qdrant), the LLM call 600 ms
    spans = [
        SpanRecord(trace_id="f" * 32, span_id="a" * 16, name="handler", ts=T0, duration_ms=1000.0,
                   kind="server", app="shop"),
        SpanRecord(trace_id="f" * 32, span_id="b" * 16, parent_span_id="a" * 16, name="retrieve",
                   ts=T0, duration_ms=300.0, app="shop", attributes={"db.system": "qdrant"}),
        SpanRecord(trace_id="f" * 32, span_id="c" * 16, parent_span_id="a" * 16, name="chat",
                   ts=T0, duration_ms=600.0, app="shop", call_id="traced"),
    ]  # fmt: skip
    calls.append(
        _call(999, id="traced", trace_id="f" * 32, span_id="c" * 16, duration_ms=600.0, ts=T0,
              request_model="gpt-4.1", output_tokens=3)
    )  # fmt: skip
    store.write(calls, spans, [])
    app = create_app(Settings(data_dir=tmp_path), store=store)
    with TestClient(app) as c:
        yield c


RANGE = {"since": "2026-01-05T12:00:00Z", "until": "2026-01-05T14:00:00Z"}


def test_overview_totals_and_percentiles(client):
    body = client.get("/api/stats/overview", params={**RANGE, "app": "shop"}).json()
    t = body["totals"]
    assert t["calls"] == 21 and t["errors"] == 0 and t["error_rate"] == 0
    assert t["input_tokens"] == 2100
    assert t["cost_usd"] == pytest.approx(0.021)
    # durations 100..2000 step 100 plus 600: p50 of 21 values is the 11th smallest = 1000
    assert t["latency_ms"]["p50"] == pytest.approx(1000.0)
    body = client.get("/api/stats/overview", params={**RANGE, "app": "search"}).json()
    assert body["totals"]["errors"] == 4 and body["totals"]["error_rate"] == pytest.approx(0.4)
    assert body["totals"]["ttft_ms"]["p50"] == pytest.approx(24.5)


def test_overview_series_buckets_fill_the_range(client):
    body = client.get("/api/stats/overview", params={**RANGE, "interval": "30m"}).json()
    assert body["interval"] == 1800
    buckets = [(p["bucket"], p["calls"], p["errors"]) for p in body["series"]]
    assert buckets == [
        ("2026-01-05T12:00:00+00:00", 21, 0),
        ("2026-01-05T12:30:00+00:00", 0, 0),
        ("2026-01-05T13:00:00+00:00", 10, 4),
        ("2026-01-05T13:30:00+00:00", 0, 0),
    ]


def test_overview_auto_interval_and_group_by(client):
    body = client.get("/api/stats/overview", params={**RANGE, "group_by": "model"}).json()
    assert body["interval"] == 300  # 2 h / 60 buckets → the next nice width, 5 minutes
    per_model: dict[str, int] = {}
    for p in body["series"]:
        per_model[p["group"]] = per_model.get(p["group"], 0) + p["calls"]
    assert per_model == {"gpt-4o-mini": 20, "gpt-4o": 10, "gpt-4.1": 1}


def test_latency_vs_tokens_fit(client):
    body = client.get(
        "/api/analysis/latency-vs-tokens", params={**RANGE, "model": "gpt-4o-mini"}
    ).json()
    (fit,) = body["models"]
    assert fit["calls"] == 20
    assert fit["seconds_per_100_tokens"] == pytest.approx(1.0, rel=0.01)
    assert len(body["points"]) == 20


def test_correlations_error_lift(client):
    body = client.get("/api/analysis/correlations", params={**RANGE, "target": "error"}).json()
    assert body["total"] == 31 and body["target_total"] == 4
    top = {(i["attribute"], i["value"]): i for i in body["items"]}
    app = top[("app", "search")]
    # all 4 errors are in app=search, which has 10 of the 31 calls: lift = 1 / (10/31)
    assert app["lift"] == pytest.approx(3.1)
    assert app["target_count"] == 4 and app["count"] == 10
    assert ("app", "shop") not in top


def test_correlations_slow(client):
    body = client.get("/api/analysis/correlations", params={**RANGE, "target": "slow"}).json()
    assert body["threshold_ms"] > 1800
    assert body["target_total"] == 2  # the two slowest gpt-4o-mini calls


def test_dependencies_share_of_trace_time(client):
    body = client.get("/api/analysis/dependencies", params=RANGE).json()
    assert body["trace_ms"] == pytest.approx(1000.0)
    items = {i["downstream"]: i for i in body["items"]}
    assert items["db:qdrant"]["total_ms"] == pytest.approx(300.0)
    assert items["db:qdrant"]["share_of_trace_time"] == pytest.approx(0.3)
    assert items["openai/gpt-4.1"]["share_of_trace_time"] == pytest.approx(0.6)
    assert items["openai/gpt-4o"]["error_rate"] == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/api/stats/overview", {"interval": "fast"}, "interval"),
        ("/api/stats/overview", {"group_by": "planet"}, "group_by"),
        ("/api/analysis/correlations", {"target": "cheap"}, "target"),
        ("/api/analysis/latency-vs-tokens", {"points": "-1"}, "points"),
        ("/api/analysis/dependencies", {"since": "soon"}, "since"),
    ],
)
def test_bad_analysis_parameters(client, path, params, param):
    r = client.get(path, params=params)
    assert r.status_code == 400 and r.json()["param"] == param
