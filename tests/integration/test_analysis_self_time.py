"""Share of trace time is exclusive (self) time: a parent span never counts its
children's time again, so the column sums to at most 100%, also with parallel spans."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient

from gensight.model.records import CallRecord, SpanRecord
from gensight.model.settings import Settings
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from tests.support.stores import fresh_chdb_store

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
RANGE = {"since": "2026-03-01T08:00:00Z", "until": "2026-03-01T09:00:00Z"}


def _span(trace: str, sid: str, parent: str | None, name: str, ms: float, **kw) -> SpanRecord:
    return SpanRecord(trace_id=trace, span_id=sid * 16, parent_span_id=parent and parent * 16,
                      name=name, ts=T0, duration_ms=ms, app="svc", **kw)  # fmt: skip


@pytest.fixture(scope="module", params=["duckdb", "chdb"])
def client(request, tmp_path_factory, chdb_path: Path):
    tmp = tmp_path_factory.mktemp(f"self-{request.param}")
    store = (
        DuckDBStore(tmp / "s.duckdb") if request.param == "duckdb" else fresh_chdb_store(chdb_path)
    )
    a, b = "1" * 32, "2" * 32
    spans = [
        # trace a (1000 ms): a tool span of 800 ms holding a db query of 500 ms
        _span(a, "a", None, "POST /ask", 1000, kind="server"),
        _span(a, "b", "a", "execute_tool search", 800, attributes={"gen_ai.tool.name": "search"}),
        _span(a, "c", "b", "query", 500, kind="client", attributes={"db.system": "postgresql"}),
        # trace b (1000 ms): three parallel db queries of 900 ms each
        _span(b, "d", None, "POST /batch", 1000, kind="server"),
        *[_span(b, x, "d", "query", 900, kind="client", attributes={"db.system": "postgresql"})
          for x in "efg"],
        _span(a, "h", "a", "chat", 100, kind="client", call_id="llm"),
    ]  # fmt: skip
    call = CallRecord(id="llm", trace_id=a, span_id="h" * 16, parent_span_id="a" * 16, ts=T0,
                      duration_ms=100.0, source="otlp", app="svc", provider="openai",
                      request_model="gpt-4o-mini")  # fmt: skip
    store.write([call], spans, [])
    with TestClient(create_app(Settings(data_dir=tmp), store=store)) as c:
        yield c


def test_shares_are_self_time_and_sum_to_at_most_one(client: TestClient):
    body = client.get("/api/analysis/dependencies", params=RANGE).json()
    items = {i["downstream"]: i for i in body["items"]}
    tool, db, llm = items["tool:search"], items["db:postgresql"], items["openai/gpt-4o-mini"]
    assert tool["total_ms"] == pytest.approx(800) and tool["self_ms"] == pytest.approx(300)
    assert db["total_ms"] == pytest.approx(3200) and db["self_ms"] == pytest.approx(3200)
    assert llm["self_ms"] == pytest.approx(100)
    shares = [i["share_of_trace_time"] for i in body["items"]]
    assert all(0 <= s <= 1 for s in shares)
    assert sum(shares) <= 1 + 1e-9
    # the parallel queries' 2,700 ms inside a 1,000 ms request: the shares are of all
    # self time (roots 100 + 0, tool 300, db 3,200, llm 100 = 3,700 ms)
    assert db["share_of_trace_time"] == pytest.approx(3200 / 3700)
    assert tool["share_of_trace_time"] == pytest.approx(300 / 3700)


def test_dependency_rows_link_their_calls(client: TestClient):
    r = client.get("/analysis", params=RANGE)
    assert r.status_code == 200
    link = re.search(
        r'<a href="(/calls\?[^"]+)" title="these calls, slowest first">openai/', r.text
    )
    assert link, "the LLM dependency row links its calls"
    query = dict(parse_qsl(urlsplit(unescape(link.group(1))).query))
    assert (query["provider"], query["model"], query["sort"]) == (
        "openai",
        "gpt-4o-mini",
        "duration_ms",
    )
    calls = client.get(unescape(link.group(1)))
    assert calls.status_code == 200 and 'data-id="llm"' in calls.text
