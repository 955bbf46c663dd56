"""The JSON API under ``/api``: calls, traces, stats, analysis, health.

Pages (``gensight.ui``) call the same query functions, so no number is computed two ways.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from gensight.api.params import ParamError, call_filters, parse_cursor, parse_duration
from gensight.store import analysis
from gensight.store.base import CallFilters

router = APIRouter(prefix="/api", tags=["api"])

Text = Annotated[str | None, Query()]


def filters_param(
    since: Annotated[str | None, Query(description="ISO 8601 or relative (15m, 1h, 7d)")] = None,
    until: Annotated[str | None, Query(description="ISO 8601 or relative")] = None,
    app: Text = None,
    model: Annotated[str | None, Query(description="request or response model")] = None,
    provider: Text = None,
    status: Annotated[str | None, Query(description="ok or error")] = None,
    error_class: Text = None,
    user: Text = None,
    session: Text = None,
    environment: Text = None,
    operation: Text = None,
    source: Annotated[str | None, Query(description="gateway or otlp")] = None,
    q: Annotated[str | None, Query(description="substring of message content")] = None,
) -> CallFilters:
    """The call filters every list, stats and analysis endpoint takes."""
    return call_filters(
        since=since,
        until=until,
        app=app,
        model=model,
        provider=provider,
        status=status,
        error_class=error_class,
        user=user,
        session=session,
        environment=environment,
        operation=operation,
        source=source,
        q=q,
    )


Filters = Annotated[CallFilters, Depends(filters_param)]


def _store(request: Request) -> Any:
    return request.app.state.store


def with_range(filters: CallFilters, default: timedelta = timedelta(hours=24)) -> CallFilters:
    """Filters with ``since``/``until`` filled in (default: the last 24 hours)."""
    from dataclasses import replace

    until = filters.until or datetime.now(UTC)
    since = filters.since or (until - default)
    return replace(filters, since=since, until=until)


def parse_interval(text: str | None, filters: CallFilters) -> int:
    """Bucket width in seconds: given (``5m``) or chosen from the range."""
    assert filters.since and filters.until
    if not text:
        return analysis.choose_interval(filters.since, filters.until)
    try:
        seconds = int(parse_duration(text).total_seconds())
    except ValueError as e:
        raise ParamError("interval", str(e)) from None
    if seconds < 1:
        raise ParamError("interval", "must be at least 1s")
    if (filters.until - filters.since).total_seconds() / seconds > 10_000:
        raise ParamError("interval", "too small for the range: more than 10,000 buckets")
    return seconds


@router.get("/health", summary="Server, store and writer queue health")
def health(request: Request) -> dict[str, Any]:
    """``{"status", "store", "queue", "dropped"}``; status is ``degraded`` when writes fail."""
    pipeline = request.app.state.pipeline
    queue = pipeline.stats()
    try:
        store = _store(request).health()
    except Exception as e:  # the store being down is a health answer, not an error
        store = {"backend": getattr(_store(request), "name", "?"), "ok": False, "error": str(e)}
    ok = store.get("ok") and not (queue["write_errors"] and pipeline.last_write_at is None)
    return {
        "status": "ok" if ok else "degraded",
        "store": store,
        "queue": queue,
        "dropped": queue["dropped"],
        "ingest": dict(request.app.state.counters),
    }


@router.get("/calls", summary="List calls, newest first")
def list_calls(
    request: Request,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Text = None,
) -> dict[str, Any]:
    """``{"items": [CallRecord…], "next": cursor|null}``; items leave out messages."""
    items, nxt = _store(request).list_calls(filters, limit, parse_cursor(cursor))
    return {"items": items, "next": nxt.encode() if nxt else None}


@router.get("/calls/{call_id}", summary="One call with its messages")
def get_call(request: Request, call_id: str) -> dict[str, Any]:
    """The whole CallRecord, messages included."""
    call = _store(request).get_call(call_id)
    if call is None:
        raise HTTPException(404, f"no call with id {call_id!r}")
    return call


@router.get("/traces/{trace_id}", summary="All spans and calls of a trace")
def get_trace(request: Request, trace_id: str) -> dict[str, Any]:
    """``{"trace_id", "spans": [SpanRecord…], "calls": [CallRecord…]}``."""
    trace = _store(request).get_trace(trace_id.lower())
    if trace is None:
        raise HTTPException(404, f"no trace with id {trace_id!r}")
    return trace


GroupBy = Literal["app", "model", "provider", "user", "error_class", "environment", "operation"]


@router.get("/stats/overview", summary="Totals and time series")
def overview(
    request: Request,
    filters: Filters,
    interval: Annotated[str | None, Query(description="bucket width, e.g. 5m; auto")] = None,
    group_by: Annotated[GroupBy | None, Query()] = None,
) -> dict[str, Any]:
    """``{"totals": {...}, "series": [{bucket, group, ...same measures}]}`` (default 24h)."""
    f = with_range(filters)
    return _store(request).overview(f, parse_interval(interval, f), group_by)


@router.get("/analysis/latency-vs-tokens", summary="Latency against output tokens")
def latency_vs_tokens(
    request: Request,
    filters: Filters,
    points: Annotated[int, Query(ge=0, le=20_000, description="max points")] = 2000,
) -> dict[str, Any]:
    """Points and, per model, the fitted seconds per 100 output tokens (default 24h)."""
    return _store(request).latency_vs_tokens(with_range(filters), points)


@router.get("/analysis/correlations", summary="What slow or failed calls have in common")
def correlations(
    request: Request,
    filters: Filters,
    target: Annotated[Literal["slow", "error"], Query()] = "slow",
) -> dict[str, Any]:
    """Attribute values over-represented among slow (above p95) or failed calls, with lift."""
    return _store(request).correlations(with_range(filters), target)


@router.get("/analysis/dependencies", summary="Where the time of a request goes")
def dependencies(request: Request, filters: Filters) -> dict[str, Any]:
    """Per downstream (LLM provider/model, or span kind/service): calls, time, errors, share."""
    return _store(request).dependencies(with_range(filters))
