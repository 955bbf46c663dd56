"""Pydantic models of the API's answers: ``/openapi.json`` publishes them, and each route
declares its model, so an answer that drifts from its schema fails loudly in tests.

Closed lists come from ``gensight.model.vocab``. Records (calls, spans) allow extra
fields: a record's full set of fields is ``CallRecord``'s, and lists leave some out.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gensight.model import vocab

GroupBy = Literal[vocab.GROUP_BY]  # type: ignore[valid-type]
Measure = Literal[tuple(vocab.ALERT_MEASURES)]  # type: ignore[valid-type]
Op = Literal[vocab.ALERT_OPS]  # type: ignore[valid-type]
Action = Literal[vocab.ALERT_ACTIONS]  # type: ignore[valid-type]
Format = Literal[vocab.ALERT_FORMATS]  # type: ignore[valid-type]
AlertState = Literal[vocab.ALERT_STATES]  # type: ignore[valid-type]
Target = Literal[vocab.CORRELATION_TARGETS]  # type: ignore[valid-type]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


def _values(values: tuple[str, ...]) -> str:
    return "one of " + ", ".join(values)


class Score(BaseModel):
    """A score (#20): about a call, a trace or a session."""

    id: str
    ts: str
    target: str = Field(description=_values(vocab.SCORE_TARGETS))
    target_id: str
    name: str
    value: float | None = None
    label: str | None = None
    comment: str | None = None
    source: str = Field(description=_values(vocab.SCORE_SOURCES))
    author: str | None = None
    app: str | None = None
    trace_id: str | None = None


class ScoreMean(BaseModel):
    """The scores of one name over a set of calls."""

    mean: float | None = Field(description="mean numeric value; null when only labels")
    count: int = Field(description="scores")
    calls: int = Field(description="calls they judge")


class ScoresAccepted(BaseModel):
    accepted: int
    ids: list[str]


class ScoreList(BaseModel):
    items: list[Score]


class GoodAnswerGroup(BaseModel):
    group: str | None
    calls: int
    cost_usd: float | None
    priced_calls: int
    scored_calls: int
    good_calls: int
    good_share: float | None = Field(description="good ÷ scored calls")
    cost_per_call_usd: float | None
    cost_per_good_answer_usd: float | None = Field(
        description="cost per priced call ÷ good share; null without a good, priced call"
    )


class CostPerGoodAnswer(BaseModel):
    """Groups ranked by what one good answer costs (cheapest first)."""

    score: str
    threshold: float
    group_by: GroupBy
    items: list[GoodAnswerGroup]


class Call(_Open):
    """A CallRecord (DESIGN.md, "The record"); messages and attributes in the detail view.

    Closed fields are documented with their values but read as text: a record stored by
    an older version still lists (an answer never fails on data it already holds)."""

    id: str
    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    ts: str = Field(description="start, ISO 8601 UTC")
    duration_ms: float = Field(description=vocab.LONG_LABELS["duration_ms"])
    ttft_ms: float | None = Field(None, description=vocab.LONG_LABELS["ttft_ms"])
    source: str = Field(description=_values(vocab.SOURCES))
    app: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_estimated: bool = False
    cost_usd: float | None = Field(None, description="null when unpriced, never 0")
    cost_source: str = Field(description=_values(vocab.COST_SOURCES))
    status: str = Field(description=_values(vocab.STATUSES))
    error_class: str | None = Field(None, description=_values(vocab.ERROR_CLASSES))
    scores: list[Score] | None = Field(None, description="in the detail and trace views")


class CallPage(BaseModel):
    """A page of calls, newest first unless ``sort``/``order`` say otherwise."""

    items: list[Call]
    next: str | None = Field(description="cursor of the next page; null on the last")
    total: int = Field(description="calls matching the filters, on all pages")
    sort: str = Field("ts", description=_values(vocab.CALL_SORT_KEYS))
    order: str = Field("desc", description=_values(vocab.SORT_ORDERS))


class Span(_Open):
    """A SpanRecord."""

    trace_id: str
    span_id: str
    parent_span_id: str | None = None
    name: str
    kind: str | None = None
    ts: str
    duration_ms: float
    status: str
    app: str | None = None
    call_id: str | None = None


class Latency(BaseModel):
    """Latency percentiles (ms); null with no calls."""

    p50: float | None
    p95: float | None
    p99: float | None


class Ttft(BaseModel):
    """TTFT (time to first token) percentiles (ms); null with no streamed calls."""

    p50: float | None
    p95: float | None


class Totals(BaseModel):
    """The measures of a set of calls."""

    calls: int
    errors: int
    error_rate: float
    input_tokens: int
    output_tokens: int
    cost_usd: float = Field(description="sum over priced calls")
    unpriced_calls: int = Field(
        description="calls with tokens but no price for their model (not in cost_usd)"
    )
    no_usage_calls: int = Field(
        0, description="calls that reported no tokens (nothing to price; not in cost_usd)"
    )
    latency_ms: Latency
    ttft_ms: Ttft


class TraceTotals(Totals):
    """The totals of a trace's calls."""

    tokens_estimated: bool = Field(description="some token counts were estimated locally")


class Trace(BaseModel):
    """All spans and calls of a trace, and the totals of its calls."""

    trace_id: str
    spans: list[Span]
    calls: list[Call]
    totals: TraceTotals
    scores: list[Score] = Field(description="of the trace and of its calls")


class Group(Totals):
    """One group's totals (``(other)``: the groups past the largest ten, summed)."""

    group: str | None
    scores: dict[str, ScoreMean] = Field(description="per score name, of the group's calls")


class Point(Totals):
    """One bucket (of one group)."""

    bucket: str
    group: str | None


class ScorePoint(ScoreMean):
    """One bucket of a score's series (by the judged calls' start)."""

    bucket: str


class ScoreSeries(BaseModel):
    """One score over time (``quality_score``; its totals are ``scores[name]``)."""

    name: str
    series: list[ScorePoint]


class Overview(BaseModel):
    """Totals, per-group totals and the time series of the matching calls."""

    rows_from: Literal["raw", "rollups"] = Field(
        "raw",
        description="raw: every number from the calls (exact percentiles); rollups: the"
        " range's whole hours from hourly rollups (the same sums, percentiles within 1%)",
    )
    totals: Totals
    scores: dict[str, ScoreMean] = Field(description="per score name, of the calls")
    interval: int = Field(description="bucket width, seconds")
    since: str
    until: str
    group_by: GroupBy | None
    groups: list[Group]
    series: list[Point]
    quality: ScoreSeries | None = Field(None, description="with quality_score=NAME")


class LatencyPoint(BaseModel):
    id: str
    model: str | None
    output_tokens: int
    duration_ms: float
    ttft_ms: float | None
    stream: bool


class LatencyFit(BaseModel):
    model: str | None
    calls: int
    slope_ms_per_token: float | None
    intercept_ms: float | None
    r2: float | None
    seconds_per_100_tokens: float | None


class LatencyVsTokens(BaseModel):
    """Successful calls' output tokens against latency, and per model a fit."""

    points: list[LatencyPoint]
    models: list[LatencyFit]


class Lift(BaseModel):
    attribute: str
    value: Any
    target_count: int
    count: int
    target_share: float
    share: float
    lift: float


class Correlations(BaseModel):
    """Attribute values over-represented among slow or failed calls."""

    target: Target
    threshold_ms: float | None
    total: int
    target_total: int
    items: list[Lift]


class Dependency(BaseModel):
    type: Literal["llm", "span"]
    downstream: str
    calls: int
    total_ms: float | None
    p95_ms: float | None
    error_rate: float | None
    traces: int
    self_ms: float = Field(0.0, description="exclusive time: durations less their children's")
    share_of_trace_time: float | None = Field(
        description="self_ms over the traces' time (the column sums to at most 1)"
    )


class Dependencies(BaseModel):
    """Per downstream: calls, time, errors, share of trace time."""

    trace_ms: float
    traces: int
    items: list[Dependency]


class Health(BaseModel):
    """Server health; without a read key (when keys are set) only ``status``."""

    status: Literal["ok", "degraded"]
    reason: str | None = None
    store: dict[str, Any] | None = None
    queue: dict[str, Any] | None = None
    dropped: int | None = None
    ingest: dict[str, Any] | None = None
    alerts: dict[str, Any] | None = None
    forward: dict[str, Any] | None = None


class Accepted(BaseModel):
    accepted: int


class AlertRule(BaseModel):
    """A stored alert rule (or budget)."""

    id: str
    name: str
    measure: Measure
    window: str
    filters: dict[str, str]
    op: Op
    threshold: float | None = Field(None, description="none for an anomaly rule")
    action: Action
    webhook: str | None
    format: Format
    score: str | None = Field(None, description="the score score_mean averages")
    kind: Literal["threshold", "anomaly"] = "threshold"
    k: float | None = Field(None, description="anomaly: spreads from the median that fire")
    weeks: int | None = Field(None, description="anomaly: past weeks of the baseline")
    min_calls: int | None = Field(None, description="anomaly: calls a window needs")
    floor: float | None = Field(None, description="anomaly: smallest deviation that fires")
    min_change: float | None = Field(None, description="anomaly: smallest change, of usual")
    source: Literal["api", "file"]
    created_at: str


class Delivery(BaseModel):
    event: str
    status: str
    attempts: int
    last_error: str | None
    at: str | None


class AlertStatus(BaseModel):
    """A rule's current state."""

    rule_id: str
    name: str
    state: AlertState
    since: str | None
    value: float | None
    measure: Measure
    op: Op
    threshold: float | None = Field(None, description="an anomaly rule's: its current bound")
    kind: Literal["threshold", "anomaly"] = "threshold"
    window: str
    filters: dict[str, str]
    action: Action
    evaluated_at: str | None
    error: str | None
    delivery: Delivery | None


class AlertEvent(BaseModel):
    ts: str
    rule_id: str
    name: str
    state: AlertState
    value: float | None
    threshold: float | None
    detail: dict[str, Any]


class AlertHistory(BaseModel):
    items: list[AlertEvent]


# -- conversations and users (``gensight.query.people``) ---------------------------------
class SessionRow(Totals):
    """One conversation: the measures of its calls, when it began and last went on."""

    session: str
    first_ts: str
    last_ts: str
    app: str | None
    user: str | None


class SessionList(BaseModel):
    """Conversations, most recently active first."""

    items: list[SessionRow]
    truncated: bool = Field(description="more sessions matched than are listed")


class Session(SessionRow):
    """One conversation and its turns (calls with messages), oldest first."""

    turns: list[Call]
    truncated: bool = Field(description="the session has more turns than are listed")


class Budget(BaseModel):
    """A budget rule (``action`` block) of a user or app, with its state."""

    rule_id: str
    name: str
    state: AlertState
    since: str | None
    threshold: float | None
    value: float | None
    window: str | None


class UserRow(Totals):
    """One user: the measures of their calls, first and last seen, budget state."""

    user: str
    first_ts: str
    last_ts: str
    app: str | None
    budget: Literal["blocked", "ok", "none"] = Field(
        description="blocked while one of the user's budget rules fires; none without one"
    )
    budgets: list[Budget]


class UserList(BaseModel):
    """Users, most recently seen first."""

    items: list[UserRow]
    truncated: bool = Field(description="more users matched than are listed")


class User(UserRow):
    """One user and their sessions."""

    sessions: list[SessionRow]
