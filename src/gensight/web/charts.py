"""Chart.js configurations from the query layer's answers.

Nothing here counts anything: every value is one the query layer answered (an overview
series point or group, a latency-vs-tokens point or fit); groups come in the order of
the overview's ``groups``, the same rows the tables under the charts show.
The configs are plain JSON; ``static/gensight.js`` adds the tick and tooltip formatters
named in each config's ``gensight`` key.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

from gensight.web.render import parse_ts

PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#86bcb6",
)  # fmt: skip
OTHER = "#bab0ac"
NONE_LABEL = "(none)"

#: Fixed colours for error classes, so a rate limit looks the same on every page.
ERROR_COLOURS = {
    "rate_limit": "#f28e2b",
    "upstream_error": "#e15759",
    "timeout": "#b07aa1",
    "connection": "#9c755f",
    "invalid_request": "#4e79a7",
    "auth": "#edc948",
    "cancelled": "#76b7b2",
    "unknown": "#bab0ac",
}


class Colours:
    """One colour per name for the whole page, the same on every page where it can be.

    A name's colour comes from a hash of it (so gpt-4o is the same colour on the
    dashboard and on the analysis page); when that colour is already taken on this page,
    the next free one.
    """

    def __init__(self) -> None:
        self._given: dict[str, str] = {}

    def __call__(self, name: str | None) -> str:
        label = group_label(name)
        if label == "(other)":
            return OTHER
        if label not in self._given:
            taken = set(self._given.values())
            start = zlib.crc32(label.encode()) % len(PALETTE)
            for i in range(len(PALETTE)):
                colour = PALETTE[(start + i) % len(PALETTE)]
                if colour not in taken:
                    break
            else:
                colour = PALETTE[(start + len(self._given)) % len(PALETTE)]
            self._given[label] = colour
        return self._given[label]


def group_label(group: str | None) -> str:
    """A series group as shown (``None`` is the calls with no value for the dimension)."""
    return NONE_LABEL if group is None else str(group)


def bucket_label(bucket: str, interval: int) -> str:
    """A bucket start as a short axis label (UTC): time of day, or date and time."""
    ts = parse_ts(bucket)
    if interval >= 86400:
        return ts.strftime("%m-%d")
    if interval >= 3600 * 3:
        return ts.strftime("%m-%d %H:%M")
    if interval < 60:
        return ts.strftime("%H:%M:%S")
    return ts.strftime("%H:%M")


def _buckets(series: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for p in series:
        seen.setdefault(p["bucket"], None)
    return list(seen)


def _by_group(series: list[dict[str, Any]]) -> dict[str | None, dict[str, dict[str, Any]]]:
    out: dict[str | None, dict[str, dict[str, Any]]] = {}
    for p in series:
        out.setdefault(p["group"], {})[p["bucket"]] = p
    return out


def _isolated(data: list[Any]) -> list[int]:
    """Point radii: a dot only where a value has no neighbour to draw a line to."""
    radius = []
    for i, v in enumerate(data):
        before = data[i - 1] if i > 0 else None
        after = data[i + 1] if i + 1 < len(data) else None
        radius.append(3 if v is not None and before is None and after is None else 0)
    return radius


def _line(label: str, data: list[Any], colour: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "line",
        "label": label,
        "data": data,
        "borderColor": colour,
        "backgroundColor": colour,
        "borderWidth": 2,
        "pointRadius": _isolated(data),
        "pointHoverRadius": 4,
        "tension": 0.25,
        **extra,
    }


def _bar(label: str, data: list[Any], colour: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "bar",
        "label": label,
        "data": data,
        "backgroundColor": colour,
        "borderColor": colour,
        **extra,
    }


def _time_chart(
    labels: list[str], datasets: list[dict[str, Any]], y: str, stacked: bool = False
) -> dict[str, Any]:
    lines_only = all(d["type"] == "line" for d in datasets)
    return {
        "type": "line" if lines_only else "bar",
        "data": {"labels": labels, "datasets": datasets},
        "options": {
            "scales": {
                "x": {"stacked": stacked, "ticks": {"maxTicksLimit": 12, "maxRotation": 0}},
                "y": {"stacked": stacked, "beginAtZero": True},
            },
        },
        "gensight": {"y": y},
    }


def quality_chart(quality: dict[str, Any], interval: int) -> dict[str, Any]:
    """One score over time: its mean per bucket (a line) and how many calls were scored
    (bars, on their own axis), from ``quality.score_over_time``."""
    points = quality["series"]
    labels = [bucket_label(p["bucket"], interval) for p in points]
    mean = _line(f"{quality['name']} mean", [p["mean"] for p in points], "#59a14f",
                 spanGaps=True, gensightFormat="num", order=-1)  # fmt: skip
    counted = _bar("scored calls", [p["calls"] for p in points], "#bab0ac", yAxisID="y1",
                   gensightFormat="int")  # fmt: skip
    chart = _time_chart(labels, [mean, counted], "num")
    chart["options"]["scales"]["y"]["beginAtZero"] = False
    chart["options"]["scales"]["y1"] = {
        "position": "right", "beginAtZero": True,
        "grid": {"drawOnChartArea": False}, "ticks": {"maxTicksLimit": 6},
    }  # fmt: skip
    chart["gensight"]["y1"] = "int"
    return chart


def dashboard_charts(
    overall: dict[str, Any],
    grouped: dict[str, Any] | None,
    by_model: dict[str, Any],
    by_error: dict[str, Any],
    colours: Colours,
) -> dict[str, Any]:
    """The dashboard's six charts from overview answers (ungrouped, by the chosen
    group, by model, by error class)."""
    interval = overall["interval"]
    buckets = _buckets(overall["series"])
    labels = [bucket_label(b, interval) for b in buckets]
    points = [p for p in overall["series"] if p["group"] is None]
    charts: dict[str, Any] = {}

    # With a group-by, every time chart is split by it, each group in one colour.
    per = _by_group(grouped["series"]) if grouped is not None else {}
    order = [r["group"] for r in grouped["groups"]] if grouped is not None else []

    def split(measure: Callable[[dict[str, Any]], Any], stack: str | None) -> list[dict[str, Any]]:
        sets = []
        for g in order:
            data = [measure(per[g][b]) if b in per.get(g, {}) else None for b in buckets]
            if stack:
                sets.append(_bar(group_label(g), [v or 0 for v in data], colours(g), stack=stack))
            else:
                sets.append(_line(group_label(g), data, colours(g), spanGaps=True))
        return sets

    # Calls (stacked by the group) and the error rate on its own axis.
    if grouped is not None:
        calls_sets = split(lambda p: p["calls"], "calls")
    else:
        calls_sets = [_bar("calls", [p["calls"] for p in points], PALETTE[0], stack="calls")]
    rates = [p["error_rate"] if p["calls"] else None for p in points]
    radius = [3 if r else 0 for r in rates]  # dots only where something failed
    errors = _line("error rate", rates, "#d62728", order=-1, pointRadius=radius, yAxisID="y1",
                   gensightFormat="pct", spanGaps=True)  # fmt: skip
    charts["calls"] = _time_chart(labels, [*calls_sets, errors], "int", stacked=True)
    charts["calls"]["options"]["scales"]["y1"] = {
        "position": "right", "beginAtZero": True, "suggestedMax": 0.1,
        "grid": {"drawOnChartArea": False}, "ticks": {"maxTicksLimit": 6},
    }  # fmt: skip
    charts["calls"]["gensight"]["y1"] = "pct"

    if grouped is not None:
        lat = split(lambda p: p["latency_ms"]["p95"], None)
        for d in lat:
            d["label"] += " p95"
    else:
        lat = [
            _line("p50", [p["latency_ms"]["p50"] for p in points], "#59a14f"),
            _line("p95", [p["latency_ms"]["p95"] for p in points], "#f28e2b"),
            _line("p99", [p["latency_ms"]["p99"] for p in points], "#e15759"),
            _line("TTFT p50", [p["ttft_ms"]["p50"] for p in points], "#76b7b2",
                  borderDash=[5, 4]),
            _line("TTFT p95", [p["ttft_ms"]["p95"] for p in points], "#4e79a7",
                  borderDash=[5, 4]),
        ]  # fmt: skip
    charts["latency"] = _time_chart(labels, lat, "ms")
    charts["latency"]["options"]["scales"]["y"]["ticks"] = {"maxTicksLimit": 6}

    if grouped is not None:
        tokens = split(lambda p: p["input_tokens"] + p["output_tokens"], "tokens")
    else:
        tokens = [
            _bar("input", [p["input_tokens"] for p in points], "#4e79a7", stack="tokens"),
            _bar("output", [p["output_tokens"] for p in points], "#f28e2b", stack="tokens"),
        ]
    charts["tokens"] = _time_chart(labels, tokens, "int", stacked=True)

    per_model = _by_group(by_model["series"])
    models = by_model["groups"]
    if grouped is not None:
        cost_sets = split(lambda p: p["cost_usd"], "cost")
    else:
        cost_sets = [
            _bar(group_label(m["group"]),
                 [per_model[m["group"]].get(b, {}).get("cost_usd", 0) for b in buckets],
                 colours(m["group"]), stack="cost")
            for m in models
        ]  # fmt: skip
    charts["cost"] = _time_chart(labels, cost_sets, "usd", stacked=True)

    charts["models"] = {
        "type": "doughnut",
        "data": {
            "labels": [group_label(m["group"]) for m in models],
            "datasets": [
                {
                    "label": "calls",
                    "data": [m["calls"] for m in models],
                    "backgroundColor": [colours(m["group"]) for m in models],
                }
            ],
        },
        "options": {"plugins": {"legend": {"position": "right"}}},
        "gensight": {"y": "int"},
    }

    classes = [r for r in by_error["groups"] if r["group"] is not None]
    charts["errors"] = {
        "type": "bar",
        "data": {
            "labels": [r["group"] for r in classes],
            "datasets": [
                {
                    "label": "errors",
                    "data": [r["errors"] for r in classes],
                    "backgroundColor": [ERROR_COLOURS.get(r["group"], OTHER) for r in classes],
                    "maxBarThickness": 28,
                }
            ],
        },
        "options": {
            "indexAxis": "y",
            "plugins": {"legend": {"display": False}},
            "scales": {"x": {"beginAtZero": True}},
        },
        "gensight": {"x": "int"},
    }
    return charts


def scatter_chart(answer: dict[str, Any], colours: Colours) -> dict[str, Any]:
    """Latency (s) against output tokens per model, with each model's fitted line."""
    by_model: dict[str | None, list[dict[str, float]]] = {}
    max_tokens: dict[str | None, float] = {}
    for p in answer["points"]:
        by_model.setdefault(p["model"], []).append(
            {"x": p["output_tokens"], "y": p["duration_ms"] / 1000}
        )
        max_tokens[p["model"]] = max(max_tokens.get(p["model"], 0), p["output_tokens"])
    datasets: list[dict[str, Any]] = []
    for model, pts in by_model.items():
        datasets.append(
            {
                "type": "scatter",
                "label": group_label(model),
                "data": pts,
                "backgroundColor": colours(model) + "b3",
                "borderColor": colours(model),
                "pointRadius": 3,
            }
        )
    for fit in answer["models"]:
        slope, intercept = fit["slope_ms_per_token"], fit["intercept_ms"]
        if slope is None or intercept is None:
            continue
        top = max_tokens.get(fit["model"], 0)
        datasets.append(
            {
                "type": "line",
                "label": f"{group_label(fit['model'])} fit",
                "data": [
                    {"x": 0, "y": intercept / 1000},
                    {"x": top, "y": (intercept + slope * top) / 1000},
                ],
                "borderColor": colours(fit["model"]),
                "backgroundColor": colours(fit["model"]),
                "borderWidth": 2,
                "borderDash": [6, 4],
                "pointRadius": 0,
                "fill": False,
            }
        )
    return {
        "type": "scatter",
        "data": {"datasets": datasets},
        "options": {
            "scales": {
                "x": {"type": "linear", "beginAtZero": True,
                      "title": {"display": True, "text": "output tokens"}},
                "y": {"beginAtZero": True, "title": {"display": True, "text": "latency (s)"}},
            },
        },
        "gensight": {"y": "s", "x": "int"},
    }  # fmt: skip
