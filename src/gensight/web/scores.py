"""Scores in (#20): ``POST /api/scores`` (one or a batch), ``GET /api/scores``, and the call
page's annotation form (``POST /calls/{id}/scores``).

Both hand the scores to the pipeline like every other record (journaled, then written),
so a score for a call not stored yet is kept and joined when the call arrives. Writes
need the ``annotate`` scope (or ``admin``; ``POST /api/scores`` also takes an ``ingest``
key). Cross-site requests cannot send them: the API takes only ``application/json``
(a cross-site form cannot send that without the browser asking first), and the form
answers 403 to a request whose ``Origin`` is another site.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from gensight.model.scores import ScoreError, score_from_dict, scores_from_body
from gensight.query import schemas
from gensight.query.params import call_filters
from gensight.web.alerts_page import _same_origin
from gensight.web.render import error_page

api_router = APIRouter(prefix="/api", tags=["api"])
form_router = APIRouter(include_in_schema=False)

#: How long the form waits for its score to be written before showing the call again.
FORM_FLUSH_SECONDS = 2.0

_SCORE_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "id": {"type": "string", "description": "optional; resending an id stores it once"},
        "call_id": {"type": "string", "description": "X-Gensight-Call-Id, or a span id"},
        "trace_id": {"type": "string"},
        "session": {"type": "string"},
        "name": {"type": "string"},
        "value": {"type": "number"},
        "label": {"type": "string"},
        "comment": {"type": "string"},
        "source": {"type": "string", "enum": ["user", "human", "eval", "api"]},
        "author": {"type": "string"},
        "app": {"type": "string"},
        "ts": {"type": "string", "format": "date-time"},
    },
}


def _bad(field: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": message, "param": field, "field": field}, status_code=400)


@api_router.post(
    "/scores",
    status_code=202,
    summary="Send scores (feedback, annotations, evaluations) about calls, traces, sessions",
    response_model=schemas.ScoresAccepted,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            _SCORE_SCHEMA,
                            {"type": "array", "items": _SCORE_SCHEMA},
                            {
                                "type": "object",
                                "properties": {"scores": {"type": "array", "items": _SCORE_SCHEMA}},
                            },
                        ]
                    }
                }
            },
        }
    },
)
async def post_scores(request: Request) -> Any:
    """One score object, a list, or ``{"scores": [...]}``; 202 with their ids, 400 naming
    the first bad field (``scores[2].value``); nothing is kept from a batch with a bad one."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(415, "send scores as application/json")
    limit = request.app.state.settings.max_body
    body = await request.body()
    if len(body) > limit:
        raise HTTPException(413, f"body exceeds {limit} bytes: send smaller batches")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        return _bad("body", f"the body is not valid JSON: {e}")
    try:
        scores = scores_from_body(doc)
    except ScoreError as e:
        return _bad(e.field, str(e))
    if not request.app.state.pipeline.submit((), scores=scores):
        raise HTTPException(503, "writer queue is full; retry later")
    return JSONResponse({"accepted": len(scores), "ids": [s.id for s in scores]}, 202)


@api_router.get("/scores", summary="Scores, newest first", response_model=schemas.ScoreList)
def list_scores(
    request: Request,
    since: Annotated[str | None, Query(description="ISO 8601 or relative (1h)")] = None,
    until: Annotated[str | None, Query()] = None,
    name: Annotated[str | None, Query(description="only scores of this name")] = None,
    app: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """``{"items": [Score…]}`` by the scores' own time."""
    filters = call_filters(since=since, until=until, app=app)
    return {"items": request.app.state.store.list_scores(filters, name, limit)}


@form_router.post("/calls/{call_id}/scores")
async def annotate_call(request: Request, call_id: str) -> Response:
    """The call page's form: a score or label with a comment; back to the call (303)."""
    if not _same_origin(request):
        return error_page(request, 403, "Refused", "a form from another site cannot add scores")
    body = await request.body()
    return await run_in_threadpool(_annotate, request, call_id, body)


def _annotate(request: Request, call_id: str, body: bytes) -> Response:
    form = dict(parse_qsl(body.decode("utf-8", "replace")))
    data: dict[str, Any] = {"call_id": call_id, "source": form.get("source") or "human"}
    for key in ("name", "label", "comment", "author"):
        if form.get(key, "").strip():
            data[key] = form[key].strip()
    value = form.get("value", "").strip()
    if value:
        try:
            data["value"] = float(value)
        except ValueError:
            return error_page(request, 400, "Bad score", f"value: {value!r} is not a number",
                              param="value")  # fmt: skip
    call = request.app.state.store.get_call(call_id)
    if call is not None:
        data["trace_id"] = call["trace_id"]
    try:
        score = score_from_dict(data)
    except ScoreError as e:
        return error_page(request, 400, "Bad score", str(e), param=e.field)
    pipeline = request.app.state.pipeline
    if not pipeline.submit((), scores=[score]):
        return error_page(request, 503, "Not saved", "the writer queue is full; try again")
    pipeline.flush(FORM_FLUSH_SECONDS)  # so the page it returns to shows the score
    return RedirectResponse(f"/calls/{quote(call_id)}#scores", status_code=303)
