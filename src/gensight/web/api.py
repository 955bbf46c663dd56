"""The JSON API under ``/api``: calls, traces, stats, analysis, alert rules, health.

Pages (``gensight.web.ui``) call the same query functions, so no number is computed two ways.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from gensight.query.params import ParamError, call_filters, parse_cursor, parse_duration
from gensight.store import analysis
from gensight.store.base import CallFilters

_ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string"}, "param": {"type": "string"}},
    "required": ["detail"],
}
#: Documents the errors every route answers: 400 naming the bad parameter (not FastAPI's
#: default 422, which this API never sends), 404 for an id that names nothing.
_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": "400: a bad parameter or body, named in `param`; 404: no such object",
        "content": {"application/json": {"schema": _ERROR}},
    }
}

router = APIRouter(prefix="/api", tags=["api"], responses=_ERRORS)

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
    """``{"status", "store", "queue", "dropped"}``; status is ``degraded`` when writes fail.

    Open to everyone; when keys are configured, only ``{"status"}`` without a read key."""
    pipeline = request.app.state.pipeline
    queue = pipeline.stats()
    try:
        store = _store(request).health()
    except Exception as e:  # the store being down is a health answer, not an error
        store = {"backend": getattr(_store(request), "name", "?"), "ok": False, "error": str(e)}
    ok = store.get("ok") and not (queue["write_errors"] and pipeline.last_write_at is None)
    if getattr(request.app.state, "keyring", None) and "read" not in getattr(
        request.state, "gensight_scopes", ()
    ):  # anonymous probes (load balancers) learn the status, nothing more
        return {"status": "ok" if ok else "degraded"}
    answer = {
        "status": "ok" if ok else "degraded",
        "store": store,
        "queue": queue,
        "dropped": queue["dropped"],
        "ingest": dict(request.app.state.counters),
    }
    alerts = getattr(request.app.state, "alerts", None)
    if alerts is not None:
        answer["alerts"] = alerts.health()
    forwarder = getattr(request.app.state, "forwarder", None)
    if forwarder is not None:
        answer["forward"] = forwarder.stats()
    return answer


@router.get("/calls", summary="List calls, newest first")
def list_calls(
    request: Request,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Text = None,
    full: Annotated[bool, Query(description="include messages and attributes")] = False,
) -> dict[str, Any]:
    """``{"items": [CallRecord…], "next": cursor|null}``; messages only with ``full``."""
    items, nxt = _store(request).list_calls(filters, limit, parse_cursor(cursor), full)
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


@router.post("/import", summary="Import calls exported by `gensight export`", status_code=202)
async def import_calls(request: Request) -> dict[str, Any]:
    """Body: JSON lines of CallRecords (``application/x-ndjson``); answers how many were queued."""
    from gensight.export.files import BadRecord, calls_from_jsonl

    limit = request.app.state.settings.max_body
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"import body exceeds {limit} bytes: send smaller chunks")
    try:
        calls = calls_from_jsonl(bytes(body))
    except BadRecord as e:
        raise HTTPException(400, str(e)) from None
    if calls and not request.app.state.pipeline.submit(calls):
        raise HTTPException(503, "writer queue is full; retry later")
    return {"accepted": len(calls)}


# -- alert rules -------------------------------------------------------------------------
_RULE_SCHEMA = {
    "type": "object",
    "required": ["name", "measure", "threshold"],
    "properties": {
        "id": {"type": "string", "description": "optional; a rule with this id is replaced"},
        "name": {"type": "string"},
        "measure": {
            "type": "string",
            "enum": [
                "cost_usd", "calls", "errors", "error_rate", "latency_p95_ms",
                "ttft_p95_ms", "input_tokens", "output_tokens",
            ],
        },
        "window": {"type": "string", "default": "5m", "description": "5m, 1h, 1d, or day / month"},
        "filters": {
            "type": "object",
            "description": "app, model, provider, user, session, error_class, status,"
            " environment, operation, source",
            "additionalProperties": {"type": "string"},
        },
        "op": {"type": "string", "enum": [">", ">=", "<", "<="], "default": ">"},
        "threshold": {"type": "number"},
        "action": {"type": "string", "enum": ["notify", "block"], "default": "notify"},
        "webhook": {"type": ["string", "null"]},
        "format": {"type": "string", "enum": ["json", "slack"], "default": "json"},
    },
}  # fmt: skip


def _alerts(request: Request) -> Any:
    return request.app.state.alerts


def _bad_rule(field: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": message, "param": field, "field": field}, status_code=400)


@router.get("/alert-rules", summary="Every alert rule")
def list_alert_rules(request: Request) -> list[dict[str, Any]]:
    """The rules, oldest first (``source`` is ``api`` or ``file``)."""
    return [r.to_dict() for r in _alerts(request).rules()]


@router.post(
    "/alert-rules",
    status_code=201,
    summary="Add an alert rule (or a budget)",
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _RULE_SCHEMA}}}
    },
)
async def create_alert_rule(request: Request) -> Any:
    """Answers 201 with the stored rule and its ``id``; 400 naming the bad field."""
    from gensight.alerts.engine import RuleError, parse_rule

    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError as e:
        return _bad_rule("body", f"the body is not valid JSON: {e}")
    try:
        rule = parse_rule(data, source="api")
    except RuleError as e:
        return _bad_rule(e.field, str(e))
    engine = _alerts(request)
    try:
        engine.create(rule)
    except Exception as e:  # the store refused: say so, never half-store
        raise HTTPException(503, f"could not store the rule: {e}") from None
    return JSONResponse(rule.to_dict(), status_code=201)


@router.get("/alert-rules/{rule_id}", summary="One alert rule")
def get_alert_rule(request: Request, rule_id: str) -> dict[str, Any]:
    """The rule, or 404."""
    rule = _alerts(request).get(rule_id)
    if rule is None:
        raise HTTPException(404, f"no alert rule with id {rule_id!r}")
    return rule.to_dict()


@router.delete("/alert-rules/{rule_id}", status_code=204, summary="Remove an alert rule")
def delete_alert_rule(request: Request, rule_id: str) -> Response:
    """204 when removed (its history stays), 404 when there is no such rule."""
    if not _alerts(request).delete(rule_id):
        raise HTTPException(404, f"no alert rule with id {rule_id!r}")
    return Response(status_code=204)


@router.get("/alerts", summary="Each rule's state")
def alerts(request: Request) -> list[dict[str, Any]]:
    """``[{"rule_id", "name", "state": "ok"|"firing", "since", "value", …, "delivery"}]``:
    ``since`` is the last transition (or the rule's creation), ``delivery`` how the last
    webhook notification went (``delivered``, ``retrying``, ``failed``)."""
    return _alerts(request).states()


@router.get("/alerts/history", summary="Alert transitions, newest first")
def alert_history(
    request: Request,
    rule_id: Text = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """``{"items": [{"ts", "rule_id", "name", "state", "value", "threshold", "detail"}]}``."""
    return {"items": _alerts(request).history(rule_id, limit)}
