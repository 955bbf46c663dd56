"""The savings sections of ``/analysis`` and the dashboard (issue #19): what-if prices,
cache opportunities, prompt templates, forecast and anomalies, rendered from the very
answers ``gensight.web.savings_api`` returns."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request

from gensight.alerts.notify import anomaly_text
from gensight.model import vocab
from gensight.query import anomaly, cache, forecast, templates, whatif
from gensight.query.params import ParamError
from gensight.store.base import CallFilters
from gensight.web.render import query_string


def analysis_sections(request: Request, f: CallFilters, params: dict[str, str]) -> dict[str, Any]:
    """The template context of the savings sections, and their JSON twins."""
    store = request.app.state.store
    qp = request.query_params
    as_text = qp.get("as") or ",".join(vocab.WHAT_IF_DEFAULTS)
    targets = whatif.parse_targets(as_text)
    try:
        wi = whatif.what_if(store, request.app.state.pricer, f, targets, "model")
        wi_error = None
    except ParamError as e:  # an unpriced model typed in the form: say so in the section
        wi, wi_error = None, str(e)
    opportunities = cache.cache_opportunities(store, request.app.state.pricer, f)
    return {
        "templates": templates.templates(store, f),
        "cache": opportunities,
        "what_if": wi,
        "what_if_error": wi_error,
        "what_if_as": as_text,
        "savings_json": {
            "what-if": "/api/analysis/what-if" + query_string({**params, "as": as_text}),
            "cache": "/api/analysis/cache" + query_string(params),
            "templates": "/api/analysis/templates" + query_string(params),
        },
    }


#: The measures the dashboard marks (its cost and calls charts).
DASHBOARD_MEASURES = ("cost_usd", "calls")


def dashboard_parts(request: Request, f: CallFilters, params: dict[str, str]) -> dict[str, Any]:
    """The dashboard's forecast tiles and anomalies (hourly, against past weeks)."""
    store = request.app.state.store
    found = []
    if f.since is not None and f.until is not None:
        seconds = anomaly.bucket_for(f)
        for p in anomaly.scan(store, f, seconds, DASHBOARD_MEASURES):
            start = datetime.fromisoformat(p["bucket"])
            verdict = {**p, "since": p["bucket"],
                       "until": (start + timedelta(seconds=seconds)).isoformat()}  # fmt: skip
            found.append({**verdict, "text": anomaly_text(p["measure"], verdict)})
    kept = {k: v for k, v in params.items() if k not in ("since", "until", "interval")}
    return {
        "forecast": forecast.month_end(store, replace(f, since=None, until=None)),
        "anomalies": found,
        "forecast_json": "/api/analysis/forecast" + query_string(kept),
        "anomalies_json": "/api/analysis/anomalies" + query_string(params),
    }


def mark_anomalies(charts: dict[str, Any] | None, overall: dict[str, Any], found: list) -> None:
    """A red dot on the cost and calls charts at every bucket inside an anomalous one."""
    if not charts or not found:
        return
    interval = overall["interval"]
    points = [p for p in overall["series"] if p["group"] is None]
    for measure, chart, value in (("cost_usd", "cost", "cost_usd"), ("calls", "calls", "calls")):
        spans = [
            (datetime.fromisoformat(a["since"]), datetime.fromisoformat(a["until"]))
            for a in found
            if a["measure"] == measure
        ]
        if not spans or chart not in charts:
            continue
        data = []
        for p in points:
            start = datetime.fromisoformat(p["bucket"])
            end = start + timedelta(seconds=interval)
            inside = any(s < end and start < e for s, e in spans)
            data.append(p[value] if inside else None)
        charts[chart]["data"]["datasets"].append(
            {
                "type": "line",
                "label": "anomaly",
                "data": data,
                "showLine": False,
                "pointRadius": 6,
                "pointHoverRadius": 7,
                "pointStyle": "triangle",
                "borderColor": "#b91c1c",
                "backgroundColor": "#b91c1c",
                "stack": "anomaly",
                "order": -2,
            }  # fmt: skip
        )
