"""The JSON API of where the money goes (issue #19): what-if prices, cache opportunities,
prompt templates, the month-end forecast, anomalies, and repricing stored calls.

Every route returns a ``gensight.query`` answer as it is; the pages render the same ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from gensight.model.units import parse_duration
from gensight.query import anomaly, cache, forecast, schemas, templates, whatif
from gensight.query import savings_schemas as out
from gensight.query.params import ParamError, parse_interval, parse_time, with_range
from gensight.store.base import CallFilters
from gensight.store.reprice import reprice
from gensight.web.api import _ERRORS, Filters

router = APIRouter(prefix="/api", tags=["savings"], responses=_ERRORS)


def _store(request: Request) -> Any:
    return request.app.state.store


@router.get(
    "/analysis/what-if",
    summary="Recorded usage repriced under other models",
    response_model=out.WhatIf,
)
def what_if(
    request: Request,
    filters: Filters,
    as_: Annotated[
        str | None,
        Query(
            alias="as",
            description="model(s) to reprice as, comma-separated; provider:model to pin one",
        ),
    ] = None,
    group_by: Annotated[schemas.GroupBy | None, Query()] = None,
) -> dict[str, Any]:
    """``{"totals": {cost_usd, targets: [{model, cost_usd, saving_usd, estimate}]},
    "groups": [...]}`` (default 24h, grouped by model); 400 for an unpriced target."""
    targets = whatif.parse_targets(as_)
    return whatif.what_if(
        _store(request), request.app.state.pricer, with_range(filters), targets, group_by or "model"
    )


def _duration(param: str, text: str | None, default: timedelta) -> timedelta:
    if not text:
        return default
    try:
        value = parse_duration(text)
    except ValueError as e:
        raise ParamError(param, str(e)) from None
    if value <= timedelta(0) or value > timedelta(days=31):
        raise ParamError(param, "must be between 1s and 31d")
    return value


@router.get(
    "/analysis/cache",
    summary="What a response cache or prompt caching would save",
    response_model=out.CacheOpportunities,
)
def cache_opportunities(
    request: Request,
    filters: Filters,
    window: Annotated[
        str | None, Query(description="response cache lifetime, e.g. 1h (default)")
    ] = None,
    lifetime: Annotated[
        str | None, Query(description="prompt cache lifetime, e.g. 5m (default)")
    ] = None,
) -> dict[str, Any]:
    """``{"response_cache": {hits, saving_usd, by_app_model, top_requests}, "prompt_cache":
    {missed_saving_usd, by_app, prefixes, realised_saving_usd, realised}}`` (default 24h)."""
    return cache.cache_opportunities(
        _store(request),
        request.app.state.pricer,
        with_range(filters),
        _duration("window", window, cache.DEFAULT_WINDOW),
        _duration("lifetime", lifetime, cache.DEFAULT_LIFETIME),
    )


@router.get(
    "/analysis/templates",
    summary="Calls, cost, p95, errors and tokens per prompt template",
    response_model=out.Templates,
)
def prompt_templates(request: Request, filters: Filters) -> dict[str, Any]:
    """``{"items": [{template_id, pattern, named, calls, cost_usd, latency_ms, …}],
    "untemplated_calls"}``, most costly first (default 24h)."""
    return templates.templates(_store(request), with_range(filters))


@router.get(
    "/templates/{name}",
    summary="One prompt template with sample calls",
    response_model=out.TemplateDetail,
)
def prompt_template(request: Request, name: str, filters: Filters) -> dict[str, Any]:
    """The template's pattern, its measures and its latest calls (default 24h); 404 if unknown."""
    answer = templates.template(_store(request), with_range(filters), name)
    if answer is None:
        raise HTTPException(404, f"no template with id {name!r}")
    return answer


@router.get(
    "/analysis/forecast",
    summary="Month to date and projected month-end spend, per app and in total",
    response_model=out.Forecast,
)
def month_forecast(request: Request, filters: Filters) -> dict[str, Any]:
    """The current UTC month (the filters' range is not used): month to date, the run rate
    of the last 7 complete days, the projection and its ~95% range; the same per app."""
    return forecast.month_end(_store(request), filters)


@router.get(
    "/analysis/anomalies",
    summary="Buckets anomalous against the same bucket of past weeks",
    response_model=out.Anomalies,
)
def anomalies(
    request: Request,
    filters: Filters,
    interval: Annotated[str | None, Query(description="bucket width dividing a week: 1h")] = None,
    measure: Annotated[
        list[str] | None, Query(description=f"one or more of {', '.join(anomaly.MEASURES)}")
    ] = None,
) -> dict[str, Any]:
    """Anomalous buckets (default 24h, cost and calls) with the usual value and spread."""
    f = with_range(filters)
    seconds = parse_interval(interval, f) if interval else anomaly.bucket_for(f)
    measures = tuple(measure or ("cost_usd", "calls"))
    for m in measures:
        if m not in anomaly.MEASURES:
            raise ParamError("measure", f"{m!r}: must be one of {', '.join(anomaly.MEASURES)}")
    if anomaly.WEEK.total_seconds() % seconds or seconds > 86400:
        raise ParamError("interval", "must divide a week and be at most 1d (1h: hours of week)")
    assert f.since is not None and f.until is not None
    return {
        "interval": seconds,
        "since": f.since.isoformat(),
        "until": f.until.isoformat(),
        "items": anomaly.scan(_store(request), f, seconds, measures),
    }


@router.post(
    "/reprice",
    summary="Price stored calls again (after the prices file or the price data changed)",
    response_model=out.Reprice,
)
async def reprice_calls(
    request: Request,
    since: Annotated[str | None, Query(description="ISO time or 30d (default: every call)")] = None,
    model: Annotated[str | None, Query(description="only this model's calls")] = None,
) -> dict[str, Any]:
    """Re-reads the server's prices file, then reprices the matching calls; writes back
    only the calls whose cost changed (idempotent) and reports them per model."""
    start = parse_time("since", since) or datetime(1970, 1, 1, tzinfo=UTC)
    filters = CallFilters(since=start, until=datetime.now(UTC) + timedelta(days=1), model=model)
    settings = request.app.state.settings
    pricer = request.app.state.pricer
    try:
        pricer.reload(settings.prices)
    except ValueError as e:
        raise ParamError("prices", str(e)) from None
    answer = await run_in_threadpool(reprice, _store(request), pricer, filters)
    return {"since": start.isoformat(), "model": model, **answer}
