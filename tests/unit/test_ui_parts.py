"""The UI's pure parts: waterfall layout, chart configs, number formats, packaging."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from gensight.query.analysis import fill_series, group_totals
from gensight.web import charts
from gensight.web.render import ENV, STATIC_DIR, fmt_compact, fmt_ms, fmt_seconds, fmt_usd
from gensight.web.waterfall import waterfall

T0 = "2026-01-31T12:00:00+00:00"


def _span(span_id: str, parent: str | None, start_ms: int, duration_ms: float, **kw) -> dict:
    from datetime import datetime, timedelta

    ts = datetime.fromisoformat(T0) + timedelta(milliseconds=start_ms)
    return {"trace_id": "t", "span_id": span_id, "parent_span_id": parent, "name": span_id,
            "kind": "internal", "ts": ts.isoformat(), "duration_ms": duration_ms,
            "status": "ok", "app": "a", "call_id": None, **kw}  # fmt: skip


def test_waterfall_orders_depth_first_and_places_bars_in_percent():
    spans = [
        _span("b", "root", 500, 500),
        _span("root", None, 0, 1000),
        _span("a", "root", 100, 300),
        _span("a1", "a", 150, 100),
    ]
    wf = waterfall({"spans": spans, "calls": []})
    assert [(r["span_id"], r["depth"]) for r in wf["rows"]] == [
        ("root", 0), ("a", 1), ("a1", 2), ("b", 1),
    ]  # fmt: skip
    rows = {r["span_id"]: r for r in wf["rows"]}
    assert wf["duration_ms"] == 1000
    assert (rows["root"]["left"], rows["root"]["width"]) == (0, 100)
    assert (rows["a1"]["left"], rows["a1"]["width"]) == (15, 10)
    assert rows["b"]["offset_ms"] == 500


def test_waterfall_keeps_orphans_cycles_and_calls_without_spans():
    spans = [
        _span("x", "never-arrived", 0, 10),
        _span("p", "q", 5, 1),
        _span("q", "p", 6, 0),  # a parent cycle must not loop or vanish
    ]
    call = {"id": "c1", "trace_id": "t", "span_id": "gw", "parent_span_id": "x", "ts": T0,
            "duration_ms": 4.0, "status": "error", "app": "a", "operation": "chat",
            "request_model": "m", "ttft_ms": 1.0}  # fmt: skip
    wf = waterfall({"spans": spans, "calls": [call]})
    names = [r["span_id"] for r in wf["rows"]]
    assert sorted(names) == ["gw", "p", "q", "x"]
    rows = {r["span_id"]: r for r in wf["rows"]}
    assert rows["x"]["orphan"] and rows["x"]["depth"] == 0
    assert rows["gw"]["depth"] == 1 and rows["gw"]["name"] == "chat m"
    assert rows["gw"]["call"] is call and rows["gw"]["ttft_width"] == 10
    assert rows["q"]["width"] >= 0.3  # a 0 ms span still shows


def test_colours_are_stable_per_name_and_distinct_per_page():
    one, two = charts.Colours(), charts.Colours()
    assert one("gpt-4o") == two("gpt-4o")
    three = charts.Colours()
    assert len({three(f"model-{i}") for i in range(10)}) == 10
    assert one("(other)") == charts.OTHER


def test_dashboard_charts_use_the_series_values():
    from datetime import datetime

    since = datetime.fromisoformat(T0)
    until = datetime.fromisoformat("2026-01-31T12:03:00+00:00")
    rows = [
        {"bucket": since, "grp": "m1", "calls": 2, "errors": 1, "cost_usd": 0.5},
        {"bucket": datetime.fromisoformat("2026-01-31T12:02:00+00:00"), "grp": "m2",
         "calls": 1, "errors": 0, "cost_usd": 0.25},
    ]  # fmt: skip
    ov = {"interval": 60, "series": fill_series([], since, until, 60)}
    groups, kept = group_totals(
        [{"grp": "m1", "calls": 2, "errors": 1, "cost_usd": 0.5},
         {"grp": "m2", "calls": 1, "errors": 0, "cost_usd": 0.25}]
    )  # fmt: skip
    by_model = {"groups": groups, "series": fill_series(rows, since, until, 60, kept)}
    by_error = {"groups": [], "series": []}
    cfg = charts.dashboard_charts(ov, None, by_model, by_error, charts.Colours())
    cost = {d["label"]: d["data"] for d in cfg["cost"]["data"]["datasets"]}
    assert cost == {"m1": [0.5, 0, 0], "m2": [0, 0, 0.25]}
    assert cfg["models"]["data"]["datasets"][0]["data"] == [2, 1]
    assert cfg["calls"]["data"]["labels"] == ["12:00", "12:01", "12:02"]
    assert [(t["group"], t["calls"], t["error_rate"]) for t in groups] == [
        ("m1", 2, 0.5), ("m2", 1, 0.0),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "ms", "usd"),
    [(None, "–", "–"), (0, "0 ms", "$0"), (0.5, "0.50 ms", "$0.5000"),
     (345.4, "345 ms", "$345.40"), (1234.5, "1.23 s", "$1,234.50"), (0.000123, "0.00 ms",
     "$0.00012"), (1.4e-7, "0.00 ms", "$0.00000014"), (4e-9, "0.00 ms", "<$0.00000001")],
)  # fmt: skip
def test_formats(value, ms, usd):
    assert fmt_ms(value) == ms
    assert fmt_usd(value) == usd


@pytest.mark.parametrize(
    ("call", "shown"),
    [
        ({"cost_usd": None, "input_tokens": None, "output_tokens": None}, "no usage"),
        ({"cost_usd": None, "input_tokens": 10, "output_tokens": 0}, "unpriced"),
        ({"cost_usd": 1.4e-7, "input_tokens": 10, "output_tokens": 2}, "$0.00000014"),
        ({"cost_usd": 0.002, "input_tokens": 10, "output_tokens": 2, "tokens_estimated": True},
         "≈$0.0020"),
    ],
)  # fmt: skip
def test_cost_labels_say_why_a_cost_is_missing(call, shown):
    macros = ENV.get_template("_macros.html").module
    html = str(macros.cost({"tokens_estimated": False, **call}))
    text = re.sub(r"<[^>]+>", "", html).strip()
    assert text == shown
    assert not re.search(r"\$0\.0+\b", html)  # never a non-zero cost shown as zero


def test_compact_and_interval_formats():
    assert [fmt_compact(v) for v in (15, 9999, 10_000, 458_257, 999_999, 1_234_567)] == [
        "15", "9,999", "10.0k", "458k", "1.00M", "1.23M",
    ]  # fmt: skip
    assert [fmt_seconds(v) for v in (30, 600, 10800, 86400, 90)] == [
        "30 s", "10 min", "3 h", "1 d", "90 s",
    ]  # fmt: skip


def test_static_files_and_templates_ship_in_the_wheel(tmp_path: Path):
    """hatch builds the wheel from src/gensight: templates and vendored files go with it."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    uv = Path(sys.executable).with_name("uv")
    if not uv.exists():
        pytest.skip("uv is not installed in this environment")
    # --offline: tests never reach the network; the build backend comes from uv's cache
    out = subprocess.run(
        [str(uv), "build", "--offline", "--wheel", "--out-dir", str(tmp_path), str(root)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if out.returncode != 0 and "network was disabled" in out.stderr:
        pytest.skip(f"hatchling is not in uv's cache and the network is off: {out.stderr[-300:]}")
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("gensight-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in STATIC_DIR.rglob("*"):
        if f.is_file():
            assert f"gensight/web/static/{f.relative_to(STATIC_DIR).as_posix()}" in names
    for t in ("base.html", "dashboard.html", "calls.html", "call.html", "trace.html",
              "analysis.html", "error.html", "_macros.html"):  # fmt: skip
        assert f"gensight/web/templates/{t}" in names
