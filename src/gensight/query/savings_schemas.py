"""Pydantic models of the savings answers (issue #19), published in ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gensight.query.schemas import Call, Totals


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TargetCost(BaseModel):
    model: str
    cost_usd: float
    estimate: bool = Field(description="another vendor's tokenizer: counts would differ")
    saving_usd: float | None = Field(description="null when some calls have no real cost")


class WhatIfTotals(BaseModel):
    calls: int
    cost_usd: float
    unpriced_calls: int
    targets: list[TargetCost]


class WhatIfGroup(WhatIfTotals):
    group: Any
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int


class WhatIf(BaseModel):
    """The recorded usage's real cost and its cost under each target's prices."""

    group_by: str
    targets: list[str]
    totals: WhatIfTotals
    groups: list[WhatIfGroup]
    note: str | None


class ResponseCache(_Open):
    window_seconds: int
    repeated_calls: int
    hits: int
    saving_usd: float
    by_app_model: list[dict[str, Any]]
    top_requests: list[dict[str, Any]]


class PromptCache(_Open):
    lifetime_seconds: int
    min_prefix_tokens: int
    missed_saving_usd: float
    would_hit: int
    by_app: list[dict[str, Any]]
    prefixes: list[dict[str, Any]]
    realised_saving_usd: float
    realised: list[dict[str, Any]]


class CacheOpportunities(BaseModel):
    """What a response cache and the providers' prompt caching would save."""

    calls: int
    fingerprinted_calls: int
    response_cache: ResponseCache
    prompt_cache: PromptCache


class Template(Totals):
    template_id: str
    pattern: str | None
    named: bool


class Templates(BaseModel):
    """Per prompt template: calls, cost, latency, errors and tokens, most costly first."""

    items: list[Template]
    untemplated_calls: int


class TemplateDetail(Template):
    """One template with its latest calls."""

    samples: list[Call]


class Projection(BaseModel):
    month_to_date_usd: float
    rate_usd_per_day: float | None = Field(description="mean daily cost of the recent days")
    forecast_usd: float | None = Field(description="projected month-end spend")
    low_usd: float | None = Field(description="~95% range, never below month to date")
    high_usd: float | None


class AppProjection(Projection):
    app: str | None


class Forecast(Projection):
    """Month to date and projected month-end spend, in total and per app."""

    month: str
    now: str
    days_left: float
    rate_days: int
    unpriced_calls: int
    apps: list[AppProjection]


class AnomalyPoint(BaseModel):
    bucket: str
    measure: str
    value: float | None
    calls: int
    weeks: int
    usual: float | None
    spread: float | None
    deviation: float | None
    bound: float | None
    anomalous: bool


class Anomalies(BaseModel):
    """The buckets whose measure is anomalous against the same bucket of past weeks."""

    interval: int
    since: str
    until: str
    items: list[AnomalyPoint]


class RepricedModel(BaseModel):
    model: str
    calls: int = Field(description="calls whose cost changed")
    before_usd: float
    after_usd: float
    unpriced_before: int
    unpriced_after: int


class Reprice(BaseModel):
    """What repricing changed: only the calls whose cost or cost source moved."""

    since: str
    model: str | None
    examined: int
    changed: int
    unchanged: int
    before_usd: float
    after_usd: float
    models: list[RepricedModel]
    sources: dict[str, int] = Field(description="'computed->override': calls")
