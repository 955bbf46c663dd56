"""Scores (#20) through the API on both stores: in before and after their call, filters,
group means and cost per good answer against numbers computed here independently."""

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

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
RANGE = {"since": (T0 - timedelta(minutes=1)).isoformat(), "until": "now"}


def _call(i: int, model: str, cost: float | None, app: str = "shop") -> CallRecord:
    return CallRecord(
        id=f"call{i:03d}",
        trace_id=f"{i:032x}",
        span_id=f"{i:016x}",
        ts=T0 + timedelta(seconds=i),
        duration_ms=100.0,
        source="gateway",
        app=app,
        provider="openai",
        operation="chat",
        request_model=model,
        input_tokens=10,
        output_tokens=5,
        cost_usd=cost,
        cost_source="computed" if cost is not None else "unknown",
    )


# model a: 4 calls at $0.01, helpful 0.9, 0.8, 0.2 (+ one unscored)
# model b: 4 calls at $0.002, helpful 0.1, 0.3, 0.95, 0.4
CALLS = [_call(i, "model-a", 0.01) for i in range(4)] + [
    _call(10 + i, "model-b", 0.002, app="search") for i in range(4)
]
HELPFUL = {
    "call000": 0.9,
    "call001": 0.8,
    "call002": 0.2,
    "call010": 0.1,
    "call011": 0.3,
    "call012": 0.95,
    "call013": 0.4,
}


@pytest.fixture(params=["duckdb", "chdb"])
def client(request, tmp_path: Path, chdb_path: Path):
    if request.param == "duckdb":
        store = DuckDBStore(tmp_path / "scores.duckdb")
    else:
        store = fresh_chdb_store(chdb_path)
    app = create_app(Settings(data_dir=tmp_path), store=store)
    with TestClient(app) as c:
        c.pipeline = app.state.pipeline  # type: ignore[attr-defined]
        yield c


def _send(client: TestClient, body, status: int = 202) -> dict:
    r = client.post("/api/scores", json=body)
    assert r.status_code == status, r.text
    return r.json()


def test_a_score_sent_before_its_call_and_one_after_both_join(client):
    early = _send(client, {"call_id": "call000", "name": "helpful", "value": 0.9, "id": "s-early"})
    assert early == {"accepted": 1, "ids": ["s-early"]}
    client.pipeline.flush()
    client.pipeline.submit(CALLS[:1])
    client.pipeline.flush()
    _send(client, {"call_id": "call000", "name": "thumbs", "label": "up", "source": "user"})
    client.pipeline.flush()
    call = client.get("/api/calls/call000").json()
    got = {(s["name"], s["value"], s["label"], s["source"]) for s in call["scores"]}
    assert got == {("helpful", 0.9, None, "api"), ("thumbs", None, "up", "user")}
    # resending the same id stores it once, with the newer content
    _send(client, {"call_id": "call000", "name": "helpful", "value": 0.7, "id": "s-early"})
    client.pipeline.flush()
    scores = client.get("/api/calls/call000").json()["scores"]
    helpful = [s for s in scores if s["name"] == "helpful"]
    assert [(s["id"], s["value"]) for s in helpful] == [("s-early", 0.7)]


def test_trace_scores_show_on_the_trace_with_its_calls_scores(client):
    client.pipeline.submit(CALLS[:2])
    trace_id = CALLS[0].trace_id
    _send(
        client,
        [
            {"trace_id": trace_id, "name": "resolved", "label": "yes", "comment": "fixed it"},
            {"call_id": "call000", "trace_id": trace_id, "name": "helpful", "value": 1},
            {"call_id": "call001", "name": "helpful", "value": 0},
        ],
    )
    client.pipeline.flush()
    trace = client.get(f"/api/traces/{trace_id}").json()
    assert {(s["target"], s["name"]) for s in trace["scores"]} == {
        ("trace", "resolved"),
        ("call", "helpful"),
    }
    assert [s["value"] for s in trace["calls"][0]["scores"]] == [1.0]
    # the trace's score finds its calls in the call log
    items = client.get("/api/calls", params={**RANGE, "score": "resolved:=yes"}).json()["items"]
    assert [c["id"] for c in items] == ["call000"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "helpful", "value": 1}, "call_id"),
        ({"call_id": "x", "value": 1}, "name"),
        ({"call_id": "x", "name": "helpful"}, "value"),
        ({"call_id": "x", "name": "helpful", "value": "high"}, "value"),
        ({"call_id": "x", "name": "helpful", "value": True}, "value"),
        ({"call_id": "x", "name": "helpful", "value": 1, "source": "robot"}, "source"),
        ({"call_id": "x", "name": "helpful", "value": 1, "colour": "red"}, "colour"),
        ({"call_id": "x", "name": "helpful", "value": 1, "ts": "yesterday"}, "ts"),
        (
            [{"call_id": "x", "name": "a", "value": 1}, {"call_id": "x", "name": "b"}],
            "body[1].value",
        ),
        ({"scores": [{"call_id": "x", "value": 1}]}, "scores[0].name"),
        ([], "body"),
        ("helpful", "body"),
    ],
)
def test_bad_scores_are_refused_naming_the_field_and_nothing_is_kept(client, body, field):
    r = client.post("/api/scores", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["param"] == field
    client.pipeline.flush()
    assert client.get("/api/scores").json()["items"] == []


def test_not_json_is_refused(client):
    r = client.post("/api/scores", content=b"name=helpful", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = client.post("/api/scores", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["param"] == "body"


def _seed(client: TestClient) -> None:
    client.pipeline.submit(CALLS)
    _send(client, [{"call_id": cid, "name": "helpful", "value": v} for cid, v in HELPFUL.items()])
    # a label-only score, and another name, must not move the helpful means
    _send(client, [{"call_id": "call003", "name": "helpful", "label": "unsure"}])
    _send(client, [{"call_id": "call010", "name": "tone", "value": 5}])
    client.pipeline.flush()


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("helpful:<0.5", {c for c, v in HELPFUL.items() if v < 0.5}),
        ("helpful:>=0.8", {c for c, v in HELPFUL.items() if v >= 0.8}),
        ("helpful:!=0.1", {c for c, v in HELPFUL.items() if v != 0.1}),
        ("helpful", set(HELPFUL) | {"call003"}),
        ("helpful:=unsure", {"call003"}),
        ("tone:>4", {"call010"}),
        ("nothing", set()),
    ],
)
def test_calls_filter_by_score(client, expr, expected):
    _seed(client)
    items = client.get("/api/calls", params={**RANGE, "score": expr, "limit": 100}).json()["items"]
    assert {c["id"] for c in items} == expected


@pytest.mark.parametrize("bad", ["", ":<1", "helpful:~1", "helpful:<", "helpful:<good"])
def test_bad_score_filters_are_400_naming_score(client, bad):
    if not bad:
        assert client.get("/api/calls", params={"score": bad}).status_code == 200
        return
    r = client.get("/api/calls", params={"score": bad})
    assert r.status_code == 400 and r.json()["param"] == "score", r.text


def test_overview_groups_carry_mean_score_and_count(client):
    _seed(client)
    ov = client.get("/api/stats/overview", params={**RANGE, "group_by": "model"}).json()
    by = {g["group"]: g["scores"] for g in ov["groups"]}
    a = [HELPFUL[f"call00{i}"] for i in range(3)]
    b = [HELPFUL[f"call01{i}"] for i in range(4)]
    assert by["model-a"]["helpful"]["mean"] == pytest.approx(sum(a) / len(a))
    assert by["model-a"]["helpful"]["count"] == 4  # the label-only one counts, has no value
    assert by["model-a"]["helpful"]["calls"] == 4
    assert by["model-b"]["helpful"]["mean"] == pytest.approx(sum(b) / len(b))
    assert by["model-b"]["tone"] == {"mean": 5.0, "count": 1, "calls": 1}
    everything = list(HELPFUL.values())
    assert ov["scores"]["helpful"]["mean"] == pytest.approx(sum(everything) / len(everything))
    # the score filter narrows the overview like any filter
    ov = client.get("/api/stats/overview", params={**RANGE, "score": "helpful:<0.5"}).json()
    assert ov["totals"]["calls"] == sum(1 for v in HELPFUL.values() if v < 0.5)


def test_cost_per_good_answer_ranks_models(client):
    _seed(client)
    r = client.get(
        "/api/analysis/cost-per-good-answer",
        params={**RANGE, "score": "helpful", "threshold": 0.5, "group_by": "model"},
    )
    assert r.status_code == 200, r.text
    items = {i["group"]: i for i in r.json()["items"]}
    # computed by hand: a: 2 good of 3 scored (call003 has only a label), $0.01 a call
    assert items["model-a"]["good_share"] == pytest.approx(2 / 3)
    assert items["model-a"]["cost_per_good_answer_usd"] == pytest.approx(0.01 / (2 / 3))
    # b: 1 good of 4 scored, $0.002 a call → $0.008 a good answer: cheaper than a's $0.015
    assert items["model-b"]["good_share"] == pytest.approx(1 / 4)
    assert items["model-b"]["cost_per_good_answer_usd"] == pytest.approx(0.002 / (1 / 4))
    assert [i["group"] for i in r.json()["items"]] == ["model-b", "model-a"]
    # with a higher bar model b has no good answer: null, ranked last, never 0
    r = client.get(
        "/api/analysis/cost-per-good-answer",
        params={**RANGE, "score": "helpful", "threshold": 0.99},
    )
    assert all(i["cost_per_good_answer_usd"] is None for i in r.json()["items"])


def test_scores_list_and_the_call_page_show_them(client):
    _seed(client)
    items = client.get("/api/scores", params={"name": "tone"}).json()["items"]
    assert [(s["target_id"], s["value"]) for s in items] == [("call010", 5.0)]
    page = client.get("/calls/call010").text
    assert 'id="scores"' in page and "tone" in page and "helpful" in page


def test_the_analysis_page_ranks_cost_per_good_answer(client):
    _seed(client)
    page = client.get("/analysis", params={**RANGE, "quality_score": "helpful"}).text
    table = page[page.index('id="good-answers-table"') :]
    # model b's good answer is cheaper ($0.008 vs $0.015): listed first
    assert table.index("model-b") < table.index("model-a")
    assert "$0.008" in table and "$0.015" in table
    r = client.get("/analysis", params={**RANGE, "threshold": "high"})
    assert r.status_code == 400 and "threshold" in r.text
    empty = client.get("/analysis", params={"since": "1m"}).text
    assert "Cost per good answer" not in empty or "No scores" in empty


def test_alert_on_a_score_mean_dropping_below_a_threshold(client):
    _seed(client)
    rule = {"name": "helpfulness", "measure": "score_mean", "score": "helpful",
            "window": "1d", "op": "<", "threshold": 0.7}  # fmt: skip
    r = client.post("/api/alert-rules", json=rule)
    assert r.status_code == 201, r.text
    assert r.json()["score"] == "helpful"
    quiet = {**rule, "name": "tone", "score": "tone", "id": "tone-rule"}
    assert client.post("/api/alert-rules", json=quiet).status_code == 201
    missing = {**rule, "score": None}
    bad = client.post("/api/alert-rules", json=missing)
    assert bad.status_code == 400 and bad.json()["param"] == "score"
    stray = {**rule, "measure": "calls", "threshold": 1}
    assert client.post("/api/alert-rules", json=stray).json()["param"] == "score"
    client.app.state.alerts.evaluate()
    states = {s["name"]: s for s in client.get("/api/alerts").json()}
    mean = sum(HELPFUL.values()) / len(HELPFUL)  # 0.5214…: below 0.7
    assert states["helpfulness"]["state"] == "firing"
    assert states["helpfulness"]["value"] == pytest.approx(mean)
    assert states["tone"]["state"] == "ok" and states["tone"]["value"] == 5.0


def test_the_calls_context_for_forwarded_scores(client):
    client.pipeline.submit(CALLS[:2])
    client.pipeline.flush()
    store = client.app.state.store
    got = store.call_contexts(["call000", "call001", "call000", "unknown"])
    assert got == {c.id: (c.trace_id, c.span_id, c.app) for c in CALLS[:2]}
