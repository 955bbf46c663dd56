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
