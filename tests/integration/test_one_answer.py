"""One answer per number: the pages show the API's numbers, on both stores.

Seeded so that every dimension but ``source`` and ``error_class`` has more than ten
values (an ``(other)`` row), with unpriced calls among the small groups, and calls
whose request and response models differ or whose request model is missing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
from fastapi.testclient import TestClient

from gensight.model import vocab
from gensight.model.records import CallRecord, SpanRecord
from gensight.model.settings import Settings
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from gensight.web.render import fmt_int, fmt_ms, fmt_pct, fmt_usd
from tests.support.stores import fresh_chdb_store

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
RANGE = {"since": "2026-01-05T12:00:00Z", "until": "2026-01-05T14:00:00Z"}
N = 120
TRACE = "e" * 32


def _calls() -> list[CallRecord]:
    calls = []
    for i in range(N):
        # 14 groups of falling size, so ranking is by calls (then name)
        k = int(14 * (i / N) ** 1.5)
        unpriced = k >= 11  # the smallest groups: their unpriced calls land in (other)
        failed = i % 7 == 0
        calls.append(
            CallRecord(
                id=f"c{i:04d}",
                trace_id=f"{i + 1:032x}",
                span_id=f"{i + 1:016x}",
                ts=T0 + timedelta(seconds=30 * i),
                duration_ms=50.0 + 10 * i,
                ttft_ms=20.0 + i if i % 2 else None,
                source="gateway" if i % 3 else "otlp",
                app=f"app-{k:02d}",
                environment=f"env-{(i * 5) % 13:02d}",
                provider=f"prov-{(i * 5) % 12:02d}",
                operation=f"op-{(i * 7) % 11:02d}",
                # a missing request model, and request/response models that differ
                request_model=None if i % 10 == 0 else f"model-{k:02d}",
                response_model="model-00" if i % 4 == 0 else None,
                user=None if i % 9 == 0 else f"user-{(i * 11) % 15:02d}",
                input_tokens=100 + i,
                output_tokens=10 + i % 5,
                cost_usd=None if unpriced else 0.001 * (1 + k),
                cost_source="unknown" if unpriced else "computed",
                status="error" if failed else "ok",
                error_class=vocab.ERROR_CLASSES[i % len(vocab.ERROR_CLASSES)] if failed else None,
            )
        )
    # a trace: three calls under one root span, one failed and one unpriced
    for j, (cost, status, tokens) in enumerate(
        [(0.002, "ok", (300, 30)), (None, "ok", (200, 20)), (0.004, "error", (100, 0))]
    ):
        calls.append(
            CallRecord(
                id=f"t{j}",
                trace_id=TRACE,
                span_id=f"{j + 1:016x}".replace("0", "d"),
                parent_span_id="a" * 16,
                ts=T0 + timedelta(seconds=j),
                duration_ms=400.0,
                source="otlp",
                app="traced",
                request_model="gpt-4o",
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                cost_usd=cost,
                cost_source="unknown" if cost is None else "computed",
                status=status,
                error_class="timeout" if status == "error" else None,
                tokens_estimated=j == 1,
            )
        )
    return calls


@pytest.fixture(scope="module", params=["duckdb", "chdb"])
def client(request, tmp_path_factory, chdb_path: Path):
    """The app over each store, seeded with the same records."""
    tmp = tmp_path_factory.mktemp(f"one-answer-{request.param}")
    if request.param == "duckdb":
        store = DuckDBStore(tmp / "seed.duckdb")
    else:
        store = fresh_chdb_store(chdb_path)
    root = SpanRecord(
        trace_id=TRACE, span_id="a" * 16, name="handler", ts=T0, duration_ms=3000.0, app="traced"
    )
    store.write(_calls(), [root], [])
    with TestClient(create_app(Settings(data_dir=tmp), store=store)) as c:
        yield c


class Page(HTMLParser):
    """The parts of a page the tests read: text by element id, table rows, options."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.titles: dict[str, str] = {}
        self.tables: dict[str, list[dict]] = {}
        self.options: dict[str, list[str]] = {}
        self._open: list[tuple[str, str | None]] = []  # (tag, id) of open elements
        self._table: str | None = None
        self._row: dict | None = None
        self._cell: list[str] | None = None
        self._select: str | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("input", "br", "meta", "link", "img"):
            return
        self._open.append((tag, a.get("id")))
        if a.get("id"):
            self.text.setdefault(a["id"], "")
            self.titles[a["id"]] = a.get("title", "")
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table and "data-group" in a:
            self._row = {"group": a["data-group"], "cells": [], "href": None}
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif tag == "a" and self._row is not None and self._row["href"] is None:
            self._row["href"] = a.get("href")
        elif tag == "select":
            self._select = a.get("name")
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self.options[self._select].append(a.get("value", ""))

    def handle_endtag(self, tag):
        while self._open:
            t, _ = self._open.pop()
            if t == tag:
                break
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row["cells"].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        for _, id_ in self._open:
            if id_:
                self.text[id_] += data
        if self._cell is not None:
            self._cell.append(data)


def _page(client, path: str, params: dict) -> Page:
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    return Page(r.text)


def _cells(g: dict) -> list[str]:
    """A group as the dashboard's table shows it."""
    name = "(none)" if g["group"] is None else g["group"]
    cost = (
        fmt_usd(g["cost_usd"])
        + (f" +{g['unpriced_calls']} unpriced" if g["unpriced_calls"] else "")
        + (f" {g['no_usage_calls']} no usage" if g["no_usage_calls"] else "")
    )
    return [
        name,
        fmt_int(g["calls"]),
        fmt_int(g["errors"]),
        fmt_pct(g["error_rate"]),
        fmt_int(g["input_tokens"]),
        fmt_int(g["output_tokens"]),
        cost,
        fmt_ms(g["latency_ms"]["p50"]),
        fmt_ms(g["latency_ms"]["p95"]),
        fmt_ms(g["ttft_ms"]["p95"]),
    ]


ADDITIVE = (
    "calls", "errors", "input_tokens", "output_tokens", "unpriced_calls", "no_usage_calls",
)  # fmt: skip


@pytest.mark.parametrize("group_by", vocab.GROUP_BY)
def test_group_table_tiles_and_overview_agree(client, group_by):
    api = client.get("/api/stats/overview", params={**RANGE, "group_by": group_by}).json()
    groups, totals = api["groups"], api["totals"]
    # the groups partition the calls: every additive measure sums to the totals
    for k in ADDITIVE:
        assert sum(g[k] for g in groups) == totals[k], k
    assert sum(g["cost_usd"] for g in groups) == pytest.approx(totals["cost_usd"])
    assert totals["calls"] == N + 3 and totals["unpriced_calls"] > 0
    names = [g["group"] for g in groups]
    if group_by not in ("source", "error_class", "template"):  # template: no prompts seeded
        assert len(groups) == vocab.MAX_GROUPS + 1 and names[-1] == vocab.OTHER_GROUP
        assert groups[-1]["latency_ms"]["p95"] is None  # percentiles are not summable
    if group_by in ("app", "model"):
        assert groups[-1]["unpriced_calls"] > 0  # the case the series-summed table dropped
    # the series holds the same groups, and its points add up to each group's totals
    for g in groups:
        points = [p for p in api["series"] if p["group"] == g["group"]]
        for k in ADDITIVE:
            assert sum(p[k] for p in points) == g[k], (g["group"], k)
    assert {p["group"] for p in api["series"]} == set(names)

    page = _page(client, "/", {**RANGE, "group_by": group_by})
    table = page.tables["table-models" if group_by == "model" else "table-group"]
    assert [r["cells"] for r in table] == [_cells(g) for g in groups]
    assert page.titles["tile-calls"] == fmt_int(totals["calls"])
    assert page.text["tile-cost"] == fmt_usd(totals["cost_usd"])
    assert page.text["tile-unpriced"].split()[0] == str(totals["unpriced_calls"])
    assert page.text["tile-error-rate"] == fmt_pct(totals["error_rate"])


def test_model_row_counts_what_its_link_lists(client):
    api = client.get("/api/stats/overview", params={**RANGE, "group_by": "model"}).json()
    page = _page(client, "/", RANGE)
    rows = [r for r in page.tables["table-models"] if r["href"]]
    assert len(rows) == vocab.MAX_GROUPS  # every named model links; (other) does not
    by_name = {g["group"]: g for g in api["groups"]}
    for row in rows:
        link = urlsplit(row["href"])
        assert link.path == "/calls"
        listed = client.get(f"/api/calls?{link.query}&limit=1000").json()["items"]
        assert len(listed) == by_name[row["group"]]["calls"], row["group"]
        # the call log page the link opens lists the same calls
        html = client.get(f"{row['href']}&limit=1000").text
        assert html.count(" data-id=") == len(listed), row["group"]
    # model-00 gathers calls answered by model-00 whose request named another model:
    # they count under the model they asked for, and model=model-00 does not list them
    listed = client.get("/api/calls", params={**RANGE, "model": "model-00", "limit": 1000})
    assert all(
        (c["request_model"] or c["response_model"]) == "model-00" for c in listed.json()["items"]
    )


def test_trace_page_totals_are_the_apis(client):
    api = client.get(f"/api/traces/{TRACE}").json()
    t = api["totals"]
    # three calls: one failed, one unpriced (not in the cost), one estimated
    assert (t["calls"], t["errors"], t["unpriced_calls"]) == (3, 1, 1)
    assert (t["input_tokens"], t["output_tokens"]) == (600, 50)
    assert t["cost_usd"] == pytest.approx(0.006)
    assert t["latency_ms"]["p50"] == pytest.approx(400.0) and t["tokens_estimated"] is True
    page = _page(client, f"/traces/{TRACE}", {})
    assert page.text["trace-calls"] == str(t["calls"])
    assert page.text["trace-tokens"] == f"{fmt_int(600)} / {fmt_int(50)}"
    assert page.text["trace-cost"] == fmt_usd(t["cost_usd"])
    assert page.text["trace-unpriced"] == f"{t['unpriced_calls']} unpriced"
    assert page.text["total-tokens"] == page.text["trace-tokens"]
    assert page.text["total-cost"] == fmt_usd(t["cost_usd"])


def test_every_group_by_the_ui_offers_the_api_takes_and_back(client):
    spec = client.get("/openapi.json").json()
    params = spec["paths"]["/api/stats/overview"]["get"]["parameters"]
    (group_by,) = [p for p in params if p["name"] == "group_by"]
    api_choices = next(s["enum"] for s in group_by["schema"]["anyOf"] if "enum" in s)
    ui_choices = [o for o in _page(client, "/", RANGE).options["group_by"] if o]
    assert api_choices == ui_choices == list(vocab.GROUP_BY)
    for choice in vocab.GROUP_BY:
        assert client.get("/", params={**RANGE, "group_by": choice}).status_code == 200
        r = client.get("/api/stats/overview", params={**RANGE, "group_by": choice})
        assert r.status_code == 200 and r.json()["group_by"] == choice
    for bad in ("planet", "service"):
        assert client.get("/", params={"group_by": bad}).status_code == 400
        r = client.get("/api/stats/overview", params={"group_by": bad})
        assert r.status_code == 400 and r.json()["param"] == "group_by"


def test_every_filter_of_the_vocabulary_is_an_api_parameter(client):
    spec = client.get("/openapi.json").json()
    for path in ("/api/calls", "/api/stats/overview", "/api/analysis/correlations"):
        names = [p["name"] for p in spec["paths"][path]["get"]["parameters"]]
        assert [n for n in names if n in vocab.FILTERS] == list(vocab.FILTER_NAMES), path
    for f in vocab.CALL_FILTERS:
        if f.choices:
            r = client.get("/api/calls", params={f.name: "not-a-choice"})
            assert r.status_code == 400 and r.json()["param"] == f.name
            r = client.get("/calls", params={f.name: "not-a-choice"})
            assert r.status_code == 400


def test_openapi_has_a_response_schema_for_every_api_operation(client):
    spec = client.get("/openapi.json").json()
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        if path.startswith("/api/")
        for method, op in item.items()
    ]
    assert len(operations) >= 14
    for path, method, op in operations:
        ok = {code: r for code, r in op["responses"].items() if code.startswith("2")}
        assert ok, (path, method)
        for code, response in ok.items():
            if code == "204":
                assert "content" not in response
                continue
            schema = response["content"]["application/json"]["schema"]
            target = schema.get("items", schema)
            assert "$ref" in target, (path, method, schema)
            name = target["$ref"].rsplit("/", 1)[-1]
            assert spec["components"]["schemas"][name]["properties"], name


@pytest.mark.parametrize("field", ["source", "status", "error_class", "cost_source"])
def test_an_import_holds_only_the_vocabularys_values(client, field):
    record = {"id": "imp", "trace_id": "1" * 32, "span_id": "2" * 16, "ts": RANGE["since"]}
    record |= {"duration_ms": 1.0, "source": "otlp", field: "something-else"}
    r = client.post("/api/import", content=orjson.dumps(record) + b"\n")
    assert r.status_code == 400
    assert f"line 1: field {field!r} must be one of" in r.json()["detail"]
