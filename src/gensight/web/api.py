"""The JSON API under ``/api``: calls, traces, stats, analysis, alert rules, health.

Pages (``gensight.web.ui``) call the same query functions, so no number is computed two ways.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from gensight.alerts.webhooks import masked
from gensight.model import vocab
from gensight.query import answers, quality, schemas
from gensight.query.params import (
    call_filters,
    parse_cursor,
    parse_interval,
    parse_sort,
    with_range,
)
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


def _filter_parameter(f: vocab.Filter) -> inspect.Parameter:
    kind = Literal[f.choices] if f.choices else str  # type: ignore[valid-type]
    return inspect.Parameter(
        f.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[kind | None, Query(description=f.help)],
    )


def filters_param(**params: str | None) -> CallFilters:
    """The call filters every list, stats and analysis endpoint takes (``vocab.CALL_FILTERS``)."""
    return call_filters(**params)


# FastAPI reads the query parameters from the signature: generated from the vocabulary
filters_param.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
    [_filter_parameter(f) for f in vocab.CALL_FILTERS], return_annotation=CallFilters
)

Filters = Annotated[CallFilters, Depends(filters_param)]


def _store(request: Request) -> Any:
    return request.app.state.store


@router.get(
    "/health",
    summary="Server, store and writer queue health",
    response_model=schemas.Health,
    response_model_exclude_none=True,
)
def health(request: Request) -> dict[str, Any]:
    """``{"status", "reason"?, "store", "queue", "dropped"}``: always HTTP 200; ``status``
    is ``degraded``, with ``reason`` naming the cause (disk full, read-only file system,
    store unreachable, journal full), while the writer fails or ingest is refused.

    Open to everyone; when keys are configured, only ``{"status", "reason"?}`` without a
    read key."""
    pipeline = request.app.state.pipeline
    queue = pipeline.stats()
    try:
        store = _store(request).health()
    except Exception as e:  # the store being down is a health answer, not an error
        store = {"backend": getattr(_store(request), "name", "?"), "ok": False, "error": str(e)}
    reason = pipeline.conditions.reason()
    if not store.get("ok"):
        reason = "; ".join(filter(None, ["store unreachable", reason]))
    elif queue["write_errors"] and pipeline.last_write_at is None and not reason:
        reason = "writer: no write has succeeded yet"
    brief: dict[str, Any] = {"status": "degraded" if reason else "ok"}
    if reason:
        brief["reason"] = reason
    if getattr(request.app.state, "keyring", None) and "read" not in getattr(
        request.state, "gensight_scopes", ()
    ):  # anonymous probes (load balancers) learn the status and its reason, nothing more
        return brief
    answer = {
        **brief,
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


@router.get("/calls", summary="List calls, newest first", response_model=schemas.CallPage)
def list_calls(
    request: Request,
    filters: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Text = None,
    full: Annotated[bool, Query(description="include messages and attributes")] = False,
    sort: Annotated[
        Literal[vocab.CALL_SORT_KEYS] | None,  # type: ignore[valid-type]
        Query(description="order by this; calls without a value come last"),
    ] = None,
    order: Annotated[Literal[vocab.SORT_ORDERS] | None, Query()] = None,  # type: ignore[valid-type]
) -> dict[str, Any]:
    """``{"items": [CallRecord…], "next": cursor|null, "total"}``; messages only with
    ``full``. A cursor pages the ``sort``/``order`` it was handed out for."""
    key, direction = parse_sort(sort, order)
    page = parse_cursor(cursor, key, direction)
    return answers.call_page(_store(request), filters, limit, page, full, key, direction)


@router.get("/calls/{call_id}", summary="One call with its messages", response_model=schemas.Call)
def get_call(request: Request, call_id: str) -> dict[str, Any]:
    """The whole CallRecord, messages included."""
    call = _store(request).get_call(call_id)
    if call is None:
        raise HTTPException(404, f"no call with id {call_id!r}")
    return call


@router.get(
    "/traces/{trace_id}", summary="All spans and calls of a trace", response_model=schemas.Trace
)
def get_trace(request: Request, trace_id: str) -> dict[str, Any]:
    """``{"trace_id", "spans": [SpanRecord…], "calls": [CallRecord…], "totals": {...}}``."""
    trace = answers.trace(_store(request), trace_id.lower())
    if trace is None:
        raise HTTPException(404, f"no trace with id {trace_id!r}")
    return trace


@router.get(
    "/stats/overview",
    summary="Totals, per-group totals and time series",
    response_model=schemas.Overview,
)
def overview(
    request: Request,
    filters: Filters,
    interval: Annotated[str | None, Query(description="bucket width, e.g. 5m; auto")] = None,
    group_by: Annotated[schemas.GroupBy | None, Query()] = None,
    quality_score: Annotated[
        str | None, Query(max_length=200, description="a score name: its series in quality")
    ] = None,
) -> dict[str, Any]:
    """``{"totals", "groups": [{group, ...measures}], "series": [{bucket, group, ...}]}``
    (default: the last 24 hours). ``groups``: the ten largest, then ``(other)``."""
    f = with_range(filters)
    interval_s = parse_interval(interval, f)
    return answers.overview(_store(request), f, interval_s, group_by, quality_score or None)


@router.get(
    "/analysis/latency-vs-tokens",
    summary="Latency against output tokens",
    response_model=schemas.LatencyVsTokens,
)
def latency_vs_tokens(
    request: Request,
    filters: Filters,
    points: Annotated[int, Query(ge=0, le=20_000, description="max points")] = 2000,
) -> dict[str, Any]:
    """Points and, per model, the fitted seconds per 100 output tokens (default 24h)."""
    return answers.latency_vs_tokens(_store(request), with_range(filters), points)


@router.get(
    "/analysis/correlations",
    summary="What slow or failed calls have in common",
    response_model=schemas.Correlations,
)
def correlations(
    request: Request,
    filters: Filters,
    target: Annotated[schemas.Target, Query()] = "slow",
) -> dict[str, Any]:
    """Attribute values over-represented among slow (above p95) or failed calls, with lift."""
    return answers.correlations(_store(request), with_range(filters), target)


@router.get(
    "/analysis/dependencies",
    summary="Where the time of a request goes",
    response_model=schemas.Dependencies,
)
def dependencies(request: Request, filters: Filters) -> dict[str, Any]:
    """Per downstream (LLM provider/model, or span kind/service): calls, time, errors, share."""
    return answers.dependencies(_store(request), with_range(filters))


@router.get(
    "/analysis/cost-per-good-answer",
    summary="Cost per good answer, per model, app, …",
    response_model=schemas.CostPerGoodAnswer,
)
def cost_per_good_answer(
    request: Request,
    filters: Filters,
    score: Annotated[str, Query(description="the score that says an answer is good")],
    threshold: Annotated[float, Query(description="good: the call's mean score ≥ this")] = 0.5,
    group_by: Annotated[schemas.GroupBy, Query()] = "model",
) -> dict[str, Any]:
    """Per group: cost per priced call ÷ share of scored calls at or above ``threshold``
    (default 24h), cheapest good answer first (``gensight.query.quality``). ``score``
    names the score here, it does not filter: every matching call's cost counts, as on
    the ``/analysis`` page."""
    f = dataclasses.replace(with_range(filters), score=None)
    return quality.cost_per_good_answer(_store(request), f, group_by, score, threshold)


@router.post(
    "/import",
    summary="Import calls exported by `gensight export`",
    status_code=202,
    response_model=schemas.Accepted,
)
async def import_calls(request: Request) -> dict[str, Any]:
    """Body: JSON lines of CallRecords (``application/x-ndjson``), each with its ``scores``
    as ``gensight export`` writes them; answers how many calls were queued."""
    from gensight.export.files import BadRecord, records_from_jsonl

    limit = request.app.state.settings.max_body
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"import body exceeds {limit} bytes: send smaller chunks")
    try:
        calls, scores = records_from_jsonl(bytes(body))
    except BadRecord as e:
        raise HTTPException(400, str(e)) from None
    if (calls or scores) and not request.app.state.pipeline.submit(calls, scores=scores):
        raise HTTPException(503, "writer queue is full; retry later")
    return {"accepted": len(calls)}


# -- alert rules -------------------------------------------------------------------------
_RULE_SCHEMA = {
    "type": "object",
    "required": ["name", "measure"],
    "properties": {
        "id": {"type": "string", "description": "optional; a rule with this id is replaced"},
        "name": {"type": "string"},
        "measure": {"type": "string", "enum": list(vocab.ALERT_MEASURES)},
        "window": {
            "type": "string",
            "default": "5m",
            "description": f"5m, 1h, 1d, or {' / '.join(vocab.CALENDAR_WINDOWS)}",
        },
        "filters": {
            "type": "object",
            "description": "call filters: " + ", ".join(vocab.RULE_FILTERS),
            "properties": {
                name: {"type": "string", **({"enum": list(f.choices)} if f.choices else {})}
                for name, f in vocab.FILTERS.items()
                if f.in_rules
            },
            "additionalProperties": False,
        },
        "op": {"type": "string", "enum": list(vocab.ALERT_OPS), "default": ">"},
        "threshold": {"type": "number", "description": "required unless kind is anomaly"},
        "kind": {
            "type": "string",
            "enum": ["threshold", "anomaly"],
            "default": "threshold",
            "description": "anomaly: no threshold; against the same window of past weeks",
        },
        "k": {"type": "number", "default": 3, "description": "anomaly: spreads (MAD) that fire"},
        "weeks": {"type": "integer", "default": 4, "description": "anomaly: past weeks"},
        "min_calls": {"type": "integer", "default": 20, "description": "anomaly: volume"},
        "floor": {"type": "number", "description": "anomaly: smallest deviation that fires"},
        "min_change": {"type": "number", "default": 0.25, "description": "anomaly: ratio"},
        "action": {"type": "string", "enum": list(vocab.ALERT_ACTIONS), "default": "notify"},
        "webhook": {"type": ["string", "null"]},
        "format": {"type": "string", "enum": list(vocab.ALERT_FORMATS), "default": "json"},
        "score": {"type": ["string", "null"], "description": "the score (name) of score_mean"},
    },
}


def _alerts(request: Request) -> Any:
    return request.app.state.alerts


def _shown(request: Request, rule: dict[str, Any]) -> dict[str, Any]:
    """A rule as this caller may see it: the webhook masked without the admin scope."""
    if request.app.state.keyring and "admin" not in request.scope.get("state", {}).get(
        "gensight_scopes", frozenset()
    ):
        rule["webhook"] = masked(rule.get("webhook"))
    return rule


def _bad_rule(field: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": message, "param": field, "field": field}, status_code=400)


@router.get(
    "/alert-rules",
    summary="Every alert rule",
    response_model=list[schemas.AlertRule],
    response_model_exclude_unset=True,  # an anomaly rule's fields only on anomaly rules
)
def list_alert_rules(request: Request) -> list[dict[str, Any]]:
    """The rules, oldest first (``source`` is ``api`` or ``file``); webhook URLs show only
    their host unless the caller may change rules (they are secrets, as Slack's are)."""
    return [_shown(request, r.to_dict()) for r in _alerts(request).rules()]


@router.post(
    "/alert-rules",
    status_code=201,
    summary="Add an alert rule (or a budget)",
    response_model=schemas.AlertRule,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": _RULE_SCHEMA}}}
    },
)
async def create_alert_rule(request: Request) -> Any:
    """Answers 201 with the stored rule and its ``id``; 400 naming the bad field."""
    from gensight.alerts.rules import RuleError, parse_rule

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
    except RuleError as e:
        return _bad_rule(e.field, str(e))
    except Exception as e:  # the store refused: say so, never half-store
        raise HTTPException(503, f"could not store the rule: {e}") from None
    return JSONResponse(rule.to_dict(), status_code=201)


@router.get(
    "/alert-rules/{rule_id}",
    summary="One alert rule",
    response_model=schemas.AlertRule,
    response_model_exclude_unset=True,
)
def get_alert_rule(request: Request, rule_id: str) -> dict[str, Any]:
    """The rule, or 404."""
    rule = _alerts(request).get(rule_id)
    if rule is None:
        raise HTTPException(404, f"no alert rule with id {rule_id!r}")
    return _shown(request, rule.to_dict())


@router.delete("/alert-rules/{rule_id}", status_code=204, summary="Remove an alert rule")
def delete_alert_rule(request: Request, rule_id: str) -> Response:
    """204 when removed (its history stays), 404 when there is no such rule."""
    if not _alerts(request).delete(rule_id):
        raise HTTPException(404, f"no alert rule with id {rule_id!r}")
    return Response(status_code=204)


@router.get("/alerts", summary="Each rule's state", response_model=list[schemas.AlertStatus])
def alerts(request: Request) -> list[dict[str, Any]]:
    """``[{"rule_id", "name", "state": "ok"|"firing", "since", "value", …, "delivery"}]``:
    ``since`` is the last transition (or the rule's creation), ``delivery`` how the last
    webhook notification went (``delivered``, ``retrying``, ``failed``)."""
    return _alerts(request).states()


@router.get(
    "/alerts/history",
    summary="Alert transitions, newest first",
    response_model=schemas.AlertHistory,
)
def alert_history(
    request: Request,
    rule_id: Text = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """``{"items": [{"ts", "rule_id", "name", "state", "value", "threshold", "detail"}]}``."""
    return {"items": _alerts(request).history(rule_id, limit)}
