"""The server stays lean (issue #18): what a DuckDB server imports, and genai-prices'
data loaded from cached bytecode prices exactly as genai-prices does."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import genai_prices.data
from genai_prices import Usage
from genai_prices.data_snapshot import DataSnapshot

from gensight.enrich import price_data
from gensight.enrich.pricing import Pricer

ROOT = Path(__file__).resolve().parents[2]
TS = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)

#: (provider, model, usage): plain, cached, tiered (over 200k / 128k input), 1-hour
#: cache writes' model, reasoning, and a time-of-day price (DeepSeek).
SAMPLES = [
    ("openai", "gpt-4o", dict(input_tokens=10_000, output_tokens=500, cache_read_tokens=4000)),
    ("openai", "gpt-4o-mini-2024-07-18", dict(input_tokens=1200, output_tokens=300)),
    ("openai", "o3-mini", dict(input_tokens=100, output_tokens=1000, reasoning_tokens=900)),
    (
        "anthropic",
        "claude-3-5-sonnet-20241022",
        dict(
            input_tokens=20_000, output_tokens=500, cache_read_tokens=8000, cache_write_tokens=4000
        ),
    ),
    (
        "anthropic",
        "claude-sonnet-4-5-20250929",
        dict(
            input_tokens=250_000,
            output_tokens=900,
            cache_read_tokens=100_000,
            cache_write_tokens=50_000,
        ),
    ),
    ("gcp.gemini", "gemini-1.5-pro", dict(input_tokens=150_000, output_tokens=1000)),
    ("gcp.vertex_ai", "gemini-2.0-flash", dict(input_tokens=1000, output_tokens=1000)),
    (
        "deepseek",
        "deepseek-chat",
        dict(input_tokens=5000, output_tokens=700, cache_read_tokens=2000),
    ),
    (
        "aws.bedrock",
        "anthropic.claude-3-haiku-20240307-v1:0",
        dict(input_tokens=900, output_tokens=90),
    ),
]

_SERVE_PATH = """
import json, sys
from pathlib import Path
from gensight.web.app import create_app
from gensight.model.settings import Settings
from gensight.model.records import CallRecord
from datetime import datetime, UTC

data_dir = Path(sys.argv[1])
samples = json.loads(sys.argv[2])
app = create_app(Settings(data_dir=data_dir))
store, pricer = app.state.store, app.state.pricer
call = CallRecord(id="c1", trace_id="t1", span_id="s1", ts=datetime.now(UTC), duration_ms=5.0,
                  source="otlp", provider="openai", request_model="gpt-4o", input_tokens=10,
                  output_tokens=5)
pricer.price(call)
store.write([call], [], [])
assert store.get_call("c1")["cost_usd"] == call.cost_usd > 0
ts = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
costs = [pricer.cost(provider=p, model=m, ts=ts, **u) for p, m, u in samples]
print(json.dumps({
    "modules": sorted(sys.modules),
    "price_data": sys.modules["genai_prices.data"].__spec__.origin,
    "costs": costs,
}))
"""


def _serve_path(tmp_path: Path) -> dict:
    """Build the DuckDB server's app, write and price one call, in a fresh interpreter
    that has no bytecode for genai-prices' data (as a read-only install without it)."""
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPYCACHEPREFIX": str(tmp_path / "no-pycache"),
    }
    out = subprocess.run(
        [sys.executable, "-c", _SERVE_PATH, str(tmp_path / "data"), json.dumps(SAMPLES)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_duckdb_server_imports_no_heavy_modules(tmp_path: Path) -> None:
    found = _serve_path(tmp_path)
    heavy = {"pandas", "chdb", "clickhouse_connect", "grpc"}
    loaded = {m.partition(".")[0] for m in found["modules"]} & heavy
    assert loaded == set(), f"a DuckDB server without --grpc imported {sorted(loaded)}"
    # genai-prices' 1.6 MB data module came from the cached bytecode, not its source
    assert found["price_data"].startswith(str(tmp_path / "data" / "cache"))
    assert found["price_data"].endswith(".pyc")
    # ... and prices every sample exactly as the usual import does
    plain = Pricer()
    want = [list(plain.cost(provider=p, model=m, ts=TS, **u)) for p, m, u in SAMPLES]
    assert found["costs"] == want
    assert all(cost is not None and cost > 0 for cost, _ in want)
    assert {source for _, source in want} == {"computed"}


def test_cached_price_data_is_genai_prices_own(tmp_path: Path, monkeypatch) -> None:
    """The cached bytecode holds the same providers, and genai-prices' own calculation
    gives the same price for each sample from it (tiers, cache reads and writes)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "no-pycache"))
    pyc = price_data.cached_bytecode(tmp_path / "cache")
    assert pyc is not None and pyc.exists()
    assert price_data.cached_bytecode(tmp_path / "cache") == pyc  # compiled once
    name = "genai_prices._gensight_cached_data"
    loader = importlib.machinery.SourcelessFileLoader(name, str(pyc))
    spec = importlib.util.spec_from_file_location(name, str(pyc), loader=loader)
    cached = importlib.util.module_from_spec(spec)
    loader.exec_module(cached)
    assert cached.providers == genai_prices.data.providers
    assert cached.providers is not genai_prices.data.providers
    ours = DataSnapshot(providers=cached.providers, from_auto_update=False)
    theirs = DataSnapshot(providers=genai_prices.data.providers, from_auto_update=False)
    pricer = Pricer()
    for provider, model, usage in SAMPLES:
        found = pricer.price_id(provider, model)
        assert found is not None, (provider, model)
        u = Usage(
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
            cache_read_tokens=usage.get("cache_read_tokens"),
            cache_write_tokens=usage.get("cache_write_tokens"),
        )
        a = ours.calc(u, model, found[0], None, TS)
        b = theirs.calc(u, model, found[0], None, TS)
        assert (a.total_price, a.model.id, a.provider.id) == (
            b.total_price,
            b.model.id,
            b.provider.id,
        ), (provider, model)


def test_price_data_falls_back_to_the_plain_import(tmp_path: Path, monkeypatch) -> None:
    """An unusable cache dir (a file where the dir should be) leaves pricing working."""
    blocker = tmp_path / "cache"
    blocker.write_text("not a directory")
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "no-pycache"))
    monkeypatch.delitem(sys.modules, price_data.MODULE)
    price_data.load_bundled(blocker)
    assert price_data.MODULE not in sys.modules  # nothing half-loaded
    monkeypatch.setitem(sys.modules, price_data.MODULE, genai_prices.data)
