"""Anomaly rules (#19) on five seeded weeks of seasonal traffic (busy days, quiet nights,
quiet weekends, ±10% noise): a cost spike planted in a quiet night hour of the last week
is found, the normal weeks stay silent, and no fixed threshold finds the spike without
firing on normal hours. The engine fires an anomaly rule on the spike with a notification
that says the usual value and the spread, and stays ok on a normal busy hour."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from gensight.alerts import AlertEngine, Notifier, RuleError, parse_rule
from gensight.alerts.notify import notification_body
from gensight.model.records import CallRecord
from gensight.query import anomaly, answers
from gensight.store.base import CallFilters
from gensight.store.duckdb import DuckDBStore
from tests.support.stores import fresh_chdb_store

#: a Monday 00:00 UTC; the data runs five weeks from here
START = datetime(2026, 9, 7, tzinfo=UTC)
WEEKS = 5
#: the planted spike: the last week's Wednesday 03:00–04:00, a quiet hour
SPIKE = START + timedelta(weeks=4, days=2, hours=3)
SPIKE_COST = 12.0
CALLS_PER_HOUR = 20


def usual_cost(hour_start: datetime) -> float:
    """The hour's normal cost: $2 at night, up to $40 in the afternoon, half at weekends."""
    h = hour_start.hour
    day = 2.0 if h < 7 or h >= 22 else 10.0 + 30.0 * (1 - abs(h - 14) / 8)
    return day / 2 if hour_start.weekday() >= 5 else day


def seeded() -> tuple[list[CallRecord], dict[datetime, float]]:
    rng = random.Random(19)
    calls, hourly = [], {}
    for i in range(WEEKS * 7 * 24):
        t = START + timedelta(hours=i)
        cost = SPIKE_COST if t == SPIKE else usual_cost(t) * rng.uniform(0.9, 1.1)
        hourly[t] = cost
        for j in range(CALLS_PER_HOUR):
            calls.append(
                CallRecord(
                    id=f"a{i:04d}-{j:02d}", trace_id=f"{i:028x}{j:04x}", span_id=f"{i:012x}{j:04x}",
                    ts=t + timedelta(seconds=60 + 170 * j), duration_ms=400.0 + 10 * j,
                    source="gateway", app="checkout", provider="openai", operation="chat",
                    request_model="gpt-4o", input_tokens=500, output_tokens=100,
                    cost_usd=cost / CALLS_PER_HOUR, cost_source="computed", status="ok",
                )
            )  # fmt: skip
    return calls, hourly


@pytest.fixture(scope="module", params=["duckdb", "chdb"])
def store(request, tmp_path_factory, chdb_path: Path):
    calls, _ = seeded()
    if request.param == "duckdb":
        s = DuckDBStore(tmp_path_factory.mktemp("anomaly") / "a.duckdb")
    else:
        s = fresh_chdb_store(chdb_path)
    for i in range(0, len(calls), 5000):
        s.write(calls[i : i + 5000], [], [])
    yield s
    if request.param == "duckdb":
        s.close()


def test_the_spike_is_found_and_the_normal_weeks_are_silent(store):
    _, hourly = seeded()
    # weeks 2–5 judged hour by hour (week 2 has one past week: no baseline yet)
    f = CallFilters(
        app="checkout", since=START + timedelta(weeks=1), until=START + timedelta(weeks=WEEKS)
    )
    found = anomaly.scan(store, f, 3600, ("cost_usd", "calls", "error_rate", "latency_p95_ms"))
    assert [(p["bucket"], p["measure"]) for p in found] == [(SPIKE.isoformat(), "cost_usd")]
    spike = found[0]
    assert spike["value"] == pytest.approx(SPIKE_COST)
    assert spike["usual"] == pytest.approx(2.0, rel=0.1) and spike["spread"] < 0.3
    # a fixed threshold low enough to catch the spike fires on ordinary busy hours
    normal_max = max(v for t, v in hourly.items() if t != SPIKE)
    assert normal_max > SPIKE_COST * 2


def test_an_anomaly_rule_fires_on_the_spike_with_its_baseline(store):
    rule = parse_rule(
        {"name": "checkout cost", "kind": "anomaly", "measure": "cost_usd", "window": "1h",
         "filters": {"app": "checkout"}, "format": "slack"}
    )  # fmt: skip
    assert rule.threshold is None and rule.definition()["kind"] == "anomaly"
    engine = AlertEngine(store, notifier=Notifier(), allow_private_webhooks=True)
    engine.create(rule)
    busy = SPIKE - timedelta(days=1) + timedelta(hours=12)  # Tuesday 15:00–16:00: ~$36
    engine.evaluate(now=busy + timedelta(hours=1))
    (state,) = engine.states()
    assert state["state"] == "ok" and state["value"] > SPIKE_COST * 2
    engine.evaluate(now=SPIKE + timedelta(hours=1))
    (state,) = engine.states()
    assert state["state"] == "firing" and state["value"] == pytest.approx(SPIKE_COST)
    assert state["kind"] == "anomaly" and state["threshold"] < SPIKE_COST
    (event,) = [e for e in store.alert_events(rule.id, 10) if e["state"] == "firing"]
    detail = event["detail"] if isinstance(event["detail"], dict) else orjson.loads(event["detail"])
    body = orjson.loads(notification_body(rule, {**event, "detail": detail}))
    assert body["text"].startswith("[FIRING] checkout cost: cost_usd Wed 2026-10-07 03:00–04:00")
    assert "$12.00, usual $2." in body["text"] and " ± $0." in body["text"]
    # the next hour is ordinary again
    engine.evaluate(now=SPIKE + timedelta(hours=2))
    assert engine.states()[0]["state"] == "ok"
    # the trailing window on a bucket boundary is the scan's bucket: one answer
    f = CallFilters(app="checkout", since=SPIKE, until=SPIKE + timedelta(hours=1))
    (point,) = anomaly.scan(store, f, 3600)
    assert point["usual"] == pytest.approx(detail["baseline"]["usual"])
    assert point["spread"] == pytest.approx(detail["baseline"]["spread"])
    assert answers.totals(store, f)["cost_usd"] == pytest.approx(point["value"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"threshold": 5}, "threshold"),
        ({"measure": "score_mean", "score": "x"}, "measure"),
        ({"window": "month"}, "window"),
        ({"window": "2d"}, "window"),
        ({"op": ">="}, "op"),
        ({"k": 0}, "k"),
        ({"weeks": 1}, "weeks"),
        ({"min_calls": -1}, "min_calls"),
        ({"floor": -1}, "floor"),
        ({"kind": "magic"}, "kind"),
    ],
)
def test_bad_anomaly_rules_name_their_field(change, field):
    rule = {"name": "x", "kind": "anomaly", "measure": "cost_usd", "window": "1h", **change}
    with pytest.raises(RuleError) as e:
        parse_rule(rule)
    assert e.value.field == field


def test_threshold_rules_refuse_anomaly_fields_and_keep_their_shape():
    with pytest.raises(RuleError) as e:
        parse_rule({"name": "x", "measure": "calls", "threshold": 1, "k": 3})
    assert e.value.field == "k"
    plain = parse_rule({"name": "x", "measure": "calls", "threshold": 1})
    assert "kind" not in plain.definition() and plain.threshold == 1.0


def test_quiet_hours_and_new_series_do_not_page(tmp_path: Path):
    store = DuckDBStore(tmp_path / "q.duckdb")
    base = START + timedelta(hours=3)
    calls = []
    for w in range(4):  # three quiet weeks of 3 calls at $0.10, then 10 calls at $5
        n, cost = (3, 0.1) if w < 3 else (10, 5.0)
        for j in range(n):
            calls.append(
                CallRecord(
                    id=f"q{w}-{j}", trace_id=f"{w:016x}{j:016x}", span_id=f"{w:08x}{j:08x}",
                    ts=base + timedelta(weeks=w, minutes=j), duration_ms=5.0, source="gateway",
                    app="quiet", cost_usd=cost / n, cost_source="computed",
                )
            )  # fmt: skip
    store.write(calls, [], [])
    now = base + timedelta(weeks=3, hours=1)
    f = CallFilters(app="quiet")
    few = anomaly.trailing(store, f, "cost_usd", timedelta(hours=1), now)
    assert few["reason"] == "too few calls" and not few["anomalous"]
    assert anomaly.trailing(store, f, "cost_usd", timedelta(hours=1), now, min_calls=5)["anomalous"]
    young = anomaly.trailing(
        store, f, "cost_usd", timedelta(hours=1), base + timedelta(weeks=1, hours=1)
    )
    assert young["reason"] == "no baseline"
