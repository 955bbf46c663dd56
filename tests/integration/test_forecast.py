"""Month-end forecast (#19 item 5) on a seeded month with known answers, on both stores:
month to date, the 7-day run rate, the projection and its range, per app and in total;
the dashboard's tiles and the forecast_month_usd alert measure give the same numbers."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gensight.alerts import AlertEngine, Notifier, parse_rule
from gensight.model.records import CallRecord
from gensight.model.settings import Settings
from gensight.query import forecast
from gensight.store.base import CallFilters
from gensight.store.duckdb import DuckDBStore
from gensight.web.app import create_app
from tests.support.stores import fresh_chdb_store

NOW = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
LEFT = 11.5  # days from Oct 20 12:00 to Nov 1 00:00
NOISY = [8.0, 12.0, 8.0, 12.0, 8.0, 12.0, 8.0]  # app c's last seven days (Oct 13–19)


def seeded() -> list[CallRecord]:
    calls = []

    def add(app: str, day: datetime, cost: float, hours: int = 24) -> None:
        for h in range(hours):
            i = len(calls)
            calls.append(CallRecord(
                id=f"f{i:05d}", trace_id=f"{i:032x}", span_id=f"{i:016x}",
                ts=day + timedelta(hours=h, minutes=30), duration_ms=5.0, source="gateway",
                app=app, provider="openai", request_model="gpt-4o", input_tokens=10,
                output_tokens=1, cost_usd=cost / 24, cost_source="computed",
            ))  # fmt: skip

    for d in range(1, 21):  # a: $10 a day from Oct 1, today's first 12 hours too
        day = datetime(2026, 10, d, tzinfo=UTC)
        add("a", day, 10.0, 12 if d == 20 else 24)
        if 13 <= d <= 19:
            add("b", day, 5.0)
            add("c", day, NOISY[d - 13])
    add("a", datetime(2026, 9, 30, tzinfo=UTC), 1000.0)  # last month: not this month's
    return calls


@pytest.fixture(params=["duckdb", "chdb"])
def store(request, tmp_path: Path, chdb_path: Path):
    s = (
        DuckDBStore(tmp_path / "f.duckdb")
        if request.param == "duckdb"
        else fresh_chdb_store(chdb_path)
    )
    s.write(seeded(), [], [])
    return s


def test_month_end_forecast_per_app_and_total(store):
    got = forecast.month_end(store, CallFilters(), NOW)
    assert got["month"] == "2026-10" and got["days_left"] == pytest.approx(LEFT)
    apps = {a["app"]: a for a in got["apps"]}
    a, b, c = apps["a"], apps["b"], apps["c"]
    assert a["month_to_date_usd"] == pytest.approx(195.0)
    assert a["rate_usd_per_day"] == pytest.approx(10.0)
    assert a["forecast_usd"] == pytest.approx(195.0 + 10.0 * LEFT)
    assert a["low_usd"] == pytest.approx(a["forecast_usd"]) == pytest.approx(a["high_usd"])
    assert b["month_to_date_usd"] == pytest.approx(35.0) and b["rate_usd_per_day"] == pytest.approx(
        5
    )
    assert b["forecast_usd"] == pytest.approx(35.0 + 5.0 * LEFT)
    s = statistics.stdev(NOISY)
    half = 1.96 * math.sqrt(LEFT * s * s + LEFT * LEFT * s * s / 7)
    c_point = sum(NOISY) + statistics.fmean(NOISY) * LEFT
    assert c["forecast_usd"] == pytest.approx(c_point)
    assert c["low_usd"] == pytest.approx(c_point - half) and c["high_usd"] == pytest.approx(
        c_point + half
    )
    total_mtd = 195.0 + 35.0 + sum(NOISY)
    assert got["month_to_date_usd"] == pytest.approx(total_mtd)
    assert got["rate_usd_per_day"] == pytest.approx(10.0 + 5.0 + statistics.fmean(NOISY))
    assert got["forecast_usd"] == pytest.approx(total_mtd + got["rate_usd_per_day"] * LEFT)
    assert [x["app"] for x in got["apps"]] == ["a", "c", "b"]  # costliest projection first
    only_b = forecast.month_end(store, CallFilters(app="b"), NOW)
    assert only_b["forecast_usd"] == pytest.approx(b["forecast_usd"])


def test_forecast_alert_and_api_agree(store, tmp_path: Path):
    engine = AlertEngine(store, notifier=Notifier(), allow_private_webhooks=True)
    rule = {"name": "october", "measure": "forecast_month_usd", "window": "month",
            "threshold": 300, "filters": {"app": "a"}}  # fmt: skip
    engine.create(parse_rule(rule))
    engine.evaluate(now=NOW)
    (state,) = engine.states()
    assert state["state"] == "firing" and state["value"] == pytest.approx(195.0 + 10.0 * LEFT)
    # the dashboard and the API forecast the current month (of the clock): recent calls
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    recent = [
        CallRecord(id=f"r{d}", trace_id=f"{d:032x}", span_id=f"{d:016x}",
                   ts=today - timedelta(days=d) + timedelta(hours=1), duration_ms=5.0,
                   source="gateway", app="recent", cost_usd=4.0, cost_source="computed")
        for d in range(1, 4)
    ]  # fmt: skip
    store.write(recent, [], [])
    with TestClient(create_app(Settings(data_dir=tmp_path / "d"), store=store)) as client:
        body = client.get("/api/analysis/forecast", params={"app": "recent"}).json()
        (app,) = body["apps"]
        assert app["app"] == "recent" and app["rate_usd_per_day"] == pytest.approx(4.0)
        page = client.get("/", params={"since": "7d", "app": "recent"})
        assert page.status_code == 200
        assert 'id="tile-forecast"' in page.text and 'id="table-forecast"' in page.text
        assert "$4.00/day" in page.text
