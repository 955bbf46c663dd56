"""The call log sorted by time, duration, TTFT, tokens and cost, paged by cursor, on both
stores: every call appears exactly once over the pages, in order, calls without a value
last; the page and the API agree and the page's total counts all matching calls."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from fastapi.testclient import TestClient

from gensight.model.records import CallRecord
from gensight.model.settings import Settings
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from tests.support.stores import fresh_chdb_store

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
RANGE = {"since": "2026-02-01T09:00:00Z", "until": "2026-02-01T10:00:00Z"}
N = 37


def _calls() -> list[CallRecord]:
    calls = []
    for i in range(N):
        failed = i % 6 == 0
        calls.append(
            CallRecord(
                id=f"call-{i:03d}",
                trace_id=f"{i + 1:032x}",
                span_id=f"{i + 1:016x}",
                # pairs of calls share a start time, so ties are broken by id
                ts=T0 + timedelta(seconds=i // 2),
                duration_ms=float((i * 7) % 11) * 100.0 + 0.25,  # many equal durations
                ttft_ms=None if i % 3 else 50.0 + i,
                source="otlp",
                app="sorter",
                request_model="gpt-4o-mini",
                input_tokens=None if failed else 10 * (i % 5),
                output_tokens=None if failed else i,
                cost_usd=None if failed or i % 4 == 1 else 1.4e-7 * (i % 9),
                cost_source="computed",
                status="error" if failed else "ok",
                error_class="timeout" if failed else None,
                error_message="upstream took too long" if failed else None,
                input_messages=[{"role": "user", "content": f"question {i} about <b>refunds</b>"}],
                output_messages=[{"role": "assistant", "content": f"answer {i}"}],
            )
        )
    return calls


@pytest.fixture(scope="module", params=["duckdb", "chdb"])
def client(request, tmp_path_factory, chdb_path: Path):
    tmp = tmp_path_factory.mktemp(f"sort-{request.param}")
    store = (
        DuckDBStore(tmp / "s.duckdb") if request.param == "duckdb" else fresh_chdb_store(chdb_path)
    )
    store.write(_calls(), [], [])
    with TestClient(create_app(Settings(data_dir=tmp), store=store)) as c:
        yield c


def _expected(key: str, order: str) -> list[str]:
    calls = _calls()

    def value(c: CallRecord):
        return c.ts if key == "ts" else getattr(c, key)

    present = [c for c in calls if value(c) is not None]
    missing = [c for c in calls if value(c) is None]
    rev = order == "desc"
    present.sort(key=lambda c: (value(c), c.ts, c.id), reverse=rev)
    missing.sort(key=lambda c: (c.ts, c.id), reverse=rev)
    return [c.id for c in present + missing]


KEYS = ["ts", "duration_ms", "ttft_ms", "input_tokens", "output_tokens", "cost_usd"]


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("key", KEYS)
def test_api_pages_every_call_once_in_sort_order(client: TestClient, key: str, order: str):
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {**RANGE, "sort": key, "order": order, "limit": 5}
        if cursor:
            params["cursor"] = cursor
        r = client.get("/api/calls", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == N and (body["sort"], body["order"]) == (key, order)
        seen += [c["id"] for c in body["items"]]
        pages += 1
        cursor = body["next"]
        if not cursor:
            break
    assert pages == (N + 4) // 5
    assert seen == _expected(key, order)


def test_a_cursor_of_another_sort_is_a_400_naming_it(client: TestClient):
    r = client.get("/api/calls", params={**RANGE, "sort": "cost_usd", "limit": 3})
    cursor = r.json()["next"]
    r = client.get("/api/calls", params={**RANGE, "sort": "duration_ms", "cursor": cursor})
    assert r.status_code == 400 and r.json()["param"] == "cursor"
    r = client.get("/api/calls", params={**RANGE, "sort": "latency"})
    assert r.status_code == 400 and r.json()["param"] == "sort"


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr class="(?:ok|error)" data-id="([^"]+)"', html)


@pytest.mark.parametrize("key", ["duration_ms", "cost_usd"])
def test_page_sorts_and_pages_like_the_api(client: TestClient, key: str):
    seen: list[str] = []
    url = "/calls?" + "&".join(f"{k}={v}" for k, v in {**RANGE, "limit": 10}.items())
    r = client.get(url)
    head = re.search(rf'href="([^"]+)" data-sort="{key}"', r.text)
    assert head, "a sortable column header links the sorted log"
    url = head.group(1).replace("&amp;", "&")
    assert dict(parse_qsl(urlsplit(url).query))["sort"] == key
    while url:
        r = client.get(url)
        assert r.status_code == 200
        assert re.search(r'id="calls-total"><strong>(\d+)</strong>', r.text).group(1) == str(N)
        seen += _rows(r.text)
        nxt = re.search(r'<a href="([^"]+)" id="older"', r.text)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    assert seen == _expected(key, "desc")


def test_page_shows_errors_escaped_previews_and_search_marks(client: TestClient):
    r = client.get("/calls", params={**RANGE, "q": "REFUNDS", "status": "error"})
    assert r.status_code == 200
    assert "upstream took too long" in r.text
    assert "<mark>refunds</mark>" in r.text  # the match, in the case it was written
    assert "&lt;b&gt;" in r.text and "<b>refunds" not in r.text  # text, never markup
    assert '<datalist id="known-app"><option value="sorter">' in r.text
    assert "no usage" in r.text  # failed calls without tokens are not "unpriced"


def test_bad_parameter_keeps_the_form_and_names_it(client: TestClient):
    r = client.get("/calls", params={"app": "sorter", "since": "yesterday"})
    assert r.status_code == 400
    assert 'id="bad-param">since<' in r.text
    assert 'name="app" value="sorter"' in r.text and 'aria-invalid="true"' in r.text
