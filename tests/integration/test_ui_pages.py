"""Pages a team lead opens, in-process over a real DuckDB file and chDB: a non-LLM span's
attributes, events and exception in the trace waterfall; sessions and users with their
JSON twins; the alerts badge and the banner of a firing budget."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gensight.model.records import CallRecord, SpanRecord
from gensight.model.settings import Settings
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from tests.support.stores import fresh_chdb_store

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(minutes=30)
TRACE = "ab" * 16
STACK = (
    'Traceback (most recent call last):\n  File "app.py", line 3, in fetch\n'
    "TimeoutError: <db> too slow"
)


def _span(
    span_id: str, parent: str | None, name: str, start_s: float, ms: float, **kw
) -> SpanRecord:
    return SpanRecord(
        trace_id=TRACE, span_id=span_id, parent_span_id=parent, name=name,
        ts=T0 + timedelta(seconds=start_s), duration_ms=ms, app="shop", **kw,
    )  # fmt: skip


def _call(i: int, **kw) -> CallRecord:
    base = dict(
        id=f"c{i}", trace_id=f"{i + 1:032x}", span_id=f"{i + 1:016x}",
        ts=T0 + timedelta(seconds=10 * i), duration_ms=100.0 * (i + 1), source="otlp",
        app="shop", request_model="gpt-4o-mini", input_tokens=100, output_tokens=10 * i,
        cost_usd=0.001 * (i + 1), cost_source="computed",
        input_messages=[{"role": "user", "content": f"turn {i} question"}],
        output_messages=[{"role": "assistant", "content": f"turn {i} answer"}],
    )  # fmt: skip
    base.update(kw)
    return CallRecord(**base)


def _records() -> tuple[list[CallRecord], list[SpanRecord]]:
    # "30 minutes ago" when the store is seeded, not when the module was collected: a
    # slow suite reached this module more than half an hour after collecting it
    global NOW, T0
    NOW = datetime.now(UTC).replace(microsecond=0)
    T0 = NOW - timedelta(minutes=30)
    calls = [_call(i, session="conv-1", user="alice") for i in range(3)]
    calls += [_call(3 + i, session="conv-2", user="bob") for i in range(2)]
    calls.append(
        _call(5, user="bob", status="error", error_class="timeout", input_tokens=None,
              output_tokens=None, cost_usd=None, cost_source="unknown")
    )  # fmt: skip
    calls.append(_call(6, trace_id=TRACE, span_id="3" * 16, parent_span_id="1" * 16, app="shop"))
    spans = [
        _span("1" * 16, None, "GET /orders", 0, 2000, kind="server"),
        _span("2" * 16, "1" * 16, "SELECT orders", 0.1, 900, kind="client", status="error",
              status_message="query timed out",
              attributes={"db.system": "postgresql", "db.statement": "SELECT * FROM orders"},
              events=[{"name": "exception", "ts": T0.isoformat(),
                       "attributes": {"exception.type": "TimeoutError",
                                      "exception.message": "<db> too slow",
                                      "exception.stacktrace": STACK}},
                      {"name": "retry", "ts": T0.isoformat(), "attributes": {"attempt": 2}}]),
        _span("3" * 16, "1" * 16, "chat gpt-4o-mini", 1.0, 700, kind="client", call_id="c6"),
    ]  # fmt: skip
    return calls, spans


@pytest.fixture(scope="module", params=["duckdb", "chdb"])
def client(request, tmp_path_factory, chdb_path: Path) -> TestClient:
    tmp: Path = tmp_path_factory.mktemp(f"ui-pages-{request.param}")
    store = (
        DuckDBStore(tmp / "s.duckdb") if request.param == "duckdb" else fresh_chdb_store(chdb_path)
    )
    calls, spans = _records()
    store.write(calls, spans, [])
    with TestClient(create_app(Settings(data_dir=tmp), store=store)) as c:
        yield c


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_a_non_llm_span_opens_with_its_exception(client: TestClient):
    r = client.get(f"/traces/{TRACE}")
    assert r.status_code == 200
    link = re.search(r'<a href="(\?span=2+#span-detail)" class="span-link"', r.text)
    assert link, "the db span links its details"
    assert 'href="/calls/c6" class="llm-link"' in r.text  # LLM spans link to the call
    r = client.get(f"/traces/{TRACE}" + unescape(link.group(1)).split("#")[0])
    assert r.status_code == 200
    detail = r.text[r.text.index('id="span-detail"') :]
    text = _text(detail)
    assert "TimeoutError" in text and "query timed out" in text
    assert 'File "app.py", line 3, in fetch' in text  # the stack trace, as text
    assert "&lt;db&gt; too slow" in detail and "<db>" not in detail
    assert "db.statement" in text and "SELECT * FROM orders" in text
    assert "retry" in text and '"attempt": 2' in text
    r = client.get(f"/traces/{TRACE}?span=nope")
    assert r.status_code == 400 and 'id="bad-param">span<' in r.text


def test_dashboard_opens_on_a_range_that_holds_the_data(client: TestClient):
    r = client.get("/")
    assert r.status_code == 200
    # the calls started 30 minutes ago: the 1h range, not one bar at the end of 24 h
    assert re.search(r'<a href="[^"]*since=1h[^"]*" aria-current="true">1h</a>', r.text)
    api = client.get("/api/stats/overview", params={"since": "1h", "group_by": "model"}).json()
    (model,) = api["groups"]
    table = r.text[r.text.index('id="table-models"') :]
    row = _text(table[: table.index("</tr>", table.index("<tbody>"))])
    p95 = model["latency_ms"]["p95"]
    assert (f"{p95 / 1000:.2f} s" if p95 >= 1000 else f"{p95:.0f} ms") in row
    assert "no usage" in row  # the failed call without tokens


def test_sessions_list_and_one_session_in_order(client: TestClient):
    api = client.get("/api/sessions").json()
    assert [r["session"] for r in api["items"]] == ["conv-2", "conv-1"]  # newest first
    conv1 = api["items"][1]
    assert (conv1["calls"], conv1["user"], conv1["errors"]) == (3, "alice", 0)
    assert conv1["cost_usd"] == pytest.approx(0.006)
    r = client.get("/sessions")
    assert r.status_code == 200
    assert re.findall(r'<tr data-session="([^"]+)"', r.text) == ["conv-2", "conv-1"]
    assert '<link rel="alternate" type="application/json" href="/api/sessions">' in r.text
    one = client.get("/api/sessions/conv-1").json()
    assert [t["id"] for t in one["turns"]] == ["c0", "c1", "c2"]  # the turns in order
    r = client.get("/sessions/conv-1")
    text = _text(r.text)
    assert (
        text.index("turn 0 question") < text.index("turn 0 answer") < text.index("turn 2 question")
    )
    call = client.get("/calls/c1").text  # a call links its session and its user
    assert 'href="/sessions/conv-1" id="session-link"' in call
    assert 'href="/users/alice" id="user-link"' in call
    assert client.get("/sessions/nope").status_code == 404
    assert client.get("/api/sessions/nope").status_code == 404
    r = client.get("/api/sessions", params={"user": "bob"}).json()
    assert [s["session"] for s in r["items"]] == ["conv-2"]


def test_users_with_measures_and_budget_state(client: TestClient):
    rule = {"name": "bob budget", "measure": "cost_usd", "window": "1d", "threshold": 0.001,
            "op": ">", "action": "block", "filters": {"user": "bob"}}  # fmt: skip
    created = client.post("/api/alert-rules", json=rule)
    assert created.status_code == 201, created.text
    client.app.state.alerts.evaluate()
    api = client.get("/api/users").json()
    by_user = {u["user"]: u for u in api["items"]}
    assert set(by_user) == {"alice", "bob"}
    bob = by_user["bob"]
    assert (bob["calls"], bob["errors"], bob["no_usage_calls"]) == (3, 1, 1)
    assert bob["error_rate"] == pytest.approx(1 / 3)
    assert bob["budget"] == "blocked" and by_user["alice"]["budget"] == "none"
    r = client.get("/users")
    row = r.text[r.text.index('<tr data-user="bob">') :]
    row = _text(row[: row.index("</tr>")])
    assert "blocked" in row and "33.3%" in row
    r = client.get("/users/bob")
    assert r.status_code == 200 and "conv-2" in r.text
    assert client.get("/api/users/bob").json()["sessions"][0]["session"] == "conv-2"
    assert client.get("/users/nobody").status_code == 404
    client.delete(f"/api/alert-rules/{created.json()['id']}")


def test_a_firing_budget_shows_on_every_page_and_the_dashboard_names_it(client: TestClient):
    rule = {"name": "shop budget", "measure": "cost_usd", "window": "1d", "threshold": 0.002,
            "op": ">", "action": "block", "filters": {"app": "shop"}}  # fmt: skip
    created = client.post("/api/alert-rules", json=rule).json()
    try:
        client.app.state.alerts.evaluate()
        for path in ("/", "/calls", "/sessions", "/users", "/analysis"):
            r = client.get(path)
            assert 'id="alerts-badge"' in r.text and "1 firing" in r.text, path
        banner = _text(client.get("/").text.split('id="budget-banner"')[1].split("</section>")[0])
        assert "shop blocked by budget" in banner and "shop budget" in banner
        assert re.search(r"since \d\d:\d\d UTC", banner)
        page = client.get("/alerts").text
        assert f'href="/alerts?edit={created["id"]}#add-rule"' in page
        calls = re.search(r'class="rule-calls" href="([^"]+)"', page).group(1)
        assert "app=shop" in calls and "since=" in calls
        assert client.get(unescape(calls)).status_code == 200
        assert "cost_usd ($)" in page  # the threshold's unit
    finally:
        client.delete(f"/api/alert-rules/{created['id']}")
    assert 'id="alerts-badge"' not in client.get("/").text


def test_rules_are_edited_and_deleted_after_a_confirmation(client: TestClient):
    rule = {"name": "slow", "measure": "latency_p95_ms", "window": "5m", "threshold": 900}
    rid = client.post("/api/alert-rules", json=rule).json()["id"]
    form = client.get(f"/alerts?edit={rid}").text
    assert f'name="id" value="{rid}"' in form and 'value="900"' in form
    r = client.post(
        "/alerts", data={"id": rid, "name": "slow", "measure": "latency_p95_ms",
                         "window": "5m", "op": ">", "threshold": "1500"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303
    assert client.get(f"/api/alert-rules/{rid}").json()["threshold"] == 1500
    ask = client.get(f"/alerts/{rid}/delete")
    assert ask.status_code == 200 and 'method="post"' in ask.text
    assert client.get(f"/api/alert-rules/{rid}").status_code == 200  # asking removes nothing
    assert client.post(f"/alerts/{rid}/delete", follow_redirects=False).status_code == 303
    assert client.get(f"/api/alert-rules/{rid}").status_code == 404
