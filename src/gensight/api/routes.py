"""The JSON API under ``/api`` (calls, traces, health)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from gensight.api.params import call_filters, parse_cursor

router = APIRouter(prefix="/api", tags=["api"])

Text = Annotated[str | None, Query()]


def _store(request: Request) -> Any:
    return request.app.state.store


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
    since: Text = None,
    until: Text = None,
    app: Text = None,
    model: Text = None,
    provider: Text = None,
    status: Text = None,
    error_class: Text = None,
    user: Text = None,
    session: Text = None,
    environment: Text = None,
    operation: Text = None,
    source: Text = None,
    q: Annotated[str | None, Query(description="substring of message content")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Text = None,
) -> dict[str, Any]:
    """``{"items": [CallRecord…], "next": cursor|null}``; items leave out messages."""
    filters = call_filters(
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
