"""The pages: ``/`` dashboard, ``/calls`` log, ``/calls/{id}``, ``/traces/{id}``, ``/analysis``.

Each view parses its query parameters with the query layer's functions (the ones the
API's routes use) and renders the query layer's answers, the objects the API returns,
never a second computation; it links that API URL as the page's JSON twin. A bad
parameter gets a 400 page naming it; a missing call or trace a 404 page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from gensight.model import vocab
from gensight.query import answers, quality
from gensight.query.params import (
    ParamError,
    call_filters,
    parse_cursor,
    parse_group_by,
    parse_interval,
    parse_sort,
    parse_time,
    with_range,
)
from gensight.store.base import CallFilters
from gensight.web import call_log, charts
from gensight.web.render import error_page, query_string, render
from gensight.web.savings_pages import analysis_sections, dashboard_parts, mark_anomalies
from gensight.web.waterfall import span_detail, waterfall

router = APIRouter(include_in_schema=False)

FILTER_PARAMS = vocab.FILTER_NAMES
RANGES = ("15m", "1h", "6h", "24h", "7d", "30d")
REFRESH_SECONDS = 30


def page(view: Callable[..., Response]) -> Callable[..., Response]:
    """A view whose bad parameters answer with a 400 page naming the parameter."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return view(*args, **kwargs)
        except ParamError as e:
            return error_page(kwargs["request"], 400, "Bad parameter", str(e), param=e.param)

    return wrapper


def _store(request: Request) -> Any:
    return request.app.state.store


def _params(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    qp = request.query_params
    return {n: qp[n] for n in names if qp.get(n)}


def _filters(request: Request) -> CallFilters:
    return call_filters(**{n: request.query_params.get(n) or None for n in FILTER_PARAMS})


def _choice(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and value not in allowed:
        raise ParamError(name, f"must be one of {', '.join(allowed)}")
    return value


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ParamError(name, f"{text!r} is not a whole number") from None
    if not low <= value <= high:
        raise ParamError(name, f"must be between {low} and {high}")
    return value


def _has_calls(request: Request) -> bool:
    items, _ = _store(request).list_calls(CallFilters(), 1, None)
    return bool(items)


def _link(path: str) -> Callable[..., str]:
    """A URL builder for the page's own links: current parameters with some changed."""

    def url(params: dict[str, Any], **changes: Any) -> str:
        return path + query_string({**params, **changes})

    return url


@router.get("/", response_class=HTMLResponse)
@page
def dashboard(request: Request) -> Response:
    """Tiles, six charts and group tables over a time range (default: the last 24 hours)."""
    filters = _filters(request)
    group_by = parse_group_by(request.query_params.get("group_by"))
    refresh = request.query_params.get("refresh") == "on"
    store = _store(request)
    fitted = None
    if filters.since is None and filters.until is None:
        # no range asked for: the shortest one that holds the recent calls
        fitted = answers.fitting_range(store, filters, RANGES)
        if fitted is not None:
            filters = replace(filters, since=parse_time("since", fitted))
    f = with_range(filters)
    interval = parse_interval(request.query_params.get("interval"), f)
    overall = answers.overview(store, f, interval, None)
    # the score the quality tile and chart show: the one asked for, else the most used
    score_name = quality.chosen_score(overall["scores"], request.query_params.get("quality_score"))
    if score_name:
        overall["quality"] = quality.score_over_time(store, f, interval, score_name)
    by_model = answers.overview(store, f, interval, "model")
    # Errors by class only need the failed calls: the same counts, a far smaller query.
    by_error = answers.overview(store, replace(f, status="error"), interval, "error_class")
    grouped = by_model if group_by == "model" else None
    if group_by and grouped is None:
        grouped = answers.overview(store, f, interval, group_by)

    params = _params(request, (*FILTER_PARAMS, "interval", "group_by", "quality_score"))
    empty = overall["totals"]["calls"] == 0
    window = {"since": overall["since"], "until": overall["until"]}

    def calls_link(**changes: str) -> str:
        kept = {k: v for k, v in params.items() if k in FILTER_PARAMS}
        return "/calls" + query_string({**kept, **window, **changes})

    colours = charts.Colours()
    # the chosen groups get the first colours, then the models, in order of calls
    for r in [*(grouped["groups"] if grouped else []), *by_model["groups"]]:
        colours(r["group"])
    shown = None
    if not empty:
        shown = charts.dashboard_charts(overall, grouped, by_model, by_error, colours)
        if score_name:
            shown["quality"] = charts.quality_chart(overall["quality"], interval)
    savings = dashboard_parts(request, f, params)
    mark_anomalies(shown, overall, savings["anomalies"])
    return render(
        request,
        "dashboard.html",
        nav="dashboard",
        params=params,
        url=_link("/"),
        link_params={**params, "refresh": "on"} if refresh else params,
        calls_link=calls_link,
        refresh=REFRESH_SECONDS if refresh else None,
        refresh_on=refresh,
        ranges=RANGES,
        range_now=params.get("since") if "until" not in params else None,
        fitted=fitted,
        group_by=group_by,
        group_by_choices=vocab.GROUP_BY,
        overview=overall,
        totals=overall["totals"],
        score_names=sorted(overall["scores"]),
        quality=overall.get("quality"),
        quality_totals=overall["scores"].get(score_name or "")
        or {"mean": None, "count": 0, "calls": 0},
        group_rows=grouped["groups"] if grouped else [],
        model_rows=by_model["groups"],
        error_rows=[r for r in by_error["groups"] if r["group"]],
        charts=shown,
        savings=savings,
        empty=empty,
        no_calls_at_all=empty and not _has_calls(request),
        json_url="/api/stats/overview" + query_string({**params, "quality_score": score_name}),
    )  # fmt: skip


@router.get("/calls", response_class=HTMLResponse)
@page
def calls(request: Request) -> Response:
    """The call log: filters as query parameters, sorted (newest first by default) and
    paged by cursor, with the total, error messages and one-line previews."""
    params = _params(request, (*FILTER_PARAMS, "limit", "sort", "order"))
    store = _store(request)
    try:
        filters = _filters(request)
        limit = _int(request, "limit", 50, 1, 1000)
        qp = request.query_params
        sort, order = parse_sort(qp.get("sort") or None, qp.get("order") or None)
        cursor_text = qp.get("cursor") or None
        cursor = parse_cursor(cursor_text, sort, order)
    except ParamError as e:  # keep the form as typed, and say which field is wrong
        return render(
            request, "calls.html", status_code=400, nav="calls", params=params,
            url=_link("/calls"), items=[], total=0, sort="ts", order="desc",
            sort_keys=vocab.CALL_SORT_KEYS, marked=call_log.marked, needle=None,
            suggestions=answers.suggestions(store), next_cursor=None, paged=False,
            filtered=True, no_calls_at_all=False, bad_param=e,
        )  # fmt: skip
    answer = answers.call_page(store, filters, limit, cursor, True, sort, order)
    items = answer["items"]
    for c in items:
        c["preview"] = call_log.search_preview(c, filters.q)
    json_params = {**params, "cursor": cursor_text}
    return render(
        request,
        "calls.html",
        nav="calls",
        params=params,
        url=_link("/calls"),
        items=items,
        total=answer["total"],
        sort=sort,
        order=order,
        sort_keys=vocab.CALL_SORT_KEYS,
        marked=call_log.marked,
        needle=filters.q,
        suggestions=answers.suggestions(store, filters.since, filters.until),
        next_cursor=answer["next"],
        paged=cursor_text is not None,
        filtered=bool(filters.active()),
        no_calls_at_all=not items and not _has_calls(request),
        bad_param=None,
        json_url="/api/calls" + query_string(json_params),
    )


@router.get("/calls/{call_id}", response_class=HTMLResponse)
@page
def call_detail(request: Request, call_id: str) -> Response:
    """One call: conversation as text, parameters, tokens, cost, timing, error, attributes."""
    call = _store(request).get_call(call_id)
    if call is None:
        return error_page(request, 404, "No such call", f"no call with id {call_id!r}")
    return render(
        request,
        "call.html",
        nav="calls",
        call=call,
        json_url=f"/api/calls/{call_id}",
    )


@router.get("/traces/{trace_id}", response_class=HTMLResponse)
@page
def trace(request: Request, trace_id: str) -> Response:
    """The waterfall of a trace's spans, LLM calls highlighted, with cost and tokens."""
    tid = trace_id.lower()
    answer = answers.trace(_store(request), tid)
    if answer is None:
        return error_page(request, 404, "No such trace", f"no trace with id {trace_id!r}")
    rows = waterfall(answer)
    wanted = request.query_params.get("span") or None
    selected = next((r for r in rows["rows"] if r["span_id"] == wanted), None)
    if wanted and selected is None:
        raise ParamError("span", f"no span {wanted!r} in this trace")
    return render(
        request,
        "trace.html",
        nav=None,
        trace=answer,
        waterfall=rows,
        selected=span_detail(selected) if selected else None,
        totals=answer["totals"],
        json_url=f"/api/traces/{tid}",
    )


def _good_answers(request: Request, store: Any, f: CallFilters) -> dict[str, Any] | None:
    """Cost per good answer for the page's chosen score (default: the most used one)."""
    qp = request.query_params
    names = quality.score_totals(store, f)
    name = quality.chosen_score(names, qp.get("quality_score"))
    text = qp.get("threshold") or "0.5"
    try:
        threshold = float(text)
    except ValueError:
        raise ParamError("threshold", f"{text!r} is not a number") from None
    by = parse_group_by(qp.get("quality_by")) or "model"
    if name is None:
        return {"names": [], "answer": None, "threshold": threshold, "by": by}
    answer = quality.cost_per_good_answer(store, f, by, name, threshold)
    json_url = "/api/analysis/cost-per-good-answer" + query_string(
        {**_params(request, FILTER_PARAMS), "score": name, "threshold": text, "group_by": by}
    )
    return {"names": sorted(names), "answer": answer, "threshold": threshold, "by": by,
            "json_url": json_url}  # fmt: skip


@router.get("/analysis", response_class=HTMLResponse)
@page
def analysis(request: Request) -> Response:
    """Latency against output tokens with per-model fits, correlations and dependencies."""
    filters = _filters(request)
    target = _choice(request, "target", vocab.CORRELATION_TARGETS) or "slow"
    f = with_range(filters)
    store = _store(request)
    lvt = answers.latency_vs_tokens(store, f, 2000)
    corr = answers.correlations(store, f, target)
    deps = answers.dependencies(store, f)
    good = _good_answers(request, store, f)
    params = _params(request, FILTER_PARAMS)
    savings = analysis_sections(request, f, params)
    colours = charts.Colours()
    for fit in lvt["models"]:
        colours(fit["model"])
    empty = corr["total"] == 0
    return render(
        request,
        "analysis.html",
        nav="analysis",
        params=params,
        url=_link("/analysis"),
        target=target,
        ranges=RANGES,
        lvt=lvt,
        corr=corr,
        deps=deps,
        good=good,
        group_by_choices=vocab.GROUP_BY,
        empty=empty,
        no_calls_at_all=empty and not _has_calls(request),
        charts=None if not lvt["points"] else {"scatter": charts.scatter_chart(lvt, colours)},
        json_urls={
            "latency-vs-tokens": "/api/analysis/latency-vs-tokens" + query_string(params),
            "correlations": "/api/analysis/correlations"
            + query_string({**params, "target": target}),
            "dependencies": "/api/analysis/dependencies" + query_string(params),
        },
        json_url="/api/analysis/latency-vs-tokens" + query_string(params),
        **savings,
    )
