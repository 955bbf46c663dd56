"""Scores (#20) through the API on both stores: in before and after their call, filters,
group means and cost per good answer against numbers computed here independently."""

from __future__ import annotations

import json
import re
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


def test_the_dashboard_shows_a_chosen_score_as_a_tile_a_chart_and_a_column(client):
    # calls an hour apart, each bucket's helpful scores known: the series is checked
    # against means computed here
    base = T0.replace(minute=0, second=0) - timedelta(hours=3)
    calls, sent, want = [], [], {}
    for hour, values in enumerate([[0.2, 0.4], [], [1.0, 0.5, 0.9]]):
        for j, v in enumerate(values + [None]):  # one unscored call per hour
            c = _call(100 + 10 * hour + j, "model-a" if j % 2 else "model-b", 0.001)
            c.ts = base + timedelta(hours=hour, minutes=5 + j)
            calls.append(c)
            if v is not None:
                sent.append({"call_id": c.id, "name": "helpful", "value": v})
        want[(base + timedelta(hours=hour)).isoformat()] = values
    sent.append({"call_id": calls[0].id, "name": "tone", "value": 3})
    client.pipeline.submit(calls)
    _send(client, sent)
    client.pipeline.flush()
    span = {"since": base.isoformat(), "until": (base + timedelta(hours=3)).isoformat()}

    ov = client.get(
        "/api/stats/overview", params={**span, "interval": "1h", "quality_score": "helpful"}
    ).json()
    series = {p["bucket"]: p for p in ov["quality"]["series"]}
    assert ov["quality"]["name"] == "helpful" and set(series) == set(want)
    for bucket, values in want.items():
        point = series[bucket]
        assert point["calls"] == point["count"] == len(values)
        assert point["mean"] == (pytest.approx(sum(values) / len(values)) if values else None)
    everything = [v for vs in want.values() for v in vs]
    assert ov["scores"]["helpful"]["mean"] == pytest.approx(sum(everything) / len(everything))
    assert client.get("/api/stats/overview", params=span).json()["quality"] is None

    page = client.get("/", params={**span, "interval": "1h"}).text  # the most used score
    tile = page[page.index('id="tile-quality"') :]
    assert f"{sum(everything) / len(everything):.2f}" in tile[: tile.index("</a>")]
    assert "5 scores · 5 calls" in tile[: tile.index("</a>")]
    assert 'href="/calls?' in tile[:200] and "score=helpful" in tile[:300]
    charts = page[page.index('id="gensight-charts"') :]
    config = json.loads(charts[charts.index(">") + 1 : charts.index("</script>")])
    mean_line = config["quality"]["data"]["datasets"][0]["data"]
    assert mean_line == [
        pytest.approx(sum(v) / len(v)) if v else None for _, v in sorted(want.items())
    ]
    assert 'id="chart-quality"' in page
    # the model table gets the score's column: model-b's calls are the even ones
    table = page[page.index('id="table-models"') :]
    b_values = [0.2, 1.0, 0.9]
    row = table[table.index('data-group="model-b"') :]
    assert f"{sum(b_values) / len(b_values):.2f}" in row[: row.index("</tr>")]
    # another score chosen; the JSON twin names it
    page = client.get("/", params={**span, "quality_score": "tone"}).text
    assert "tone" in page[page.index('id="tile-quality"') :][:300]
    assert "quality_score=tone" in page


def test_a_random_store_agrees_with_answers_computed_here(client):
    """Filters, group means and cost per good answer over a seeded random store, against
    the same numbers computed from the records in plain Python."""
    import random

    rnd = random.Random(20)
    models, apps = ["m-cheap", "m-mid", "m-dear"], ["shop", "search"]
    calls, scores = [], []
    for i in range(120):
        model = rnd.choice(models)
        cost = None if rnd.random() < 0.1 else round(rnd.uniform(0.001, 0.02), 6)
        c = _call(500 + i, model, cost, app=rnd.choice(apps))
        c.session = f"sess-{i % 7}"
        calls.append(c)
        for _ in range(rnd.choice([0, 1, 1, 2, 3])):  # several scores of one call: its mean
            scores.append({"call_id": c.id, "name": "helpful", "value": round(rnd.random(), 3)})
        if rnd.random() < 0.2:
            scores.append({"call_id": c.id, "name": "helpful", "label": "unsure"})
        if rnd.random() < 0.1:  # a trace's score finds the call, never moves call means
            scores.append({"trace_id": c.trace_id, "name": "helpful", "value": 0.01})
    scores.append({"session": "sess-3", "name": "helpful", "value": 0.02})
    client.pipeline.submit(calls)
    for i in range(0, len(scores), 100):
        _send(client, scores[i : i + 100])
    client.pipeline.flush()

    by_call: dict[str, list[float]] = {}
    labelled: dict[str, int] = {}
    for s in scores:
        if "call_id" in s:
            if "value" in s:
                by_call.setdefault(s["call_id"], []).append(s["value"])
            labelled[s["call_id"]] = labelled.get(s["call_id"], 0) + 1

    # the filter: a call's own score, its trace's or its session's
    low_traces = {s["trace_id"] for s in scores if "trace_id" in s}
    want = {
        c.id
        for c in calls
        if any(v < 0.5 for v in by_call.get(c.id, []))
        or c.trace_id in low_traces
        or c.session == "sess-3"
    }
    got = client.get("/api/calls", params={**RANGE, "score": "helpful:<0.5", "limit": 1000})
    assert {c["id"] for c in got.json()["items"]} == want

    # group means: every numeric score of the group's calls, and how many scores and calls
    ov = client.get("/api/stats/overview", params={**RANGE, "group_by": "app"}).json()
    groups = {g["group"]: g["scores"]["helpful"] for g in ov["groups"]}
    for app in apps:
        mine = [c.id for c in calls if c.app == app]
        values = [v for cid in mine for v in by_call.get(cid, [])]
        assert groups[app]["mean"] == pytest.approx(sum(values) / len(values))
        assert groups[app]["count"] == sum(labelled.get(cid, 0) for cid in mine)
        assert groups[app]["calls"] == sum(1 for cid in mine if cid in labelled)

    # cost per good answer: per model, cost per priced call ÷ share of scored calls whose
    # mean helpful is at least 0.6
    r = client.get(
        "/api/analysis/cost-per-good-answer",
        params={**RANGE, "score": "helpful", "threshold": 0.6, "group_by": "model"},
    ).json()
    expected = {}
    for model in models:
        mine = [c for c in calls if c.request_model == model]
        priced = [c.cost_usd for c in mine if c.cost_usd is not None]
        means = [sum(by_call[c.id]) / len(by_call[c.id]) for c in mine if c.id in by_call]
        share = sum(1 for m in means if m >= 0.6) / len(means)
        expected[model] = (sum(priced) / len(priced)) / share
    got_cost = {i["group"]: i["cost_per_good_answer_usd"] for i in r["items"]}
    assert got_cost == pytest.approx(expected)
    assert [i["group"] for i in r["items"]] == sorted(expected, key=expected.get)


def test_the_call_log_page_filters_by_score(client):
    _seed(client)
    page = client.get("/calls", params={**RANGE, "score": "helpful:<0.5"}).text
    listed = set(re.findall(r'data-id="([^"]+)"', page))
    assert listed == {c for c, v in HELPFUL.items() if v < 0.5}
    assert 'name="score"' in page and 'value="helpful:&lt;0.5"' in page
    bad = client.get("/calls", params={"score": "helpful:~1"})
    assert bad.status_code == 400 and "score" in bad.text
