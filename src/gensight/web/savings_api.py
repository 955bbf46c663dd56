"""The JSON API of where the money goes (issue #19): what-if prices, cache opportunities,
prompt templates, the month-end forecast, anomalies, and repricing stored calls.

Every route returns a ``gensight.query`` answer as it is; the pages render the same ones.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from gensight.model.units import parse_duration
from gensight.query import cache, schemas, templates, whatif
from gensight.query import savings_schemas as out
from gensight.query.params import ParamError, with_range
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
